/* bench_spmm.c: Tiled-CSL SpMM (ours, fp16 and bf16) vs dense cuBLAS fp16 on the same pruned matrices; the
 * OPT/Llama-2 layer shapes x N in {1,8,16,32,64} x sparsity {50..90}%, plus the device copy ceiling.
 * Run: build/bench/bench_spmm [--out DIR] [--quick] [--threads 16]; writes DIR/spmm.csv and DIR/spmm.md. */
#include "fpk_cuda.h"
#include "spmm.h"
#include "tcsl.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int64_t SHAPES[][2] = {
	{21504, 7168},  {7168, 7168},   {28672, 7168}, {7168, 28672}, {27648, 9216},  {9216, 9216},  {36864, 9216},
	{9216, 36864},  {36864, 12288}, {12288, 12288}, {49152, 12288}, {12288, 49152}, {12288, 4096}, {4096, 4096},
	{22016, 4096},  {4096, 11008},  {10240, 8192}, {8192, 8192},   {57344, 8192},  {8192, 28672}};
static const int NS[] = {1, 8, 16, 32, 64};
static const int SPS[] = {50, 60, 70, 80, 90};
#define NN 5
#define NSP 5
#define MAXROT 16

#define CK(x)                                                                                                \
	do {                                                                                                     \
		cudaError_t e_ = (x);                                                                                \
		if (e_ != cudaSuccess) {                                                                             \
			fprintf(stderr, "cuda error %s in %s at %s:%d\n", cudaGetErrorString(e_), #x, __FILE__, __LINE__); \
			exit(5);                                                                                         \
		}                                                                                                    \
	} while (0)
#define FK(x)                                                                                                \
	do {                                                                                                     \
		if ((x) != 0) {                                                                                      \
			fprintf(stderr, "%s failed: %s\n", #x, fpk_error_msg());                                         \
			exit(1);                                                                                         \
		}                                                                                                    \
	} while (0)

typedef struct gen_ctx {
	uint16_t *w;
	int64_t m, k;
	double keep;
	uint64_t seed;
} gen_ctx;

static inline uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* row i: Bernoulli(keep) mask, normal(0,1) values (sum of 4 uniforms), fp16 */
static int gen_row(void *ctx, size_t i, int tid)
{
	gen_ctx *g = ctx;
	uint64_t s = g->seed ^ (0x9E3779B97F4A7C15ull * (i + 1));
	uint64_t thr = (uint64_t)(g->keep * 18446744073709551615.0);
	uint16_t *r = g->w + i * g->k;
	xs(&s);
	for (int64_t j = 0; j < g->k; j++) {
		if (xs(&s) < thr) {
			uint64_t u = xs(&s);
			float a = (float)((u & 0xffff) + ((u >> 16) & 0xffff) + ((u >> 32) & 0xffff) + (u >> 48)) / 65536.0f;
			uint16_t h = fpk_f32_to_f16((a - 2.0f) * 1.7320508f);
			r[j] = (h & 0x7fff) ? h : 0x3c00;
		} else {
			r[j] = 0;
		}
	}
	return 0;
}

typedef struct cvt_ctx {
	const uint32_t *in;
	uint32_t *out;
	uint64_t n;
} cvt_ctx;

/* block i of 1M entries: fp16 value bits -> bf16, loc kept */
static int cvt_block(void *ctx, size_t i, int tid)
{
	cvt_ctx *c = ctx;
	uint64_t e0 = (uint64_t)i << 20, e1 = e0 + ((uint64_t)1 << 20);
	if (e1 > c->n)
		e1 = c->n;
	for (uint64_t e = e0; e < e1; e++) {
		uint32_t v = c->in[e];
		c->out[e] = (v & 0xffff0000u) | fpk_f32_to_bf16(fpk_f16_to_f32((uint16_t)v));
	}
	return 0;
}

static int cmp_f(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

typedef struct job {
	int kind; /* 0 cublas, 1 ours */
	void *h;
	void **dw;  /* dense copies */
	fpk_spmm_weights *sw; /* sparse copies */
	int rot;
	void **dx, **dy;
	int64_t m, k, n;
	void *ws;
	size_t wss;
} job;

static void run1(job *j, int r)
{
	if (j->kind == 0) {
		FK(fpk_dense_gemm(j->h, FPK_F16, FPK_F16, j->dw[r % j->rot], j->dx[r % j->rot], j->dy[r % j->rot], j->m, j->k,
				  j->n, NULL));
	} else {
		fpk_spmm_params p = {.w = &j->sw[r % j->rot], .x = j->dx[r % j->rot], .y = j->dy[r % j->rot], .n = j->n,
				     .workspace = j->ws, .workspace_size = j->wss};
		FK(fpk_spmm_run(&p));
	}
}

/* median microseconds per call over 9 samples of iters calls each, after warm-up */
static double time_us(job *j)
{
	cudaEvent_t a, b;
	float s[9];
	int iters = j->rot < 8 ? 8 : j->rot;
	CK(cudaEventCreate(&a));
	CK(cudaEventCreate(&b));
	for (int r = 0; r < 4; r++)
		run1(j, r);
	CK(cudaDeviceSynchronize());
	for (int q = 0; q < 9; q++) {
		CK(cudaEventRecord(a, NULL));
		for (int r = 0; r < iters; r++)
			run1(j, r);
		CK(cudaEventRecord(b, NULL));
		CK(cudaEventSynchronize(b));
		CK(cudaEventElapsedTime(&s[q], a, b));
		s[q] = s[q] * 1000.0f / (float)iters;
	}
	qsort(s, 9, sizeof(float), cmp_f);
	CK(cudaEventDestroy(a));
	CK(cudaEventDestroy(b));
	return s[4];
}

static double max_rel(const uint16_t *y, const uint16_t *ref, size_t n, int bf)
{
	double md = 0, sc = 0;
	for (size_t i = 0; i < n; i++) {
		double g = bf ? fpk_bf16_to_f32(y[i]) : fpk_f16_to_f32(y[i]), r = fpk_f16_to_f32(ref[i]);
		double d = fabs(g - r);
		if (isnan(d))
			return INFINITY;
		md = d > md ? d : md;
		sc = fabs(r) > sc ? fabs(r) : sc;
	}
	return sc > 0 ? md / sc : md;
}

int main(int argc, char **argv)
{
	const char *out = ".";
	int quick = 0, threads = fpk_default_threads();
	long long om = 0, ok = 0, osp = 0, on = 0; /* --only M,K,SPARSITY,N: one configuration (for profilers) */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			sscanf(argv[++i], "%lld,%lld,%lld,%lld", &om, &ok, &osp, &on);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_spmm [--out DIR] [--quick] [--threads N] [--only M,K,SPARSITY,N]\n");
			return 2;
		}
	}
	char path[1024];
	snprintf(path, sizeof(path), "%s/spmm.csv", out);
	FILE *csv = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/spmm.md", out);
	FILE *md = fopen(path, "w");
	if (!csv || !md) {
		fprintf(stderr, "cannot write under '%s'\n", out);
		return 4;
	}
	struct cudaDeviceProp prop;
	CK(cudaGetDeviceProperties(&prop, 0));
	size_t l2 = (size_t)prop.l2CacheSize;
	/* copy ceiling: 1 GiB device to device, bytes read + written */
	double copy_tbs;
	{
		size_t cb = (size_t)1 << 30;
		void *a, *b;
		cudaEvent_t e0, e1;
		float s[9];
		CK(cudaMalloc(&a, cb));
		CK(cudaMalloc(&b, cb));
		CK(cudaMemset(a, 1, cb));
		CK(cudaEventCreate(&e0));
		CK(cudaEventCreate(&e1));
		for (int q = 0; q < 11; q++) {
			CK(cudaEventRecord(e0, NULL));
			CK(cudaMemcpy(b, a, cb, cudaMemcpyDeviceToDevice));
			CK(cudaEventRecord(e1, NULL));
			CK(cudaEventSynchronize(e1));
			if (q >= 2)
				CK(cudaEventElapsedTime(&s[q - 2], e0, e1));
		}
		qsort(s, 9, sizeof(float), cmp_f);
		copy_tbs = 2.0 * (double)cb / (s[4] * 1e-3) / 1e12;
		CK(cudaFree(a));
		CK(cudaFree(b));
	}
	printf("device %s, %d SMs, L2 %zu MB; copy ceiling %.2f TB/s (read+write, 1 GiB D2D)\n", prop.name,
	       prop.multiProcessorCount, l2 >> 20, copy_tbs);
	fprintf(md, "device: %s (%d SMs); copy ceiling %.2f TB/s\n\n", prop.name, prop.multiProcessorCount, copy_tbs);
	fprintf(md, "| M x K | sparsity | N | cuBLAS us | ours f16 us | x | ours bf16 us | x | TB/s f16 | err f16 | err bf16 |\n");
	fprintf(md, "|---|---|---|---|---|---|---|---|---|---|---|\n");
	fprintf(csv, "m,k,sparsity,n,cublas_us,f16_us,bf16_us,speedup_f16,speedup_bf16,stored_bytes_f16,tbs_f16,"
		     "err_f16,err_bf16,encode_s\n");
	void *h = NULL;
	FK(fpk_dense_handle(&h));
	int nshapes = quick ? 3 : (int)(sizeof(SHAPES) / sizeof(SHAPES[0]));
	double lg[NSP][NN] = {{0}};
	int cnt[NSP][NN] = {{0}};
	for (int si = 0; si < nshapes; si++) {
		int64_t m = SHAPES[si][0], k = SHAPES[si][1];
		if (om && (om != m || ok != k))
			continue;
		size_t dbytes = (size_t)m * k * 2;
		uint16_t *w = malloc(dbytes);
		uint16_t *xh = malloc((size_t)64 * k * 2);
		uint64_t xsd = 42;
		for (int64_t i = 0; i < 64 * k; i++) {
			uint64_t u = xs(&xsd);
			float a = (float)((u & 0xffff) + ((u >> 16) & 0xffff) + ((u >> 32) & 0xffff) + (u >> 48)) / 65536.0f;
			xh[i] = fpk_f32_to_f16((a - 2.0f) * 1.7320508f);
		}
		uint16_t *xb = malloc((size_t)64 * k * 2);
		for (int64_t i = 0; i < 64 * k; i++)
			xb[i] = fpk_f32_to_bf16(fpk_f16_to_f32(xh[i]));
		for (int pi = 0; pi < (quick ? 2 : NSP); pi++) {
			int sp = quick ? SPS[2 + pi] : SPS[pi];
			if (osp && osp != sp)
				continue;
			gen_ctx g = {w, m, k, 1.0 - sp / 100.0, 1000003ull * (uint64_t)(si + 1) + (uint64_t)sp};
			FK(fpk_parallel_for((size_t)m, threads, gen_row, &g));
			fpk_tcsl t = {0}, tb = {0};
			double t0 = fpk_now_s();
			FK(fpk_tcsl_encode(&t, w, m, k, FPK_F16, 1, 0, threads));
			double enc_s = fpk_now_s() - t0;
			/* bf16 twin: same locs, values converted */
			tb = t;
			tb.dtype = FPK_BF16;
			tb.values = malloc(t.n_entries * 4);
			cvt_ctx cc = {t.values, tb.values, t.n_entries};
			FK(fpk_parallel_for((size_t)((t.n_entries >> 20) + 1), threads, cvt_block, &cc));
			size_t sbytes = t.n_entries * 4 + (size_t)(t.tiles_m * t.tiles_k + 2) * 4;
			int rot_d = (int)((3 * l2 + dbytes - 1) / dbytes), rot_s = (int)((3 * l2 + sbytes - 1) / sbytes);
			rot_d = rot_d < 1 ? 1 : rot_d > MAXROT ? MAXROT : rot_d;
			rot_s = rot_s < 1 ? 1 : rot_s > MAXROT ? MAXROT : rot_s;
			void *dw[MAXROT] = {0};
			fpk_spmm_weights sw[MAXROT], swb[MAXROT];
			for (int r = 0; r < rot_d; r++) {
				CK(cudaMalloc(&dw[r], dbytes));
				CK(cudaMemcpy(dw[r], w, dbytes, cudaMemcpyHostToDevice));
			}
			for (int r = 0; r < rot_s; r++) {
				FK(fpk_spmm_upload(&sw[r], &t));
				FK(fpk_spmm_upload(&swb[r], &tb));
			}
			int rot = rot_d > rot_s ? rot_d : rot_s;
			void *dx[MAXROT], *dxb[MAXROT], *dy[MAXROT];
			for (int r = 0; r < rot; r++) {
				CK(cudaMalloc(&dx[r], (size_t)64 * k * 2));
				CK(cudaMalloc(&dxb[r], (size_t)64 * k * 2));
				CK(cudaMalloc(&dy[r], (size_t)64 * m * 2));
				CK(cudaMemcpy(dx[r], xh, (size_t)64 * k * 2, cudaMemcpyHostToDevice));
				CK(cudaMemcpy(dxb[r], xb, (size_t)64 * k * 2, cudaMemcpyHostToDevice));
			}
			size_t wss = fpk_spmm_workspace_size(m, 64);
			void *ws = NULL;
			FK(fpk_spmm_workspace_alloc(&ws, wss));
			uint16_t *yr = malloc((size_t)64 * m * 2), *yo = malloc((size_t)64 * m * 2);
			for (int ni = 0; ni < NN; ni++) {
				int64_t n = NS[ni];
				if (on && on != n)
					continue;
				job jc = {0, h, dw, NULL, rot_d, dx, dy, m, k, n, NULL, 0};
				job jf = {1, NULL, NULL, sw, rot_s, dx, dy, m, k, n, ws, wss};
				job jb = {1, NULL, NULL, swb, rot_s, dxb, dy, m, k, n, ws, wss};
				double tc = time_us(&jc);
				/* correctness of this very configuration: ours vs cuBLAS on buffer 0 */
				run1(&jc, 0);
				CK(cudaMemcpy(yr, dy[0], (size_t)n * m * 2, cudaMemcpyDeviceToHost));
				CK(cudaMemset(dy[0], 0xff, (size_t)n * m * 2));
				run1(&jf, 0);
				CK(cudaMemcpy(yo, dy[0], (size_t)n * m * 2, cudaMemcpyDeviceToHost));
				double ef = max_rel(yo, yr, (size_t)n * m, 0);
				CK(cudaMemset(dy[0], 0xff, (size_t)n * m * 2));
				run1(&jb, 0);
				CK(cudaMemcpy(yo, dy[0], (size_t)n * m * 2, cudaMemcpyDeviceToHost));
				double eb = max_rel(yo, yr, (size_t)n * m, 1);
				double tf = time_us(&jf), tbf = time_us(&jb);
				double bytes = (double)sbytes + (double)n * k * 2 + (double)n * m * 2;
				double tbs = bytes / (tf * 1e-6) / 1e12;
				fprintf(csv, "%lld,%lld,%d,%lld,%.2f,%.2f,%.2f,%.3f,%.3f,%.0f,%.3f,%.2e,%.2e,%.2f\n", (long long)m,
					(long long)k, sp, (long long)n, tc, tf, tbf, tc / tf, tc / tbf, bytes, tbs, ef, eb, enc_s);
				fprintf(md, "| %lld x %lld | %d%% | %lld | %.1f | %.1f | %.2f | %.1f | %.2f | %.2f | %.1e | %.1e |\n",
					(long long)m, (long long)k, sp, (long long)n, tc, tf, tc / tf, tbf, tc / tbf, tbs, ef, eb);
				printf("%6lld x %-6lld %d%% N=%-3lld cublas %8.1f  f16 %8.1f (%.2fx, %.2f TB/s)  bf16 %8.1f (%.2fx)  "
				       "err %.1e/%.1e\n",
				       (long long)m, (long long)k, sp, (long long)n, tc, tf, tc / tf, tbs, tbf, tc / tbf, ef, eb);
				fflush(stdout);
				lg[pi][ni] += log(tc / tf);
				cnt[pi][ni]++;
			}
			free(yr);
			free(yo);
			fpk_spmm_workspace_free(ws);
			for (int r = 0; r < rot; r++) {
				cudaFree(dx[r]);
				cudaFree(dxb[r]);
				cudaFree(dy[r]);
			}
			for (int r = 0; r < rot_d; r++)
				cudaFree(dw[r]);
			for (int r = 0; r < rot_s; r++) {
				fpk_spmm_weights_free(&sw[r]);
				fpk_spmm_weights_free(&swb[r]);
			}
			free(tb.values);
			fpk_tcsl_release(&t);
		}
		free(w);
		free(xh);
		free(xb);
	}
	fprintf(md, "\nGeometric-mean speedup over cuBLAS (fp16):\n\n| sparsity | N=1 | N=8 | N=16 | N=32 | N<=32 | N=64 |\n|---|---|---|---|---|---|---|\n");
	printf("\ngeomean speedup (f16): sparsity | N=1 N=8 N=16 N=32 | N<=32 | N=64\n");
	for (int pi = 0; pi < NSP; pi++) {
		if (!cnt[pi][0])
			continue;
		double le = 0;
		int c = 0;
		for (int ni = 0; ni < 4; ni++) {
			le += lg[pi][ni];
			c += cnt[pi][ni];
		}
		int sp = quick ? SPS[2 + pi] : SPS[pi];
		fprintf(md, "| %d%% | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", sp, exp(lg[pi][0] / cnt[pi][0]),
			exp(lg[pi][1] / cnt[pi][1]), exp(lg[pi][2] / cnt[pi][2]), exp(lg[pi][3] / cnt[pi][3]), exp(le / c),
			exp(lg[pi][4] / cnt[pi][4]));
		printf("%d%% | %.2f %.2f %.2f %.2f | %.2f | %.2f\n", sp, exp(lg[pi][0] / cnt[pi][0]), exp(lg[pi][1] / cnt[pi][1]),
		       exp(lg[pi][2] / cnt[pi][2]), exp(lg[pi][3] / cnt[pi][3]), exp(le / c), exp(lg[pi][4] / cnt[pi][4]));
	}
	printf("copy ceiling %.2f TB/s\n", copy_tbs);
	fpk_dense_handle_free(h);
	fclose(csv);
	fclose(md);
	return 0;
}
