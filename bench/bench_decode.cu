/* bench_decode.cu: decode throughput of the resident fp16 engine (model/decode_gpu.h), dense weights (cuBLAS) vs
 * Tiled-CSL weights (our SpMM) in the same run, Llama-2-7B- and OPT-30B-shaped models with synthetic weights.
 * Run: build/bench/bench_decode [--model llama|opt|all] [--sparsity 0,0.7,0.8,0.9] [--batch 1,8,16,32]
 *      [--ctx 512,2048] [--layers N] [--reps N] [--threads N] [--csv FILE] [--md FILE] [--quick]
 * Results go to docs/BENCHMARKS.md "## decode throughput".
 *
 * Weights: w = (2u - 1) * sqrt(3 / k), u uniform from a counter hash of (matrix seed, index): the same numbers on
 * the GPU (dense, filled in place) and on the host (sparse). Sparse = magnitude pruning of those same weights at
 * the distribution's s-quantile (|w| >= s * sqrt(3 / k) kept: each weight with probability 1 - s), encoded with
 * fpk_tcsl_encode on all cores and uploaded; every layer's matrices are distinct. Layers: as many as fit with
 * dense weights next to the largest KV cache of the sweep (all layers of the real model when they fit).
 * KV cache: uniform(-1, 1) fp16 everywhere; a step at context L puts every sequence's new token at position L-1
 * and attends over L tokens. Tokens: uniform over the vocabulary.
 * Timing: one decode step captured in a CUDA graph (after an uncaptured warm-up step), four phase-only graphs
 * (linear layers / attention / other / head, fpk_dec_step's phase mask) and one graph per kind of linear layer
 * (qkv / o / up / down of every layer); each rep replays the nine graphs in turn,
 * timed with CUDA events; medians of the reps are reported. The weights (>= 1 GB a step) dwarf the 50 MB L2, so
 * no flushing is needed: at most the last few MB of a step are still in L2 when the next replay starts. */
#include "decode_gpu.h"
#include "fpk_common.h"
#include "tcsl.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CU(x)                                                                                                \
	do {                                                                                                     \
		cudaError_t e_ = (x);                                                                                \
		if (e_ != cudaSuccess) {                                                                             \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));             \
			exit(5);                                                                                         \
		}                                                                                                    \
	} while (0)
#define OK(x)                                                                                                \
	do {                                                                                                     \
		if ((x)) {                                                                                           \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, fpk_error_msg());                    \
			exit(5);                                                                                         \
		}                                                                                                    \
	} while (0)

enum { NPH = 9, MAXV = 16 };
/* graphs timed: the full step, the four phases alone, and each kind of linear layer alone */
static const unsigned phase_mask[NPH] = {FPK_DEC_ALL,     FPK_DEC_PH_LINEAR, FPK_DEC_PH_ATTN, FPK_DEC_PH_OTHER,
					 FPK_DEC_PH_HEAD, FPK_DEC_PH_QKV,    FPK_DEC_PH_O,    FPK_DEC_PH_UP,
					 FPK_DEC_PH_DOWN};

/* ---- deterministic synthetic numbers: the same function on host and device ---- */

static __host__ __device__ inline float hash_unit(uint64_t seed, uint64_t i) /* uniform [0, 1) */
{
	uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (float)(z >> 40) * (1.0f / 16777216.0f);
}

/* x[i] = mean + (2u - 1) * scale */
static __global__ void k_fill(__half *x, size_t n, uint64_t seed, float mean, float scale)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		x[i] = __float2half(mean + (2.0f * hash_unit(seed, i) - 1.0f) * scale);
}

static __global__ void k_tokens(int32_t *t, int n, uint64_t seed, int vocab)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		t[i] = (int32_t)(hash_unit(seed, (uint64_t)i) * (float)vocab) % vocab;
}

static void fill(void *x, size_t n, uint64_t seed, float mean, float scale)
{
	k_fill<<<2048, 256>>>((__half *)x, n, seed, mean, scale);
	CU(cudaGetLastError());
}

static uint64_t mat_seed(int model, int layer, int which)
{
	return 0x5eed0000ull + ((uint64_t)model << 40) + ((uint64_t)layer << 8) + (uint64_t)which;
}

/* host: the pruned matrix, rows in blocks of 64 on all workers */
typedef struct gen_ctx {
	uint16_t *w;
	int64_t m, k;
	uint64_t seed;
	float a, s;
} gen_ctx;

/* float -> fp16 bits, round to nearest even: the F16C instruction on x86-64 (branch-free, ~10x the library's
 * portable conversion, which the other targets use) */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("f16c"))) static void to_f16_row(uint16_t *w, const float *v, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(w + i), _mm256_cvtps_ph(_mm256_loadu_ps(v + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		w[i] = fpk_f32_to_f16(v[i]);
}
static int have_f16c(void) { return __builtin_cpu_supports("f16c"); }
#else
static void to_f16_row(uint16_t *w, const float *v, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		w[i] = fpk_f32_to_f16(v[i]);
}
static int have_f16c(void) { return 0; }
#endif

static int gen_rows(void *vctx, size_t blk, int tid)
{
	const gen_ctx *g = (const gen_ctx *)vctx;
	float buf[1024];
	(void)tid;
	int64_t r1 = (int64_t)(blk + 1) * 64 < g->m ? (int64_t)(blk + 1) * 64 : g->m;
	int fast = have_f16c();
	for (int64_t i0 = (int64_t)blk * 64 * g->k; i0 < r1 * g->k; i0 += 1024) {
		int64_t n = r1 * g->k - i0 < 1024 ? r1 * g->k - i0 : 1024;
		for (int64_t j = 0; j < n; j++) {
			float v = 2.0f * hash_unit(g->seed, (uint64_t)(i0 + j)) - 1.0f;
			buf[j] = fabsf(v) >= g->s ? v * g->a : 0.0f; /* compiles to a select */
		}
		if (fast)
			to_f16_row(g->w + i0, buf, n);
		else
			for (int64_t j = 0; j < n; j++)
				g->w[i0 + j] = fpk_f32_to_f16(buf[j]);
	}
	return 0;
}

/* ---- models ---- */

typedef struct shape_t {
	const char *name;
	fpk_dec_config c;
	int full_layers;
} shape_t;

static shape_t shape_llama(void)
{
	shape_t s;
	memset(&s, 0, sizeof(s));
	s.name = "Llama-2-7B";
	s.c.arch = FPK_DEC_LLAMA;
	s.c.hidden = 4096, s.c.heads = 32, s.c.kv_heads = 32, s.c.head_dim = 128, s.c.ffn = 11008, s.c.vocab = 32000;
	s.c.norm_eps = 1e-5f, s.c.rope_theta = 10000.0f;
	s.full_layers = 32;
	return s;
}

static shape_t shape_opt(void)
{
	shape_t s;
	memset(&s, 0, sizeof(s));
	s.name = "OPT-30B";
	s.c.arch = FPK_DEC_OPT;
	s.c.hidden = 7168, s.c.heads = 56, s.c.kv_heads = 56, s.c.head_dim = 128, s.c.ffn = 28672, s.c.vocab = 50272;
	s.c.max_pos = 2048, s.c.tie_embed = 1, s.c.norm_eps = 1e-5f;
	s.full_layers = 48;
	return s;
}

static uint64_t dense_layer_bytes(const fpk_dec_config *c)
{
	uint64_t b = 0;
	for (int w = 0; w < FPK_DEC_NLINEAR; w++) {
		int64_t m, k;
		fpk_dec_linear_shape(c, w, &m, &k);
		b += (uint64_t)m * k * 2;
	}
	for (int v = 0; v < FPK_DEC_NVEC; v++)
		b += (fpk_dec_vec_len(c, v) + 7) / 8 * 16;
	return b;
}

static uint64_t globals_bytes(const fpk_dec_config *c)
{
	uint64_t b = 0;
	for (int g = 0; g < FPK_DEC_NGLOBAL; g++)
		if (!(g == FPK_DEC_LM_HEAD && c->tie_embed))
			b += fpk_dec_global_len(c, g) * 2;
	return b;
}

/* build the model: dense (s == 0) filled on the GPU, else pruned + encoded on the host; seconds in *secs */
static fpk_dec_model *build_model(int mi, const fpk_dec_config *c, float s, int threads, double secs[3])
{
	fpk_dec_model *m = NULL;
	OK(fpk_dec_model_new(c, &m));
	secs[0] = secs[1] = secs[2] = 0;
	int64_t maxmk = 0;
	for (int w = 0; w < FPK_DEC_NLINEAR; w++) {
		int64_t rows, k;
		fpk_dec_linear_shape(c, w, &rows, &k);
		maxmk = rows * k > maxmk ? rows * k : maxmk;
	}
	uint16_t *hw = s > 0 ? (uint16_t *)malloc((size_t)maxmk * 2) : NULL;
	if (s > 0 && !hw) {
		fprintf(stderr, "out of host memory\n");
		exit(4);
	}
	for (int l = 0; l < c->layers; l++) {
		for (int w = 0; w < FPK_DEC_NLINEAR; w++) {
			int64_t rows, k;
			fpk_dec_linear_shape(c, w, &rows, &k);
			float a = sqrtf(3.0f / (float)k);
			if (s == 0) {
				void *d;
				OK(fpk_dec_linear_dense(m, l, w, &d));
				fill(d, (size_t)(rows * k), mat_seed(mi, l, w), 0.0f, a);
				continue;
			}
			gen_ctx g = {hw, rows, k, mat_seed(mi, l, w), a, s};
			double t0 = fpk_now_s();
			OK(fpk_parallel_for((size_t)((rows + 63) / 64), threads, gen_rows, &g));
			double t1 = fpk_now_s();
			fpk_tcsl t;
			memset(&t, 0, sizeof(t));
			OK(fpk_tcsl_encode(&t, hw, rows, k, FPK_F16, 1, 0, threads));
			double t2 = fpk_now_s();
			OK(fpk_dec_linear_sparse(m, l, w, &t));
			fpk_tcsl_release(&t);
			secs[0] += t1 - t0, secs[1] += t2 - t1, secs[2] += fpk_now_s() - t2;
		}
		for (int v = 0; v < FPK_DEC_NVEC; v++) {
			void *d;
			size_t n;
			if (!fpk_dec_vec_len(c, v))
				continue;
			OK(fpk_dec_vector(m, l, v, &d, &n));
			int is_w = v == FPK_DEC_NORM1_W || v == FPK_DEC_NORM2_W;
			fill(d, n, mat_seed(mi, l, 16 + v), is_w ? 1.0f : 0.0f, is_w ? 0.1f : 0.05f);
		}
	}
	for (int gi = 0; gi < FPK_DEC_NGLOBAL; gi++) {
		void *d;
		size_t n;
		if (!fpk_dec_global_len(c, gi) || (gi == FPK_DEC_LM_HEAD && c->tie_embed))
			continue;
		OK(fpk_dec_global(m, gi, &d, &n));
		float mean = gi == FPK_DEC_FINAL_W ? 1.0f : 0.0f;
		float sc = gi == FPK_DEC_LM_HEAD ? sqrtf(3.0f / (float)c->hidden) : gi == FPK_DEC_FINAL_W ? 0.1f : gi == FPK_DEC_FINAL_B ? 0.05f : 1.0f;
		fill(d, n, mat_seed(mi, 1 << 20, gi), mean, sc);
	}
	CU(cudaDeviceSynchronize());
	free(hw);
	return m;
}

/* ---- timing ---- */

static int cmpf(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

typedef struct result {
	int model, layers, B, L;
	float s;
	float ms[NPH];          /* full step, linear, attention, other, head, qkv, o, up, down */
	uint64_t w_linear, w_other, kv, act;
	int finite, graphs;
} result;

/* time one (model, B, L); rows[...] gets the result */
static void run_config(const fpk_dec_model *m, int mi, int B, int L, int reps, cudaStream_t st, result *r)
{
	const fpk_dec_config *c = fpk_dec_model_config(m);
	fpk_dec_state *s = NULL;
	OK(fpk_dec_state_new(m, B, L, &s));
	for (int l = 0; l < c->layers; l++) {
		void *k, *v;
		OK(fpk_dec_kv(s, l, &k, &v));
		size_t n = (size_t)B * c->kv_heads * L * c->head_dim;
		fill(k, n, mat_seed(mi, l, 100), 0.0f, 1.0f);
		fill(v, n, mat_seed(mi, l, 101), 0.0f, 1.0f);
	}
	int32_t *pos = (int32_t *)malloc(sizeof(int32_t) * B);
	for (int b = 0; b < B; b++)
		pos[b] = L - 1;
	OK(fpk_dec_set_positions(s, pos));
	free(pos);
	k_tokens<<<(B + 127) / 128, 128>>>(fpk_dec_tokens(s), B, mat_seed(mi, B, L), c->vocab);
	CU(cudaGetLastError());
	CU(cudaDeviceSynchronize());
	/* warm-up step (cuBLAS sets itself up outside the capture), and the logits must be finite */
	OK(fpk_dec_step(m, s, FPK_DEC_ALL, st));
	CU(cudaStreamSynchronize(st));
	size_t nl = (size_t)B * c->vocab;
	float *lg = (float *)malloc(nl * 4);
	CU(cudaMemcpy(lg, fpk_dec_logits(s), nl * 4, cudaMemcpyDeviceToHost));
	r->finite = 1;
	for (size_t i = 0; i < nl; i++)
		if (!isfinite(lg[i]))
			r->finite = 0;
	free(lg);
	cudaGraphExec_t ge[NPH];
	r->graphs = 1;
	for (int p = 0; p < NPH && r->graphs; p++) {
		cudaGraph_t g = NULL;
		ge[p] = NULL;
		CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
		int rc = fpk_dec_step(m, s, phase_mask[p], st);
		cudaError_t e = cudaStreamEndCapture(st, &g);
		if (!rc && e == cudaSuccess)
			e = cudaGraphInstantiate(&ge[p], g, 0);
		if (g)
			cudaGraphDestroy(g);
		if (rc || e != cudaSuccess) { /* time plain stream launches instead (more launch overhead) */
			fprintf(stderr, "graph capture failed (%s; %s): timing stream launches\n", cudaGetErrorString(e),
				rc ? fpk_error_msg() : "-");
			cudaGetLastError();
			for (int q = 0; q < p; q++)
				cudaGraphExecDestroy(ge[q]);
			r->graphs = 0;
			break;
		}
		CU(cudaGraphLaunch(ge[p], st)); /* warm */
	}
	CU(cudaStreamSynchronize(st));
	cudaEvent_t e0, e1;
	CU(cudaEventCreate(&e0));
	CU(cudaEventCreate(&e1));
	float *t = (float *)malloc(sizeof(float) * NPH * reps);
	for (int i = 0; i < reps; i++)
		for (int p = 0; p < NPH; p++) {
			CU(cudaEventRecord(e0, st));
			if (r->graphs)
				CU(cudaGraphLaunch(ge[p], st));
			else
				OK(fpk_dec_step(m, s, phase_mask[p], st));
			CU(cudaEventRecord(e1, st));
			CU(cudaEventSynchronize(e1));
			CU(cudaEventElapsedTime(&t[p * reps + i], e0, e1));
		}
	for (int p = 0; p < NPH; p++) {
		qsort(t + p * reps, reps, sizeof(float), cmpf);
		r->ms[p] = t[p * reps + reps / 2];
		if (r->graphs)
			CU(cudaGraphExecDestroy(ge[p]));
	}
	free(t);
	CU(cudaEventDestroy(e0));
	CU(cudaEventDestroy(e1));
	fpk_dec_bytes by;
	fpk_dec_model_bytes(m, &by);
	r->model = mi, r->layers = c->layers, r->B = B, r->L = L;
	r->w_linear = by.linear, r->w_other = by.vectors + by.globals;
	r->kv = fpk_dec_state_kv_bytes(s), r->act = fpk_dec_state_other_bytes(s);
	fpk_dec_state_free(s);
}

static int parse_list(const char *arg, double *v, int max)
{
	int n = 0;
	const char *p = arg;
	while (*p && n < max) {
		char *e;
		v[n++] = strtod(p, &e);
		if (e == p)
			return -1;
		p = *e == ',' ? e + 1 : e;
		if (*e && *e != ',')
			return -1;
	}
	return n;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_decode [--model llama|opt|all] [--sparsity 0,0.7,0.8,0.9] [--batch 1,8,16,32]\n"
			"                    [--ctx 512,2048] [--layers N] [--reps N] [--threads N] [--csv FILE] [--md FILE] [--quick]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	double sp[MAXV] = {0, 0.7, 0.8, 0.9}, bv[MAXV] = {1, 8, 16, 32}, lv[MAXV] = {512, 2048};
	int ns = 4, nb = 4, nlv = 2, layers_opt = 0, reps = 10, threads = fpk_default_threads(), models = 3;
	const char *csv = NULL, *md = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--quick")) {
			models = 1, ns = 2, sp[1] = 0.8, nb = 2, bv[1] = 8, nlv = 1, layers_opt = 2, reps = 5;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--model"))
			models = !strcmp(v, "llama") ? 1 : !strcmp(v, "opt") ? 2 : !strcmp(v, "all") ? 3 : (usage(), 0);
		else if (!strcmp(a, "--sparsity"))
			ns = parse_list(v, sp, MAXV);
		else if (!strcmp(a, "--batch"))
			nb = parse_list(v, bv, MAXV);
		else if (!strcmp(a, "--ctx"))
			nlv = parse_list(v, lv, MAXV);
		else if (!strcmp(a, "--layers"))
			layers_opt = atoi(v);
		else if (!strcmp(a, "--reps"))
			reps = atoi(v);
		else if (!strcmp(a, "--threads"))
			threads = atoi(v);
		else if (!strcmp(a, "--csv"))
			csv = v;
		else if (!strcmp(a, "--md"))
			md = v;
		else
			usage();
		if (ns < 1 || nb < 1 || nlv < 1 || reps < 1 || threads < 1 || layers_opt < 0)
			usage();
	}
	for (int i = 0; i < ns; i++)
		if (sp[i] < 0 || sp[i] >= 1)
			usage();
	int maxB = 0, maxL = 0;
	for (int i = 0; i < nb; i++)
		maxB = (int)bv[i] > maxB ? (int)bv[i] : maxB;
	for (int i = 0; i < nlv; i++)
		maxL = (int)lv[i] > maxL ? (int)lv[i] : maxL;

	cudaDeviceProp prop;
	CU(cudaGetDeviceProperties(&prop, 0));
	time_t now = time(NULL);
	char date[64];
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("# bench_decode on %s (%d SMs, %.1f GiB), %s; %d host threads; median of %d reps\n# command:", prop.name,
	       prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0, date, threads, reps);
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	cudaStream_t st;
	CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));

	int nres = 0;
	result *res = (result *)calloc((size_t)2 * MAXV * MAXV * MAXV, sizeof(result));
	shape_t shapes[2] = {shape_llama(), shape_opt()};
	int full_layers[2] = {0, 0};
	for (int mi = 0; mi < 2; mi++) {
		if (!(models & (1 << mi)))
			continue;
		shape_t *sh = &shapes[mi];
		fpk_dec_config c = sh->c;
		/* layers: what fits with dense weights beside the largest KV cache of the sweep */
		size_t fr, tot;
		CU(cudaMemGetInfo(&fr, &tot));
		uint64_t per = dense_layer_bytes(&c) + (uint64_t)2 * maxB * c.kv_heads * (uint64_t)maxL * c.head_dim * 2;
		uint64_t reserve = globals_bytes(&c) + (3ull << 30); /* activations, workspaces, cuBLAS, headroom */
		int fit = fr > reserve ? (int)((fr - reserve) / per) : 0;
		c.layers = layers_opt ? layers_opt : fit < sh->full_layers ? fit : sh->full_layers;
		full_layers[mi] = sh->full_layers;
		printf("# %s: hidden %d, heads %d, head_dim %d, ffn %d, vocab %d; %d of %d layers on the GPU (%d fit with dense "
		       "weights + B=%d L=%d KV cache in %.1f GiB free)\n",
		       sh->name, c.hidden, c.heads, c.head_dim, c.ffn, c.vocab, c.layers, sh->full_layers, fit, maxB, maxL,
		       fr / 1073741824.0);
		if (c.layers < 1) {
			fprintf(stderr, "no layer fits\n");
			return 5;
		}
		fflush(stdout);
		for (int si = 0; si < ns; si++) {
			double secs[3], t0 = fpk_now_s();
			fpk_dec_model *m = build_model(mi, &c, (float)sp[si], threads, secs);
			fpk_dec_bytes by;
			fpk_dec_model_bytes(m, &by);
			printf("# %s sparsity %.2f: built in %.1f s (host generate %.1f s, encode %.1f s, upload %.1f s); linear "
			       "weights %.3f GiB\n",
			       sh->name, sp[si], fpk_now_s() - t0, secs[0], secs[1], secs[2], by.linear / 1073741824.0);
			fflush(stdout);
			for (int bi = 0; bi < nb; bi++)
				for (int li = 0; li < nlv; li++) {
					result *r = &res[nres++];
					r->s = (float)sp[si];
					run_config(m, mi, (int)bv[bi], (int)lv[li], reps, st, r);
					printf("#   B=%d L=%d: %.3f ms/step (linear %.3f [qkv %.3f o %.3f up %.3f down %.3f], attention %.3f, other %.3f, head %.3f)%s\n",
					       r->B, r->L, r->ms[0], r->ms[1], r->ms[5], r->ms[6], r->ms[7], r->ms[8], r->ms[2], r->ms[3], r->ms[4], r->finite ? "" : " NON-FINITE LOGITS");
					if (!r->graphs)
						printf("#   (no CUDA graph: stream launches timed)\n");
					fflush(stdout);
				}
			fpk_dec_model_free(m);
		}
	}

	/* the tables: each row against the dense row of the same model, B and L */
	FILE *fm = md ? fopen(md, "w") : NULL, *fc = csv ? fopen(csv, "w") : NULL;
	if ((md && !fm) || (csv && !fc)) {
		fprintf(stderr, "cannot write %s\n", md && !fm ? md : csv);
		return 4;
	}
	const char *hdr = "| model (layers) | sparsity | B | ctx | tokens/s | x dense | ms/token-step | linear | linear x dense | "
			  "attention | other | head | linear weights GiB | x dense | KV cache GiB | full-depth est. tokens/s |\n"
			  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
	printf("\n%s", hdr);
	if (fm)
		fprintf(fm, "%s", hdr);
	if (fc)
		fprintf(fc, "model,layers,full_layers,sparsity,batch,ctx,tokens_per_s,speedup_vs_dense,ms_step,ms_linear,"
			    "ms_attention,ms_other,ms_head,ms_phase_sum,linear_weight_bytes,weight_ratio_vs_dense,"
			    "other_weight_bytes,total_weight_ratio_vs_dense,kv_bytes,activation_bytes,ms_per_layer,"
			    "est_full_depth_tokens_per_s,logits_finite,ms_qkv,ms_o,ms_up,ms_down\n");
	int all_finite = 1;
	for (int i = 0; i < nres; i++) {
		const result *r = &res[i], *d = NULL;
		for (int j = 0; j < nres; j++)
			if (res[j].model == r->model && res[j].B == r->B && res[j].L == r->L && res[j].s == 0)
				d = &res[j];
		double tps = r->B / (r->ms[0] * 1e-3);
		double sx = d ? (double)d->ms[0] / r->ms[0] : NAN, wx = d ? (double)r->w_linear / d->w_linear : NAN;
		double tx = d ? (double)(r->w_linear + r->w_other) / (d->w_linear + d->w_other) : NAN;
		double per_layer = (r->ms[0] - r->ms[4]) / r->layers;
		double est = r->B / ((r->ms[4] + per_layer * full_layers[r->model]) * 1e-3);
		char line[512];
		snprintf(line, sizeof(line),
			 "| %s (%d/%d) | %.0f%% | %d | %d | %.1f | %.2f | %.3f | %.3f | %.2f | %.3f | %.3f | %.3f | %.2f | %.3f | %.2f | %.1f%s |\n",
			 shapes[r->model].name, r->layers, full_layers[r->model], r->s * 100, r->B, r->L, tps, sx, r->ms[0],
			 r->ms[1], d ? (double)d->ms[1] / r->ms[1] : NAN, r->ms[2], r->ms[3], r->ms[4], r->w_linear / 1073741824.0, wx, r->kv / 1073741824.0, est,
			 r->layers == full_layers[r->model] ? " (measured)" : "");
		printf("%s", line);
		if (fm)
			fprintf(fm, "%s", line);
		if (fc)
			fprintf(fc, "%s,%d,%d,%.2f,%d,%d,%.2f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%llu,%.4f,%llu,%.4f,%llu,%llu,%.5f,%.2f,%d,%.4f,%.4f,%.4f,%.4f\n",
				shapes[r->model].name, r->layers, full_layers[r->model], r->s, r->B, r->L, tps, sx, r->ms[0], r->ms[1],
				r->ms[2], r->ms[3], r->ms[4], r->ms[1] + r->ms[2] + r->ms[3] + r->ms[4],
				(unsigned long long)r->w_linear, wx, (unsigned long long)r->w_other, tx, (unsigned long long)r->kv,
				(unsigned long long)r->act, per_layer, est, r->finite, r->ms[5], r->ms[6], r->ms[7], r->ms[8]);
		all_finite &= r->finite;
	}
	/* the linear phase by kind of matrix (it does not depend on the context: the shortest context's rows) */
	const char *h2 = "\n| model | sparsity | B | qkv ms | x dense | o ms | x dense | up ms | x dense | down ms | x dense |\n"
			 "|---|---|---|---|---|---|---|---|---|---|---|\n";
	printf("%s", h2);
	if (fm)
		fprintf(fm, "%s", h2);
	for (int i = 0; i < nres; i++) {
		const result *r = &res[i], *d = NULL;
		int shortest = 1;
		for (int j = 0; j < nres; j++) {
			if (res[j].model == r->model && res[j].B == r->B && res[j].L == r->L && res[j].s == 0)
				d = &res[j];
			if (res[j].L < r->L)
				shortest = 0;
		}
		if (!shortest)
			continue;
		char line[512];
		int n = snprintf(line, sizeof(line), "| %s | %.0f%% | %d |", shapes[r->model].name, r->s * 100, r->B);
		for (int p = 5; p < 9 && n > 0 && n < (int)sizeof(line); p++)
			n += snprintf(line + n, sizeof(line) - n, " %.3f | %.2f |", r->ms[p], d ? (double)d->ms[p] / r->ms[p] : NAN);
		printf("%s\n", line);
		if (fm)
			fprintf(fm, "%s\n", line);
	}
	if (fm)
		fclose(fm);
	if (fc)
		fclose(fc);
	printf("\nms columns: medians of CUDA-graph replays of one full step and of each phase alone (linear layers /"
	       " attention incl. RoPE + KV append / other: embedding, norms, residuals, activation / head: final norm +"
	       " dense LM head). Embedding and LM head are included (dense in both). Full-depth estimate = B / (head +"
	       " per-layer time x all layers); per-layer time = (step - head) / layers on the GPU.\n");
	free(res);
	CU(cudaStreamDestroy(st));
	if (!all_finite) {
		fprintf(stderr, "some steps produced non-finite logits\n");
		return 1;
	}
	return 0;
}
