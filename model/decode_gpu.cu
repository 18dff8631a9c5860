/* decode_gpu.cu: the resident fp16 decode engine (API and numerics in decode_gpu.h). One step for B sequences:
 *   [other]  x = embed[tok] (+ pos_embed[pos])                                     x: fp32 residual (B, hidden)
 *   per layer:
 *   [other]  x += down_prev (+ b_down); h = norm1(x)                               one fused kernel
 *   [linear] qkv = h Wqkv^T                                                        cuBLAS or SpMM
 *   [attn]   q = rope(qkv_q + b), K[pos] = rope(qkv_k + b), V[pos] = qkv_v + b      one kernel
 *   [attn]   att = softmax(q K^T / sqrt d) V over 0..pos (fpk_ds_dense_decode), fp32 -> fp16
 *   [linear] o = att Wo^T
 *   [other]  x += o (+ b_o); h = norm2(x)
 *   [linear] up = h Wup^T;  [other] a = silu(gate) * up  or  relu(fc1 + b);  [linear] down = a Wdown^T
 *   [head]   x += down (+ b_down); h = norm_f(x); logits = h E^T (dense cuBLAS, fp32 out)
 * The small kernels use one block per sequence row (norms) or one thread per element; B <= a few dozen, so they
 * are latency-bound and cheap. Tested by tests/gpu/test_decode_gpu.c against a host fp32 reference. */
#include "decode_gpu.h"
#include "ds_attention.h"
#include "fpk_cuda.h"
#include "fpk_pdl.cuh"
#include "spmm.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct dec_linear {
	int64_t m, k;
	int kind;              /* 0 unset, 1 dense, 2 Tiled-CSL */
	void *w;               /* dense: (m, k) fp16 */
	fpk_spmm_weights sw;   /* Tiled-CSL */
	uint64_t bytes;
} dec_linear;

struct fpk_dec_model {
	fpk_dec_config c;
	dec_linear *lin;       /* (layers, FPK_DEC_NLINEAR) */
	__half *vec;           /* all per-layer vectors: layer l, vector v at vec + l * vec_stride + vec_off[v] */
	size_t vec_off[FPK_DEC_NVEC], vec_stride;
	__half *glob[FPK_DEC_NGLOBAL];
	float *inv_freq;       /* (d / 2) RoPE frequencies */
	uint64_t vec_bytes, glob_bytes;
};

struct fpk_dec_state {
	const fpk_dec_model *m;
	int B, L;
	__half *kv;            /* (layers, 2, B, Hkv, L, d) */
	uint64_t kv_bytes, other_bytes;
	float *x;              /* (B, hidden) residual */
	__half *h;             /* (B, hidden) normalized */
	__half *qkv;           /* (B, (H + 2 Hkv) d) */
	__half *q;             /* (B, H, d) post-RoPE */
	float *att;            /* (B, H, d) */
	__half *atth;          /* (B, H d) */
	__half *o;             /* (B, hidden) o-projection output */
	__half *down;          /* (B, hidden) */
	__half *up;            /* (B, 2 ffn) or (B, ffn) */
	__half *act;           /* (B, ffn) */
	float *logits;         /* (B, vocab) */
	int32_t *tok, *pos, *lens;
	void *spmm_ws;
	size_t spmm_ws_size;
	fpk_ds_workspace *ds_ws;
	void *cublas;
};

/* ---- kernels ---- */

/* block-wide sum over blockDim.x (a multiple of 32, at most 1024); every thread gets the total */
static __device__ float block_sum(float v, float *red)
{
	for (int o = 16; o; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	__syncthreads(); /* red may still be read from a previous call */
	if ((threadIdx.x & 31) == 0)
		red[w] = v;
	__syncthreads();
	float t = 0;
	for (int i = 0; i < nw; i++)
		t += red[i];
	return t;
}

/* x[b] = embed[tok[b]] (+ pos_embed[pos[b]]); grid B */
static __global__ void k_embed(float *x, const __half *emb, const __half *pemb, const int32_t *tok, const int32_t *pos,
			       int n, int vocab, int max_pos)
{
	fpk_pdl_trigger();
	fpk_pdl_wait();
	int b = blockIdx.x, t = tok[b];
	t = t < 0 ? 0 : t >= vocab ? vocab - 1 : t;
	const __half *e = emb + (size_t)t * n;
	const __half *pe = NULL;
	if (pemb) {
		int p = pos[b];
		p = p < 0 ? 0 : p >= max_pos ? max_pos - 1 : p;
		pe = pemb + (size_t)p * n;
	}
	for (int i = threadIdx.x; i < n; i += blockDim.x)
		x[(size_t)b * n + i] = __half2float(e[i]) + (pe ? __half2float(pe[i]) : 0.0f);
}

/* x[b] += y[b] + yb (when y), then out[b] = norm(x[b]) * w (+ nb): RMSNorm (ln 0) or LayerNorm; grid B */
static __global__ void k_add_norm(float *x, const __half *y, const __half *yb, const __half *w, const __half *nb,
				  __half *out, int n, float eps, int ln)
{
	fpk_pdl_trigger();
	fpk_pdl_wait();
	__shared__ float red[32];
	float *xr = x + (size_t)blockIdx.x * n;
	const __half *yr = y ? y + (size_t)blockIdx.x * n : NULL;
	__half *orow = out + (size_t)blockIdx.x * n;
	float s = 0, s2 = 0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float v = xr[i];
		if (yr) {
			v += __half2float(yr[i]) + (yb ? __half2float(yb[i]) : 0.0f);
			xr[i] = v;
		}
		s += v;
		s2 += v * v;
	}
	float mean = 0, var;
	if (ln) {
		mean = block_sum(s, red) / (float)n;
		float d2 = 0;
		for (int i = threadIdx.x; i < n; i += blockDim.x) {
			float dv = xr[i] - mean;
			d2 += dv * dv;
		}
		var = block_sum(d2, red) / (float)n;
	} else {
		var = block_sum(s2, red) / (float)n;
	}
	float r = rsqrtf(var + eps);
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float v = (xr[i] - mean) * r * __half2float(w[i]) + (nb ? __half2float(nb[i]) : 0.0f);
		orow[i] = __float2half(v);
	}
}

/* split qkv (B, (H + 2 Hkv) d) into q (B, H, d) and the caches at pos[b], adding the bias and rotating q and k
 * (rotate-half pairs i, i + d/2) when inv_freq is set; grid (B, H + Hkv), d/2 threads */
static __global__ void k_qkv_post(const __half *qkv, const __half *bias, const int32_t *pos, const float *inv_freq,
				  __half *q, __half *kc, __half *vc, int H, int Hkv, int d, int L)
{
	fpk_pdl_trigger();
	fpk_pdl_wait();
	int b = blockIdx.x, hh = blockIdx.y, i = threadIdx.x, half = d / 2;
	size_t row = (size_t)b * (H + 2 * Hkv) * d;
	int p = pos[b];
	int src = hh * d; /* column of this head in qkv */
	__half *dst;
	if (hh < H) {
		dst = q + ((size_t)b * H + hh) * d;
	} else {
		int kvh = hh - H;
		size_t crow = (((size_t)b * Hkv + kvh) * L + p) * d;
		dst = kc + crow;
		int vs = (H + Hkv + kvh) * d;
		float v1 = __half2float(qkv[row + vs + i]), v2 = __half2float(qkv[row + vs + i + half]);
		if (bias) {
			v1 += __half2float(bias[vs + i]);
			v2 += __half2float(bias[vs + i + half]);
		}
		vc[crow + i] = __float2half(v1);
		vc[crow + i + half] = __float2half(v2);
	}
	float x1 = __half2float(qkv[row + src + i]), x2 = __half2float(qkv[row + src + i + half]);
	if (bias) {
		x1 += __half2float(bias[src + i]);
		x2 += __half2float(bias[src + i + half]);
	}
	if (inv_freq) {
		float sn, cs;
		sincosf((float)p * inv_freq[i], &sn, &cs);
		float y1 = x1 * cs - x2 * sn, y2 = x2 * cs + x1 * sn;
		x1 = y1;
		x2 = y2;
	}
	dst[i] = __float2half(x1);
	dst[i + half] = __float2half(x2);
}

static __global__ void k_f32_to_f16(__half *y, const float *x, size_t n)
{
	fpk_pdl_trigger();
	fpk_pdl_wait();
	size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
	if (i < n)
		y[i] = __float2half(x[i]);
}

/* a (B, ffn) = silu(up[:, :ffn]) * up[:, ffn:] (swiglu) or relu(up + b) */
static __global__ void k_act(__half *a, const __half *up, const __half *b, int B, int ffn, int swiglu)
{
	fpk_pdl_trigger();
	fpk_pdl_wait();
	size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
	if (i >= (size_t)B * ffn)
		return;
	size_t r = i / ffn, c = i % ffn;
	float v;
	if (swiglu) {
		float g = __half2float(up[r * 2 * ffn + c]), u = __half2float(up[r * 2 * ffn + ffn + c]);
		v = g / (1.0f + expf(-g)) * u;
	} else {
		v = __half2float(up[r * ffn + c]) + (b ? __half2float(b[c]) : 0.0f);
		v = v > 0 ? v : 0;
	}
	a[i] = __float2half(v);
}

/* ---- shapes and the model ---- */

static int check_config(const fpk_dec_config *c)
{
	if (c->arch != FPK_DEC_LLAMA && c->arch != FPK_DEC_OPT)
		return fpk_error_set(FPK_EUSAGE, "decode: arch %d is not llama (0) or opt (1)", c->arch);
	if (c->hidden < 8 || c->hidden % 8 || c->ffn < 8 || c->ffn % 8)
		return fpk_error_set(FPK_EUSAGE, "decode: hidden %d and ffn %d must be positive multiples of 8", c->hidden,
				     c->ffn);
	if (c->heads < 1 || c->kv_heads < 1 || c->heads % c->kv_heads)
		return fpk_error_set(FPK_EUSAGE, "decode: heads %d must be a multiple of kv_heads %d", c->heads,
				     c->kv_heads);
	if (c->head_dim < 8 || c->head_dim > 256 || c->head_dim % 8)
		return fpk_error_set(FPK_EUSAGE, "decode: head_dim %d must be a multiple of 8 in 8..256", c->head_dim);
	if (c->layers < 1 || c->vocab < 1)
		return fpk_error_set(FPK_EUSAGE, "decode: layers %d and vocab %d must be positive", c->layers, c->vocab);
	if (c->arch == FPK_DEC_OPT && c->max_pos < 1)
		return fpk_error_set(FPK_EUSAGE, "decode: opt needs max_pos >= 1 (learned positions), got %d", c->max_pos);
	if (c->arch == FPK_DEC_LLAMA && !(c->rope_theta > 0))
		return fpk_error_set(FPK_EUSAGE, "decode: llama needs rope_theta > 0");
	if (!(c->norm_eps > 0))
		return fpk_error_set(FPK_EUSAGE, "decode: norm_eps must be positive");
	return 0;
}

static void linear_release(dec_linear *l)
{
	if (l->kind == 1)
		cudaFree(l->w);
	else if (l->kind == 2)
		fpk_spmm_weights_free(&l->sw);
	l->w = NULL;
	l->kind = 0;
	l->bytes = 0;
}

extern "C" void fpk_dec_model_free(fpk_dec_model *m)
{
	if (!m)
		return;
	if (m->lin)
		for (int i = 0; i < m->c.layers * FPK_DEC_NLINEAR; i++)
			linear_release(&m->lin[i]);
	free(m->lin);
	cudaFree(m->vec);
	for (int g = 0; g < FPK_DEC_NGLOBAL; g++)
		if (!(g == FPK_DEC_LM_HEAD && m->c.tie_embed))
			cudaFree(m->glob[g]);
	cudaFree(m->inv_freq);
	free(m);
}

extern "C" int fpk_dec_model_new(const fpk_dec_config *c, fpk_dec_model **out)
{
	int rc;
	*out = NULL;
	if ((rc = check_config(c)))
		return rc;
	fpk_dec_model *m = (fpk_dec_model *)calloc(1, sizeof(*m));
	float *f = NULL;
	if (!m || !(m->lin = (dec_linear *)calloc((size_t)c->layers * FPK_DEC_NLINEAR, sizeof(dec_linear)))) {
		free(m);
		return fpk_error_set(FPK_EIO, "decode: out of host memory");
	}
	m->c = *c;
	for (int l = 0; l < c->layers; l++)
		for (int w = 0; w < FPK_DEC_NLINEAR; w++)
			fpk_dec_linear_shape(c, w, &m->lin[l * FPK_DEC_NLINEAR + w].m, &m->lin[l * FPK_DEC_NLINEAR + w].k);
	size_t off = 0;
	for (int v = 0; v < FPK_DEC_NVEC; v++) {
		m->vec_off[v] = off;
		off += (fpk_dec_vec_len(c, v) + 7) & ~(size_t)7; /* 16-byte aligned vectors */
	}
	m->vec_stride = off;
	m->vec_bytes = (uint64_t)off * c->layers * 2;
	FPK_CUDA_GOTO(cudaMalloc((void **)&m->vec, m->vec_bytes), rc, done);
	for (int g = 0; g < FPK_DEC_NGLOBAL; g++) {
		size_t n = fpk_dec_global_len(c, g);
		if (g == FPK_DEC_LM_HEAD && c->tie_embed) {
			m->glob[g] = m->glob[FPK_DEC_EMBED];
			continue;
		}
		if (!n)
			continue;
		FPK_CUDA_GOTO(cudaMalloc((void **)&m->glob[g], n * 2), rc, done);
		m->glob_bytes += n * 2;
	}
	if (c->arch == FPK_DEC_LLAMA) {
		int half = c->head_dim / 2;
		if (!(f = (float *)malloc(sizeof(float) * half))) {
			rc = fpk_error_set(FPK_EIO, "decode: out of host memory");
			goto done;
		}
		for (int i = 0; i < half; i++) /* the CPU engine's formula (model/model.c) */
			f[i] = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
		FPK_CUDA_GOTO(cudaMalloc((void **)&m->inv_freq, sizeof(float) * half), rc, done);
		FPK_CUDA_GOTO(cudaMemcpy(m->inv_freq, f, sizeof(float) * half, cudaMemcpyHostToDevice), rc, done);
	}
	*out = m;
	m = NULL;
done:
	free(f);
	fpk_dec_model_free(m);
	return rc;
}

extern "C" const fpk_dec_config *fpk_dec_model_config(const fpk_dec_model *m) { return &m->c; }

static int get_linear(fpk_dec_model *m, int layer, int which, dec_linear **l)
{
	if (layer < 0 || layer >= m->c.layers || which < 0 || which >= FPK_DEC_NLINEAR)
		return fpk_error_set(FPK_EUSAGE, "decode: linear %d of layer %d does not exist (%d layers)", which, layer,
				     m->c.layers);
	*l = &m->lin[layer * FPK_DEC_NLINEAR + which];
	return 0;
}

extern "C" int fpk_dec_linear_dense(fpk_dec_model *m, int layer, int which, void **w)
{
	dec_linear *l;
	int rc = get_linear(m, layer, which, &l);
	*w = NULL;
	if (rc)
		return rc;
	linear_release(l);
	FPK_CUDA_TRY(cudaMalloc(&l->w, (size_t)l->m * l->k * 2));
	l->kind = 1;
	l->bytes = (uint64_t)l->m * l->k * 2;
	*w = l->w;
	return 0;
}

extern "C" int fpk_dec_linear_sparse(fpk_dec_model *m, int layer, int which, const fpk_tcsl *t)
{
	dec_linear *l;
	int rc = get_linear(m, layer, which, &l);
	if (rc)
		return rc;
	if (t->m != l->m || t->k != l->k || t->dtype != FPK_F16)
		return fpk_error_set(FPK_EUSAGE, "decode: layer %d linear %d is an f16 %lld x %lld matrix, got %lld x %lld",
				     layer, which, (long long)l->m, (long long)l->k, (long long)t->m, (long long)t->k);
	linear_release(l);
	if ((rc = fpk_spmm_upload(&l->sw, t)))
		return rc;
	l->kind = 2;
	l->bytes = (uint64_t)t->n_entries * 4 + (uint64_t)(t->tiles_m * t->tiles_k + 3) * 4;
	return 0;
}

extern "C" int fpk_dec_vector(fpk_dec_model *m, int layer, int which, void **dev, size_t *n)
{
	*dev = NULL;
	*n = 0;
	if (layer < 0 || layer >= m->c.layers || which < 0 || which >= FPK_DEC_NVEC || !fpk_dec_vec_len(&m->c, which))
		return fpk_error_set(FPK_EUSAGE, "decode: vector %d of layer %d does not exist in this model", which, layer);
	*dev = m->vec + (size_t)layer * m->vec_stride + m->vec_off[which];
	*n = fpk_dec_vec_len(&m->c, which);
	return 0;
}

extern "C" int fpk_dec_global(fpk_dec_model *m, int which, void **dev, size_t *n)
{
	*dev = NULL;
	*n = 0;
	if (which < 0 || which >= FPK_DEC_NGLOBAL || !m->glob[which])
		return fpk_error_set(FPK_EUSAGE, "decode: global tensor %d does not exist in this model", which);
	*dev = m->glob[which];
	*n = fpk_dec_global_len(&m->c, which);
	return 0;
}

extern "C" void fpk_dec_model_bytes(const fpk_dec_model *m, fpk_dec_bytes *b)
{
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < m->c.layers * FPK_DEC_NLINEAR; i++) {
		b->linear += m->lin[i].bytes;
		b->dense_linears += m->lin[i].kind == 1;
		b->sparse_linears += m->lin[i].kind == 2;
	}
	b->vectors = m->vec_bytes;
	b->globals = m->glob_bytes;
}

/* ---- the state ---- */

extern "C" void fpk_dec_state_free(fpk_dec_state *s)
{
	if (!s)
		return;
	cudaFree(s->kv);
	cudaFree(s->x);
	cudaFree(s->h);
	cudaFree(s->qkv);
	cudaFree(s->q);
	cudaFree(s->att);
	cudaFree(s->atth);
	cudaFree(s->o);
	cudaFree(s->down);
	cudaFree(s->up);
	cudaFree(s->act);
	cudaFree(s->logits);
	cudaFree(s->tok);
	cudaFree(s->pos);
	cudaFree(s->lens);
	if (s->spmm_ws)
		fpk_spmm_workspace_free(s->spmm_ws);
	fpk_ds_workspace_free(s->ds_ws);
	fpk_dense_handle_free(s->cublas);
	free(s);
}

static fpk_ds_shape ds_shape(const fpk_dec_state *s)
{
	const fpk_dec_config *c = &s->m->c;
	fpk_ds_shape sh;
	sh.batch = s->B;
	sh.heads = c->heads;
	sh.kv_heads = c->kv_heads;
	sh.head_dim = c->head_dim;
	sh.max_len = s->L;
	sh.kv_dtype = FPK_F16;
	return sh;
}

extern "C" int fpk_dec_state_new(const fpk_dec_model *m, int batch, int max_len, fpk_dec_state **out)
{
	int rc = 0;
	const fpk_dec_config *c = &m->c;
	*out = NULL;
	if (batch < 1 || max_len < 1)
		return fpk_error_set(FPK_EUSAGE, "decode: batch %d and max_len %d must be positive", batch, max_len);
	int64_t max_m = 0;
	for (int i = 0; i < c->layers * FPK_DEC_NLINEAR; i++) {
		if (!m->lin[i].kind)
			return fpk_error_set(FPK_EUSAGE, "decode: layer %d linear %d has no weights", i / FPK_DEC_NLINEAR,
					     i % FPK_DEC_NLINEAR);
		if (m->lin[i].kind == 2 && m->lin[i].m > max_m)
			max_m = m->lin[i].m;
	}
	fpk_dec_state *s = (fpk_dec_state *)calloc(1, sizeof(*s));
	if (!s)
		return fpk_error_set(FPK_EIO, "decode: out of host memory");
	s->m = m;
	s->B = batch;
	s->L = max_len;
	size_t B = (size_t)batch, hd = (size_t)c->heads * c->head_dim, kvd = (size_t)c->kv_heads * c->head_dim;
	size_t upw = (c->arch == FPK_DEC_LLAMA ? 2 : 1) * (size_t)c->ffn;
	s->kv_bytes = (uint64_t)c->layers * 2 * B * kvd * (uint64_t)max_len * 2;
#define ALLOC(p, bytes)                                                                                      \
	do {                                                                                                     \
		FPK_CUDA_GOTO(cudaMalloc((void **)&s->p, (bytes)), rc, done);                                        \
		s->other_bytes += (bytes);                                                                           \
	} while (0)
	FPK_CUDA_GOTO(cudaMalloc((void **)&s->kv, s->kv_bytes), rc, done);
	ALLOC(x, B * c->hidden * 4);
	ALLOC(h, B * c->hidden * 2);
	ALLOC(qkv, B * (hd + 2 * kvd) * 2);
	ALLOC(q, B * hd * 2);
	ALLOC(att, B * hd * 4);
	ALLOC(atth, B * hd * 2);
	ALLOC(o, B * c->hidden * 2);
	ALLOC(down, B * c->hidden * 2);
	ALLOC(up, B * upw * 2);
	ALLOC(act, B * c->ffn * 2);
	ALLOC(logits, B * c->vocab * 4);
	ALLOC(tok, B * 4);
	ALLOC(pos, B * 4);
	ALLOC(lens, B * 4);
#undef ALLOC
	FPK_CUDA_GOTO(cudaMemset(s->tok, 0, B * 4), rc, done);
	FPK_CUDA_GOTO(cudaMemset(s->pos, 0, B * 4), rc, done);
	{
		int32_t *one = (int32_t *)malloc(B * 4);
		if (!one) {
			rc = fpk_error_set(FPK_EIO, "decode: out of host memory");
			goto done;
		}
		for (size_t b = 0; b < B; b++)
			one[b] = 1;
		cudaError_t e = cudaMemcpy(s->lens, one, B * 4, cudaMemcpyHostToDevice);
		free(one);
		FPK_CUDA_GOTO(e, rc, done);
	}
	if (max_m) {
		s->spmm_ws_size = fpk_spmm_workspace_size(max_m, batch);
		if ((rc = fpk_spmm_workspace_alloc(&s->spmm_ws, s->spmm_ws_size)))
			goto done;
		s->other_bytes += s->spmm_ws_size;
	}
	{
		fpk_ds_shape sh = ds_shape(s);
		if ((rc = fpk_ds_workspace_new(&sh, 1, &s->ds_ws)))
			goto done;
	}
	if ((rc = fpk_dense_handle(&s->cublas)))
		goto done;
	*out = s;
	s = NULL;
done:
	fpk_dec_state_free(s);
	return rc;
}

extern "C" uint64_t fpk_dec_state_kv_bytes(const fpk_dec_state *s) { return s->kv_bytes; }
extern "C" uint64_t fpk_dec_state_other_bytes(const fpk_dec_state *s) { return s->other_bytes; }
extern "C" int32_t *fpk_dec_tokens(fpk_dec_state *s) { return s->tok; }
extern "C" float *fpk_dec_logits(fpk_dec_state *s) { return s->logits; }

extern "C" int fpk_dec_kv(fpk_dec_state *s, int layer, void **k, void **v)
{
	const fpk_dec_config *c = &s->m->c;
	*k = *v = NULL;
	if (layer < 0 || layer >= c->layers)
		return fpk_error_set(FPK_EUSAGE, "decode: layer %d does not exist (%d layers)", layer, c->layers);
	size_t per = (size_t)s->B * c->kv_heads * (size_t)s->L * c->head_dim;
	*k = s->kv + (size_t)layer * 2 * per;
	*v = s->kv + ((size_t)layer * 2 + 1) * per;
	return 0;
}

extern "C" int fpk_dec_set_positions(fpk_dec_state *s, const int32_t *pos)
{
	int rc = 0;
	int32_t *lens = (int32_t *)malloc((size_t)s->B * 4);
	if (!lens)
		return fpk_error_set(FPK_EIO, "decode: out of host memory");
	for (int b = 0; b < s->B; b++) {
		if (pos[b] < 0 || pos[b] >= s->L ||
		    (s->m->c.arch == FPK_DEC_OPT && pos[b] >= s->m->c.max_pos)) {
			rc = fpk_error_set(FPK_EUSAGE, "decode: position %d of sequence %d is outside 0..%d", pos[b], b,
					   (s->m->c.arch == FPK_DEC_OPT && s->m->c.max_pos < s->L ? s->m->c.max_pos : s->L) - 1);
			goto done;
		}
		lens[b] = pos[b] + 1;
	}
	FPK_CUDA_GOTO(cudaMemcpy(s->pos, pos, (size_t)s->B * 4, cudaMemcpyHostToDevice), rc, done);
	FPK_CUDA_GOTO(cudaMemcpy(s->lens, lens, (size_t)s->B * 4, cudaMemcpyHostToDevice), rc, done);
done:
	free(lens);
	return rc;
}

/* ---- one step ---- */

static int run_linear(const dec_linear *l, fpk_dec_state *s, const __half *x, __half *y, cudaStream_t st)
{
	if (l->kind == 2) {
		fpk_spmm_params p;
		memset(&p, 0, sizeof(p));
		p.w = &l->sw;
		p.x = x;
		p.y = y;
		p.n = s->B;
		p.workspace = s->spmm_ws;
		p.workspace_size = s->spmm_ws_size;
		p.stream = st;
		return fpk_spmm_run(&p);
	}
	return fpk_dense_gemm(s->cublas, FPK_F16, FPK_F16, l->w, x, y, l->m, l->k, s->B, st);
}

extern "C" int fpk_dec_step(const fpk_dec_model *m, fpk_dec_state *s, unsigned phases, void *stream)
{
	const fpk_dec_config *c = &m->c;
	cudaStream_t st = (cudaStream_t)stream;
	int rc, B = s->B, ln = c->arch == FPK_DEC_OPT, H = c->heads, Hkv = c->kv_heads, d = c->head_dim;
	int att = phases & FPK_DEC_PH_ATTN, oth = phases & FPK_DEC_PH_OTHER;
	unsigned lin = (phases & FPK_DEC_PH_LINEAR) ? 15u : (phases >> 4) & 15u; /* bit w: linear w */
	if (s->m != m)
		return fpk_error_set(FPK_EUSAGE, "decode: the state was made for another model");
	int nthr = c->hidden >= 4096 ? 1024 : c->hidden >= 1024 ? 512 : 256;
	int pdl = fpk_pdl_enabled(); /* the step's kernels start with trigger + wait (kernels/fpk_pdl.cuh) */
	size_t hd = (size_t)H * d;
	const __half *vec = m->vec;
#define VEC(l, v) (fpk_dec_vec_len(c, (v)) ? vec + (size_t)(l) * m->vec_stride + m->vec_off[(v)] : (const __half *)NULL)
	if (oth) {
		FPK_CUDA_TRY(fpk_launch_pdl(k_embed, dim3(B), dim3(256), 0, st, pdl, s->x, m->glob[FPK_DEC_EMBED],
					    m->glob[FPK_DEC_POS_EMBED], s->tok, s->pos, c->hidden, c->vocab,
					    c->max_pos));
	}
	fpk_ds_shape sh = ds_shape(s);
	for (int l = 0; l < c->layers; l++) {
		const dec_linear *L = &m->lin[l * FPK_DEC_NLINEAR];
		void *kc, *vc;
		fpk_dec_kv(s, l, &kc, &vc);
		if (oth) {
			FPK_CUDA_TRY(fpk_launch_pdl(k_add_norm, dim3(B), dim3(nthr), 0, st, pdl, s->x,
						    l ? s->down : NULL, l ? VEC(l - 1, FPK_DEC_DOWN_B) : NULL,
						    VEC(l, FPK_DEC_NORM1_W), VEC(l, FPK_DEC_NORM1_B), s->h,
						    c->hidden, c->norm_eps, ln));
		}
		if ((lin & 1u) && (rc = run_linear(&L[FPK_DEC_QKV], s, s->h, s->qkv, st)))
			return rc;
		if (att) {
			FPK_CUDA_TRY(fpk_launch_pdl(k_qkv_post, dim3(B, H + Hkv), dim3(d / 2), 0, st, pdl,
						    s->qkv, VEC(l, FPK_DEC_QKV_B), s->pos, m->inv_freq, s->q,
						    (__half *)kc, (__half *)vc, H, Hkv, d, s->L));
			fpk_ds_dense_params ap;
			ap.shape = sh;
			ap.q = s->q;
			ap.k = kc;
			ap.v = vc;
			ap.lens = s->lens;
			ap.out = s->att;
			if ((rc = fpk_ds_dense_decode(&ap, s->ds_ws, st)))
				return rc;
			size_t n = (size_t)B * hd;
			FPK_CUDA_TRY(fpk_launch_pdl(k_f32_to_f16, dim3((unsigned)((n + 255) / 256)), dim3(256), 0, st,
						    pdl, s->atth, s->att, n));
		}
		if ((lin & 2u) && (rc = run_linear(&L[FPK_DEC_O], s, s->atth, s->o, st)))
			return rc;
		if (oth) {
			FPK_CUDA_TRY(fpk_launch_pdl(k_add_norm, dim3(B), dim3(nthr), 0, st, pdl, s->x, s->o,
						    VEC(l, FPK_DEC_O_B), VEC(l, FPK_DEC_NORM2_W),
						    VEC(l, FPK_DEC_NORM2_B), s->h, c->hidden, c->norm_eps,
						    ln));
		}
		if ((lin & 4u) && (rc = run_linear(&L[FPK_DEC_UP], s, s->h, s->up, st)))
			return rc;
		if (oth) {
			size_t n = (size_t)B * c->ffn;
			FPK_CUDA_TRY(fpk_launch_pdl(k_act, dim3((unsigned)((n + 255) / 256)), dim3(256), 0, st, pdl,
						    s->act, s->up, VEC(l, FPK_DEC_UP_B), B, c->ffn, !ln));
		}
		if ((lin & 8u) && (rc = run_linear(&L[FPK_DEC_DOWN], s, s->act, s->down, st)))
			return rc;
	}
	if (phases & FPK_DEC_PH_HEAD) {
		FPK_CUDA_TRY(fpk_launch_pdl(k_add_norm, dim3(B), dim3(nthr), 0, st, pdl, s->x, s->down,
					    VEC(c->layers - 1, FPK_DEC_DOWN_B), m->glob[FPK_DEC_FINAL_W],
					    m->glob[FPK_DEC_FINAL_B], s->h, c->hidden, c->norm_eps, ln));
		if ((rc = fpk_dense_gemm(s->cublas, FPK_F16, FPK_F32, m->glob[FPK_DEC_LM_HEAD], s->h, s->logits, c->vocab,
					 c->hidden, B, st)))
			return rc;
	}
#undef VEC
	return 0;
}
