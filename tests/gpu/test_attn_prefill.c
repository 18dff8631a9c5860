/* test_attn_prefill.c: the fused causal prefill attention (kernels/attn_prefill.cu) against a double-precision
 * host reference over many shapes: head_dim 16..128, GQA, partial query tiles, a nonzero pos0 (queries after a
 * cached prefix), padded row strides, several blocks, peaked softmaxes (the running maximum changes from tile to
 * tile). Outputs are poisoned (NaN) first: every value must be written, and the padding columns must stay NaN.
 * Bound: fp16 operands with fp32 accumulation, |err| <= 6e-3 * max(1, max|v|). Also: unsupported parameters
 * are refused. Run: ctest -L gpu, or build/tests/gpu/test_attn_prefill [quick] (two cases, for
 * compute-sanitizer). */
#include "attn_prefill.h"
#include "fpk_test.h"

#include <cuda_runtime.h>
#include <math.h>

#define CU(x)                                                                                                \
	do {                                                                                                     \
		cudaError_t e_ = (x);                                                                                \
		if (e_ != cudaSuccess) {                                                                             \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));             \
			exit(5);                                                                                         \
		}                                                                                                    \
	} while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}
static float nrand(void)
{
	double u = urand(), v = urand();
	return (float)(sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

typedef struct tcase {
	int nb, Tq, pos0, heads, kv_heads, d, qpad, kvpad;
	float qscale; /* query magnitude: large values make the softmax peaked */
} tcase;

static const tcase cases[] = {
	{2, 100, 0, 4, 2, 64, 0, 0, 1.0f},
	{1, 64, 0, 2, 2, 128, 0, 0, 1.0f},
	{3, 37, 20, 6, 3, 32, 4, 4, 1.0f},
	{2, 130, 5, 2, 1, 16, 2, 0, 1.0f},
	{1, 512, 0, 4, 4, 128, 0, 0, 1.0f},
	{2, 200, 0, 4, 1, 128, 0, 8, 6.0f},
	{1, 1, 300, 8, 2, 64, 0, 0, 3.0f},
	{4, 65, 0, 3, 3, 16, 0, 0, 8.0f},
	{1, 257, 63, 2, 2, 64, 6, 4, 2.0f},
};

static void run_case(const tcase *c)
{
	int L = c->pos0 + c->Tq, d = c->d;
	int64_t q_ld = (int64_t)c->heads * d + c->qpad, kv_ld = (int64_t)c->kv_heads * d + c->kvpad;
	int64_t kv_bstride = (int64_t)(L + 3) * kv_ld; /* a cache longer than needed, as in the engine */
	size_t nq = (size_t)c->nb * c->Tq * q_ld, nkv = (size_t)c->nb * kv_bstride;
	float *q = malloc(nq * sizeof(float)), *k = malloc(nkv * sizeof(float)), *v = malloc(nkv * sizeof(float));
	float *out = malloc(nq * sizeof(float));
	for (size_t i = 0; i < nq; i++)
		q[i] = nrand() * c->qscale;
	for (size_t i = 0; i < nkv; i++) {
		k[i] = nrand();
		v[i] = nrand();
	}
	float *dq, *dk, *dv, *dout;
	CU(cudaMalloc((void **)&dq, nq * sizeof(float)));
	CU(cudaMalloc((void **)&dk, nkv * sizeof(float)));
	CU(cudaMalloc((void **)&dv, nkv * sizeof(float)));
	CU(cudaMalloc((void **)&dout, nq * sizeof(float)));
	CU(cudaMemcpy(dq, q, nq * sizeof(float), cudaMemcpyHostToDevice));
	CU(cudaMemcpy(dk, k, nkv * sizeof(float), cudaMemcpyHostToDevice));
	CU(cudaMemcpy(dv, v, nkv * sizeof(float), cudaMemcpyHostToDevice));
	CU(cudaMemset(dout, 0xff, nq * sizeof(float))); /* NaN everywhere */
	fpk_attn_prefill_params p = {dq, dk, dv, dout, c->nb, c->Tq, c->pos0, c->heads, c->kv_heads, d, q_ld, kv_ld,
		kv_bstride, 1.0f / sqrtf((float)d), NULL};
	CHECK_EQ_INT(fpk_attn_prefill(&p), 0);
	CU(cudaDeviceSynchronize());
	CU(cudaMemcpy(out, dout, nq * sizeof(float), cudaMemcpyDeviceToHost));

	double max_err = 0, vmax = 1;
	for (size_t i = 0; i < nkv; i++)
		vmax = fmax(vmax, fabs(v[i]));
	int grp = c->heads / c->kv_heads, bad_pad = 0, nonfinite = 0;
	double *w = malloc((size_t)L * sizeof(double));
	for (int b = 0; b < c->nb; b++)
		for (int t = 0; t < c->Tq; t++)
			for (int h = 0; h < c->heads; h++) {
				const float *qr = q + ((size_t)b * c->Tq + t) * q_ld + (size_t)h * d;
				const float *kb = k + (size_t)b * kv_bstride + (size_t)(h / grp) * d;
				const float *vb = v + (size_t)b * kv_bstride + (size_t)(h / grp) * d;
				int n = c->pos0 + t + 1;
				double mx = -INFINITY, sum = 0;
				for (int j = 0; j < n; j++) {
					double s = 0;
					for (int i = 0; i < d; i++)
						s += (double)qr[i] * kb[(size_t)j * kv_ld + i];
					w[j] = s / sqrt((double)d);
					mx = fmax(mx, w[j]);
				}
				for (int j = 0; j < n; j++)
					sum += (w[j] = exp(w[j] - mx));
				const float *o = out + ((size_t)b * c->Tq + t) * q_ld + (size_t)h * d;
				for (int i = 0; i < d; i++) {
					double r = 0;
					for (int j = 0; j < n; j++)
						r += w[j] * vb[(size_t)j * kv_ld + i];
					r /= sum;
					if (!isfinite(o[i]))
						nonfinite++;
					else
						max_err = fmax(max_err, fabs(o[i] - r));
				}
			}
	for (int r = 0; r < c->nb * c->Tq; r++)
		for (int i = c->heads * d; i < q_ld; i++)
			bad_pad += !isnan(out[(size_t)r * q_ld + i]);
	fprintf(stderr, "  nb %d Tq %d pos0 %d heads %d/%d d %d qscale %.0f: max |err| %.3e (v max %.2f)\n", c->nb, c->Tq,
		c->pos0, c->heads, c->kv_heads, d, c->qscale, max_err, vmax);
	CHECK_EQ_INT(nonfinite, 0);
	CHECK_EQ_INT(bad_pad, 0);
	CHECK(max_err <= 6e-3 * vmax);
	free(w);
	free(q);
	free(k);
	free(v);
	free(out);
	CU(cudaFree(dq));
	CU(cudaFree(dk));
	CU(cudaFree(dv));
	CU(cudaFree(dout));
}

static void refusals(void)
{
	float *buf;
	CU(cudaMalloc((void **)&buf, 1 << 20));
	fpk_attn_prefill_params p = {buf, buf, buf, buf, 1, 8, 0, 2, 2, 8, 16, 16, 16 * 8, 0.35f, NULL};
	CHECK_ERR(fpk_attn_prefill(&p), FPK_EUSAGE, "head_dim 8");
	p.d = 64;
	p.q_ld = p.kv_ld = 128;
	p.heads = 3;
	CHECK_ERR(fpk_attn_prefill(&p), FPK_EUSAGE, "bad shape");
	p.heads = 2;
	p.kv_ld = 130;
	CHECK_ERR(fpk_attn_prefill(&p), FPK_EUSAGE, "bad strides");
	p.kv_ld = 128;
	p.k = buf + 1;
	CHECK_ERR(fpk_attn_prefill(&p), FPK_EUSAGE, "aligned");
	CU(cudaFree(buf));
}

int main(int argc, char **argv)
{
	int n = (int)(sizeof(cases) / sizeof(cases[0]));
	int quick = (argc > 1 && !strcmp(argv[1], "quick")) || getenv("FPK_QUICK");
	for (int i = 0; i < n; i++) {
		if (quick && i != 2 && i != 5)
			continue;
		int before = fpk_test_failures;
		run_case(&cases[i]);
		fprintf(stderr, "%s case %d\n", fpk_test_failures == before ? "ok  " : "FAIL", i);
	}
	refusals();
	TEST_EXIT();
}
