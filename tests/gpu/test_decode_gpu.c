/* test_decode_gpu.c: the resident fp16 decode engine (model/decode_gpu.h) against a host fp32 reference written
 * here (same fp16 rounding points), Llama- and OPT-style stacks with GQA, uneven sequence lengths and two steps;
 * dense (cuBLAS) vs Tiled-CSL (SpMM) weights of the same 80%-pruned model; a CUDA-graph replay; misuse errors.
 * Logits are poisoned (NaN) before every step; the whole KV cache is compared after each step (the appended rows
 * within tolerance, every other row bit for bit). Run on a GPU: ctest -L gpu (or build/tests/gpu/test_decode_gpu).
 * Inputs are drawn from a fresh seed each run (printed; FPK_TEST_SEED=n repeats one).
 * Tolerance: ||gpu - ref|| / ||ref|| <= 1e-2 on the logits (fp16 activations rounded at ~10 points per layer;
 * measured values are printed), and the same between dense and sparse weights. */
#include "decode_gpu.h"
#include "fpk_cuda.h"
#include "fpk_test.h"
#include "tcsl.h"

#include <cuda_runtime.h>
#include <math.h>
#include <time.h>

#define TOL 1e-2

static uint64_t g_seed;

static float r16(float x) { return fpk_f16_to_f32(fpk_f32_to_f16(x)); }
static float h2f(uint16_t h) { return fpk_f16_to_f32(h); }

/* the host copy of a model: fp16 bits */
typedef struct hmodel {
	fpk_dec_config c;
	uint16_t *lin[64][FPK_DEC_NLINEAR];
	uint16_t *vec[64][FPK_DEC_NVEC];
	uint16_t *glob[FPK_DEC_NGLOBAL];
	float *inv_freq;
} hmodel;

static uint16_t *rand16(size_t n, float mean, float scale, uint64_t *s)
{
	uint16_t *p = malloc(n * 2 + 2);
	for (size_t i = 0; i < n; i++)
		p[i] = fpk_f32_to_f16(mean + scale * fpk_test_randn(s));
	return p;
}

static int cmpf(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* zero the smallest-magnitude sparsity fraction of w (ties at the threshold are kept) */
static void prune(uint16_t *w, size_t n, double sparsity)
{
	float *a = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		a[i] = fabsf(h2f(w[i]));
	qsort(a, n, sizeof(float), cmpf);
	float thr = a[(size_t)(sparsity * (double)n)];
	for (size_t i = 0; i < n; i++)
		if (fabsf(h2f(w[i])) < thr)
			w[i] = 0;
	free(a);
}

static void hmodel_init(hmodel *h, const fpk_dec_config *c, uint64_t *s, double sparsity)
{
	memset(h, 0, sizeof(*h));
	h->c = *c;
	for (int l = 0; l < c->layers; l++) {
		for (int w = 0; w < FPK_DEC_NLINEAR; w++) {
			int64_t m, k;
			fpk_dec_linear_shape(c, w, &m, &k);
			h->lin[l][w] = rand16((size_t)(m * k), 0, 1.0f / sqrtf((float)k), s);
			if (sparsity > 0)
				prune(h->lin[l][w], (size_t)(m * k), sparsity);
		}
		for (int v = 0; v < FPK_DEC_NVEC; v++) {
			size_t n = fpk_dec_vec_len(c, v);
			int is_w = v == FPK_DEC_NORM1_W || v == FPK_DEC_NORM2_W;
			h->vec[l][v] = n ? rand16(n, is_w ? 1.0f : 0.0f, 0.2f, s) : NULL;
		}
	}
	h->glob[FPK_DEC_EMBED] = rand16(fpk_dec_global_len(c, FPK_DEC_EMBED), 0, 1.0f, s);
	if (c->arch == FPK_DEC_OPT) {
		h->glob[FPK_DEC_POS_EMBED] = rand16(fpk_dec_global_len(c, FPK_DEC_POS_EMBED), 0, 0.5f, s);
		h->glob[FPK_DEC_FINAL_B] = rand16((size_t)c->hidden, 0, 0.2f, s);
	}
	h->glob[FPK_DEC_FINAL_W] = rand16((size_t)c->hidden, 1.0f, 0.2f, s);
	h->glob[FPK_DEC_LM_HEAD] = c->tie_embed ? h->glob[FPK_DEC_EMBED]
						: rand16(fpk_dec_global_len(c, FPK_DEC_LM_HEAD), 0, 1.0f / sqrtf((float)c->hidden), s);
	int half = c->head_dim / 2;
	h->inv_freq = malloc(sizeof(float) * half);
	for (int i = 0; i < half; i++)
		h->inv_freq[i] = 1.0f / powf(c->rope_theta > 0 ? c->rope_theta : 1.0f, (float)(2 * i) / (float)c->head_dim);
}

static void hmodel_free(hmodel *h)
{
	for (int l = 0; l < h->c.layers; l++) {
		for (int w = 0; w < FPK_DEC_NLINEAR; w++)
			free(h->lin[l][w]);
		for (int v = 0; v < FPK_DEC_NVEC; v++)
			free(h->vec[l][v]);
	}
	for (int g = 0; g < FPK_DEC_NGLOBAL; g++)
		if (!(g == FPK_DEC_LM_HEAD && h->c.tie_embed))
			free(h->glob[g]);
	free(h->inv_freq);
}

/* the GPU model from the host copy; sparse: every linear layer as Tiled-CSL */
static int upload(const hmodel *h, int sparse, fpk_dec_model **out)
{
	const fpk_dec_config *c = &h->c;
	fpk_dec_model *m = NULL;
	int rc = fpk_dec_model_new(c, &m);
	for (int l = 0; !rc && l < c->layers; l++) {
		for (int w = 0; !rc && w < FPK_DEC_NLINEAR; w++) {
			int64_t rows, k;
			fpk_dec_linear_shape(c, w, &rows, &k);
			if (sparse) {
				fpk_tcsl t = {0};
				rc = fpk_tcsl_encode(&t, h->lin[l][w], rows, k, FPK_F16, 1, 0, 2);
				if (!rc)
					rc = fpk_dec_linear_sparse(m, l, w, &t);
				fpk_tcsl_release(&t);
			} else {
				void *d;
				rc = fpk_dec_linear_dense(m, l, w, &d);
				if (!rc && cudaMemcpy(d, h->lin[l][w], (size_t)(rows * k) * 2, cudaMemcpyHostToDevice))
					rc = fpk_error_set(FPK_EGPU, "cudaMemcpy failed");
			}
		}
		for (int v = 0; !rc && v < FPK_DEC_NVEC; v++) {
			void *d;
			size_t n;
			if (!h->vec[l][v])
				continue;
			rc = fpk_dec_vector(m, l, v, &d, &n);
			if (!rc && cudaMemcpy(d, h->vec[l][v], n * 2, cudaMemcpyHostToDevice))
				rc = fpk_error_set(FPK_EGPU, "cudaMemcpy failed");
		}
	}
	for (int g = 0; !rc && g < FPK_DEC_NGLOBAL; g++) {
		void *d;
		size_t n;
		if (!h->glob[g] || (g == FPK_DEC_LM_HEAD && c->tie_embed))
			continue;
		rc = fpk_dec_global(m, g, &d, &n);
		if (!rc && cudaMemcpy(d, h->glob[g], n * 2, cudaMemcpyHostToDevice))
			rc = fpk_error_set(FPK_EGPU, "cudaMemcpy failed");
	}
	if (rc) {
		fpk_dec_model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* y (m) = W (m x k, fp16) x (k), fp32 accumulation */
static void matvec(float *y, const uint16_t *w, const float *x, int64_t m, int64_t k)
{
	for (int64_t r = 0; r < m; r++) {
		float acc = 0;
		for (int64_t i = 0; i < k; i++)
			acc += h2f(w[r * k + i]) * x[i];
		y[r] = acc;
	}
}

static void norm(float *out, const float *x, const uint16_t *w, const uint16_t *b, int n, float eps, int ln)
{
	float mean = 0, var = 0;
	if (ln) {
		for (int i = 0; i < n; i++)
			mean += x[i];
		mean /= (float)n;
		for (int i = 0; i < n; i++)
			var += (x[i] - mean) * (x[i] - mean);
	} else {
		for (int i = 0; i < n; i++)
			var += x[i] * x[i];
	}
	float r = 1.0f / sqrtf(var / (float)n + eps);
	for (int i = 0; i < n; i++)
		out[i] = r16((x[i] - mean) * r * h2f(w[i]) + (b ? h2f(b[i]) : 0.0f));
}

/* one reference step: kc/vc[l] (B, Hkv, L, d) fp16 are updated at pos; logits (B, vocab) */
static void ref_step(const hmodel *hm, uint16_t **kc, uint16_t **vc, int B, int L, const int32_t *pos,
		     const int32_t *tok, float *logits)
{
	const fpk_dec_config *c = &hm->c;
	int H = c->heads, Hkv = c->kv_heads, d = c->head_dim, n = c->hidden, G = H / Hkv, ln = c->arch == FPK_DEC_OPT;
	int64_t qkvw = (int64_t)(H + 2 * Hkv) * d, upw = (ln ? 1 : 2) * (int64_t)c->ffn;
	float *x = malloc(4 * n), *h = malloc(4 * n), *qkv = malloc(4 * qkvw), *q = malloc(4 * (size_t)H * d);
	float *att = malloc(4 * (size_t)H * d), *o = malloc(4 * n), *up = malloc(4 * upw), *act = malloc(4 * c->ffn);
	float *down = malloc(4 * n), *sc = malloc(4 * (size_t)L);
	for (int b = 0; b < B; b++) {
		int p = pos[b], t = tok[b] < 0 ? 0 : tok[b] >= c->vocab ? c->vocab - 1 : tok[b];
		for (int i = 0; i < n; i++)
			x[i] = h2f(hm->glob[FPK_DEC_EMBED][(size_t)t * n + i]) +
			       (ln ? h2f(hm->glob[FPK_DEC_POS_EMBED][(size_t)p * n + i]) : 0.0f);
		for (int l = 0; l < c->layers; l++) {
			uint16_t *const *V = hm->vec[l];
			if (l)
				for (int i = 0; i < n; i++)
					x[i] += down[i] + (ln ? h2f(hm->vec[l - 1][FPK_DEC_DOWN_B][i]) : 0.0f);
			norm(h, x, V[FPK_DEC_NORM1_W], V[FPK_DEC_NORM1_B], n, c->norm_eps, ln);
			matvec(qkv, hm->lin[l][FPK_DEC_QKV], h, qkvw, n);
			for (int j = 0; j < qkvw; j++)
				qkv[j] = r16(qkv[j]);
			for (int hh = 0; hh < H + 2 * Hkv; hh++) {
				float *v = qkv + (size_t)hh * d;
				if (ln)
					for (int i = 0; i < d; i++)
						v[i] += h2f(V[FPK_DEC_QKV_B][hh * d + i]);
				if (!ln && hh < H + Hkv)
					for (int i = 0; i < d / 2; i++) {
						float a = (float)p * hm->inv_freq[i], cs = cosf(a), sn = sinf(a);
						float x1 = v[i], x2 = v[i + d / 2];
						v[i] = x1 * cs - x2 * sn;
						v[i + d / 2] = x2 * cs + x1 * sn;
					}
				for (int i = 0; i < d; i++)
					v[i] = r16(v[i]);
				if (hh < H) {
					memcpy(q + (size_t)hh * d, v, 4 * (size_t)d);
				} else {
					int kvh = hh < H + Hkv ? hh - H : hh - H - Hkv;
					uint16_t *cache = hh < H + Hkv ? kc[l] : vc[l];
					for (int i = 0; i < d; i++)
						cache[(((size_t)b * Hkv + kvh) * L + p) * d + i] = fpk_f32_to_f16(v[i]);
				}
			}
			for (int hh = 0; hh < H; hh++) {
				int kvh = hh / G;
				const uint16_t *K = kc[l] + ((size_t)b * Hkv + kvh) * L * d, *Vv = vc[l] + ((size_t)b * Hkv + kvh) * L * d;
				float mx = -INFINITY, sum = 0;
				for (int j = 0; j <= p; j++) {
					float s = 0;
					for (int i = 0; i < d; i++)
						s += q[hh * d + i] * h2f(K[(size_t)j * d + i]);
					sc[j] = s / sqrtf((float)d);
					mx = sc[j] > mx ? sc[j] : mx;
				}
				for (int j = 0; j <= p; j++)
					sum += (sc[j] = expf(sc[j] - mx));
				for (int i = 0; i < d; i++) {
					float acc = 0;
					for (int j = 0; j <= p; j++)
						acc += sc[j] * h2f(Vv[(size_t)j * d + i]);
					att[hh * d + i] = r16(acc / sum);
				}
			}
			matvec(o, hm->lin[l][FPK_DEC_O], att, n, (int64_t)H * d);
			for (int i = 0; i < n; i++)
				x[i] += r16(o[i]) + (ln ? h2f(V[FPK_DEC_O_B][i]) : 0.0f);
			norm(h, x, V[FPK_DEC_NORM2_W], V[FPK_DEC_NORM2_B], n, c->norm_eps, ln);
			matvec(up, hm->lin[l][FPK_DEC_UP], h, upw, n);
			for (int i = 0; i < c->ffn; i++) {
				float v;
				if (ln) {
					v = r16(up[i]) + h2f(V[FPK_DEC_UP_B][i]);
					v = v > 0 ? v : 0;
				} else {
					float g = r16(up[i]), u = r16(up[c->ffn + i]);
					v = g / (1.0f + expf(-g)) * u;
				}
				act[i] = r16(v);
			}
			matvec(down, hm->lin[l][FPK_DEC_DOWN], act, n, c->ffn);
			for (int i = 0; i < n; i++)
				down[i] = r16(down[i]);
		}
		for (int i = 0; i < n; i++)
			x[i] += down[i] + (ln ? h2f(hm->vec[c->layers - 1][FPK_DEC_DOWN_B][i]) : 0.0f);
		norm(h, x, hm->glob[FPK_DEC_FINAL_W], hm->glob[FPK_DEC_FINAL_B], n, c->norm_eps, ln);
		matvec(logits + (size_t)b * c->vocab, hm->glob[FPK_DEC_LM_HEAD], h, c->vocab, n);
	}
	free(x), free(h), free(qkv), free(q), free(att), free(o), free(up), free(act), free(down), free(sc);
}

static double rel_err(const float *a, const float *ref, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double e = (double)a[i] - (double)ref[i];
		num += e * e;
		den += (double)ref[i] * ref[i];
	}
	return sqrt(num / (den > 0 ? den : 1));
}

/* One batch on a GPU model and the host reference, `steps` steps from positions pos0; returns the worst logits
 * error and fills last_logits (B x vocab) with the GPU's last logits when not NULL. graph: also replay the last
 * step through a CUDA graph and check it agrees with the direct step. */
static double run_batch(const hmodel *hm, fpk_dec_model *m, int B, int L, const int32_t *pos0, int steps,
			uint64_t seed, int graph, float *last_logits)
{
	const fpk_dec_config *c = &hm->c;
	size_t per = (size_t)B * c->kv_heads * L * c->head_dim, nl = (size_t)B * c->vocab;
	uint16_t *kc[64], *vc[64], *got = malloc(per * 2);
	float *ref = malloc(nl * 4), *gl = malloc(nl * 4);
	int32_t *pos = malloc(4 * (size_t)B), *tok = malloc(4 * (size_t)B);
	fpk_dec_state *s = NULL;
	double worst = 1e30;
	uint64_t rs = seed;
	CHECK_OK(fpk_dec_state_new(m, B, L, &s));
	if (!s)
		goto done;
	CHECK_EQ_INT(fpk_dec_state_kv_bytes(s), (uint64_t)c->layers * 2 * per * 2);
	for (int l = 0; l < c->layers; l++) {
		void *k, *v;
		kc[l] = rand16(per, 0, 1.0f, &rs);
		vc[l] = rand16(per, 0, 1.0f, &rs);
		CHECK_OK(fpk_dec_kv(s, l, &k, &v));
		CHECK(cudaMemcpy(k, kc[l], per * 2, cudaMemcpyHostToDevice) == cudaSuccess);
		CHECK(cudaMemcpy(v, vc[l], per * 2, cudaMemcpyHostToDevice) == cudaSuccess);
	}
	worst = 0;
	for (int st = 0; st < steps; st++) {
		for (int b = 0; b < B; b++) {
			pos[b] = pos0[b] + st;
			tok[b] = (int32_t)(fpk_test_rand(&rs) % (uint64_t)(c->vocab + 2)) - 1; /* -1 and vocab: clamped */
		}
		CHECK_OK(fpk_dec_set_positions(s, pos));
		CHECK(cudaMemcpy(fpk_dec_tokens(s), tok, 4 * (size_t)B, cudaMemcpyHostToDevice) == cudaSuccess);
		CHECK(cudaMemset(fpk_dec_logits(s), 0xff, nl * 4) == cudaSuccess); /* NaN */
		CHECK_OK(fpk_dec_step(m, s, FPK_DEC_ALL, NULL));
		CHECK(cudaDeviceSynchronize() == cudaSuccess);
		CHECK(cudaMemcpy(gl, fpk_dec_logits(s), nl * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
		ref_step(hm, kc, vc, B, L, pos, tok, ref);
		double e = rel_err(gl, ref, nl);
		if (!(e <= worst))
			worst = e; /* NaN sticks */
		/* the cache: appended rows close to the reference, all others untouched */
		size_t bad_rows = 0;
		double num = 0, den = 0;
		for (int l = 0; l < c->layers; l++)
			for (int kv = 0; kv < 2; kv++) {
				void *k, *v;
				fpk_dec_kv(s, l, &k, &v);
				CHECK(cudaMemcpy(got, kv ? v : k, per * 2, cudaMemcpyDeviceToHost) == cudaSuccess);
				uint16_t *want = kv ? vc[l] : kc[l];
				for (size_t r = 0; r < per / c->head_dim; r++) {
					int b = (int)(r / ((size_t)c->kv_heads * L)), t = (int)(r % L);
					uint16_t *g = got + r * c->head_dim, *w = want + r * c->head_dim;
					if (t == pos[b]) {
						for (int i = 0; i < c->head_dim; i++) {
							double dv = (double)h2f(g[i]) - h2f(w[i]);
							num += dv * dv;
							den += (double)h2f(w[i]) * h2f(w[i]);
						}
						/* the reference continues from the GPU's row, so the next step compares like with like */
						memcpy(w, g, 2 * (size_t)c->head_dim);
					} else if (memcmp(g, w, 2 * (size_t)c->head_dim)) {
						bad_rows++;
					}
				}
			}
		CHECK_EQ_INT(bad_rows, 0);
		double ekv = sqrt(num / (den > 0 ? den : 1));
		CHECK(ekv <= TOL);
		fprintf(stderr, "  %s B=%d step %d: logits rel err %.2e, appended K/V rel err %.2e\n",
			c->arch == FPK_DEC_OPT ? "opt" : "llama", B, st, e, ekv);
	}
	if (graph) {
		/* replay the last step through a graph: same positions, same tokens, same logits */
		cudaStream_t st;
		cudaGraph_t g = NULL;
		cudaGraphExec_t ge = NULL;
		float *gg = malloc(nl * 4);
		CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
		CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
		CHECK_OK(fpk_dec_step(m, s, FPK_DEC_ALL, st));
		CHECK(cudaStreamEndCapture(st, &g) == cudaSuccess);
		CHECK(g && cudaGraphInstantiate(&ge, g, 0) == cudaSuccess);
		CHECK(cudaMemset(fpk_dec_logits(s), 0xff, nl * 4) == cudaSuccess);
		for (int r = 0; ge && r < 2; r++)
			CHECK(cudaGraphLaunch(ge, st) == cudaSuccess);
		CHECK(cudaStreamSynchronize(st) == cudaSuccess);
		CHECK(cudaMemcpy(gg, fpk_dec_logits(s), nl * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
		double eg = rel_err(gg, gl, nl);
		fprintf(stderr, "  graph replay vs direct step: rel diff %.2e\n", eg);
		CHECK(eg <= 1e-3);
		if (ge)
			cudaGraphExecDestroy(ge);
		if (g)
			cudaGraphDestroy(g);
		cudaStreamDestroy(st);
		free(gg);
	}
	if (last_logits)
		memcpy(last_logits, gl, nl * 4);
	for (int l = 0; l < c->layers; l++)
		free(kc[l]), free(vc[l]);
done:
	fpk_dec_state_free(s);
	free(got), free(ref), free(gl), free(pos), free(tok);
	return worst;
}

static fpk_dec_config llama_cfg(void)
{
	fpk_dec_config c = {0};
	c.arch = FPK_DEC_LLAMA;
	c.hidden = 256, c.heads = 4, c.kv_heads = 2, c.head_dim = 64, c.ffn = 352, c.layers = 2, c.vocab = 300;
	c.norm_eps = 1e-5f, c.rope_theta = 10000.0f;
	return c;
}

static fpk_dec_config opt_cfg(void)
{
	fpk_dec_config c = {0};
	c.arch = FPK_DEC_OPT;
	c.hidden = 192, c.heads = 3, c.kv_heads = 3, c.head_dim = 64, c.ffn = 512, c.layers = 2, c.vocab = 257;
	c.max_pos = 48, c.tie_embed = 1, c.norm_eps = 1e-5f;
	return c;
}

static void check_dense(fpk_dec_config c)
{
	uint64_t s = g_seed ^ (uint64_t)(c.arch + 1) * 0x9e3779b97f4a7c15ull;
	hmodel hm;
	fpk_dec_model *m = NULL;
	hmodel_init(&hm, &c, &s, 0);
	CHECK_OK(upload(&hm, 0, &m));
	if (m) {
		const int32_t pos[3] = {5, 17, 46}; /* two steps: the second at 47 = max_len - 1 */
		double e = run_batch(&hm, m, 3, 48, pos, 2, s, 0, NULL);
		CHECK(e <= TOL);
		fpk_dec_bytes by;
		fpk_dec_model_bytes(m, &by);
		CHECK_EQ_INT(by.dense_linears, c.layers * FPK_DEC_NLINEAR);
		CHECK_EQ_INT(by.sparse_linears, 0);
	}
	fpk_dec_model_free(m);
	hmodel_free(&hm);
}

static void decode_llama_should_match_host_reference(void) { check_dense(llama_cfg()); }
static void decode_opt_should_match_host_reference(void) { check_dense(opt_cfg()); }

/* the same 80%-pruned weights, dense and Tiled-CSL: both against the reference and against each other */
static void check_sparse(fpk_dec_config c)
{
	uint64_t s = g_seed ^ (uint64_t)(c.arch + 7) * 0xbf58476d1ce4e5b9ull;
	hmodel hm;
	fpk_dec_model *md = NULL, *ms = NULL;
	int B = 11, L = 40;
	int32_t pos[11];
	float *ld = malloc((size_t)B * c.vocab * 4), *ls = malloc((size_t)B * c.vocab * 4);
	hmodel_init(&hm, &c, &s, 0.8);
	for (int b = 0; b < B; b++)
		pos[b] = (int32_t)(fpk_test_rand(&s) % (uint64_t)(L - 1));
	CHECK_OK(upload(&hm, 0, &md));
	CHECK_OK(upload(&hm, 1, &ms));
	if (md && ms) {
		fpk_dec_bytes bd, bs;
		fpk_dec_model_bytes(md, &bd);
		fpk_dec_model_bytes(ms, &bs);
		CHECK_EQ_INT(bs.sparse_linears, c.layers * FPK_DEC_NLINEAR);
		CHECK(bs.linear < bd.linear); /* 80% sparse: about 0.4x + padding on these small matrices */
		double ed = run_batch(&hm, md, B, L, pos, 1, s, 0, ld);
		double es = run_batch(&hm, ms, B, L, pos, 1, s, 1, ls);
		double eds = rel_err(ls, ld, (size_t)B * c.vocab);
		fprintf(stderr, "  %s 80%%: dense %.2e, sparse %.2e vs reference; sparse vs dense %.2e; weights %llu / %llu bytes\n",
			c.arch == FPK_DEC_OPT ? "opt" : "llama", ed, es, eds, (unsigned long long)bs.linear,
			(unsigned long long)bd.linear);
		CHECK(ed <= TOL);
		CHECK(es <= TOL);
		CHECK(eds <= TOL);
	}
	fpk_dec_model_free(md);
	fpk_dec_model_free(ms);
	hmodel_free(&hm);
	free(ld), free(ls);
}

static void decode_sparse_llama_should_match_dense(void) { check_sparse(llama_cfg()); }
static void decode_sparse_opt_should_match_dense(void) { check_sparse(opt_cfg()); }

static void decode_should_reject_misuse(void)
{
	fpk_dec_config c = llama_cfg();
	fpk_dec_model *m = NULL;
	fpk_dec_state *s = NULL;
	void *d;
	size_t n;
	c.kv_heads = 3;
	CHECK_ERR(fpk_dec_model_new(&c, &m), FPK_EUSAGE, "multiple of kv_heads");
	c = llama_cfg();
	c.head_dim = 60;
	CHECK_ERR(fpk_dec_model_new(&c, &m), FPK_EUSAGE, "head_dim");
	c = opt_cfg();
	c.max_pos = 0;
	CHECK_ERR(fpk_dec_model_new(&c, &m), FPK_EUSAGE, "max_pos");
	c = llama_cfg();
	CHECK_OK(fpk_dec_model_new(&c, &m));
	if (!m)
		return;
	CHECK_ERR(fpk_dec_vector(m, 0, FPK_DEC_QKV_B, &d, &n), FPK_EUSAGE, "does not exist");
	CHECK_ERR(fpk_dec_vector(m, 2, FPK_DEC_NORM1_W, &d, &n), FPK_EUSAGE, "does not exist");
	CHECK_ERR(fpk_dec_global(m, FPK_DEC_POS_EMBED, &d, &n), FPK_EUSAGE, "does not exist");
	CHECK_ERR(fpk_dec_linear_dense(m, 0, 4, &d), FPK_EUSAGE, "does not exist");
	CHECK_ERR(fpk_dec_state_new(m, 2, 16, &s), FPK_EUSAGE, "has no weights");
	/* a matrix of the wrong shape */
	uint16_t w[8 * 64];
	uint64_t rs = g_seed | 1;
	for (int i = 0; i < 8 * 64; i++)
		w[i] = fpk_f32_to_f16(fpk_test_randn(&rs));
	fpk_tcsl t = {0};
	CHECK_OK(fpk_tcsl_encode(&t, w, 8, 64, FPK_F16, 1, 0, 1));
	CHECK_ERR(fpk_dec_linear_sparse(m, 0, FPK_DEC_O, &t), FPK_EUSAGE, "f16 256 x 256 matrix");
	fpk_tcsl_release(&t);
	for (int l = 0; l < c.layers; l++)
		for (int k = 0; k < FPK_DEC_NLINEAR; k++)
			CHECK_OK(fpk_dec_linear_dense(m, l, k, &d));
	CHECK_OK(fpk_dec_state_new(m, 2, 16, &s));
	if (s) {
		int32_t bad[2] = {3, 16}, neg[2] = {-1, 0};
		CHECK_ERR(fpk_dec_set_positions(s, bad), FPK_EUSAGE, "position 16 of sequence 1 is outside 0..15");
		CHECK_ERR(fpk_dec_set_positions(s, neg), FPK_EUSAGE, "outside");
		CHECK_ERR(fpk_dec_kv(s, 2, &d, &d), FPK_EUSAGE, "does not exist");
		/* the timing masks run (on whatever the weights hold) */
		int32_t ok[2] = {0, 15};
		CHECK_OK(fpk_dec_set_positions(s, ok));
		CHECK_OK(fpk_dec_step(m, s, FPK_DEC_PH_QKV | FPK_DEC_PH_DOWN, NULL));
		CHECK_OK(fpk_dec_step(m, s, FPK_DEC_PH_ATTN | FPK_DEC_PH_HEAD, NULL));
		CHECK(cudaDeviceSynchronize() == cudaSuccess);
	}
	fpk_dec_state_free(s);
	fpk_dec_model_free(m);
}

int main(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
		fprintf(stderr, "no CUDA device: skipped\n");
		return 0;
	}
	const char *e = getenv("FPK_TEST_SEED");
	g_seed = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
	if (!g_seed)
		g_seed = 1;
	fprintf(stderr, "seed %llu (FPK_TEST_SEED)\n", (unsigned long long)g_seed);
	RUN(decode_llama_should_match_host_reference);
	RUN(decode_opt_should_match_host_reference);
	RUN(decode_sparse_llama_should_match_dense);
	RUN(decode_sparse_opt_should_match_dense);
	RUN(decode_should_reject_misuse);
	TEST_EXIT();
}
