/* test_ds_attention.c: the Double Sparsity GPU kernels (kernels/ds_attention.cu) against their C twins over many
 * shapes: labels and top-k bit-exact (ties included), attention within 2e-4, GQA, variable lengths, dense fallback.
 * Run: ctest -L gpu, or build/tests/gpu/test_ds_attention [quick] (quick, or FPK_QUICK set: three shapes, for
 * compute-sanitizer). */
#include "ds_attention_ref.h"
#include "fpk_test.h"

#include <cuda_runtime.h>
#include <math.h>

static uint64_t seed = 0x243f6a8885a308d3ull;

#define CU(x)                                                                                                \
	do {                                                                                                     \
		cudaError_t e_ = (x);                                                                                \
		if (e_ != cudaSuccess) {                                                                             \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));             \
			exit(5);                                                                                         \
		}                                                                                                    \
	} while (0)

static void *up(const void *h, size_t n)
{
	void *d = NULL;
	CU(cudaMalloc(&d, n ? n : 4));
	if (n)
		CU(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
	return d;
}

static uint16_t rnd16(int dt, float x) { return dt == FPK_BF16 ? fpk_f32_to_bf16(x) : fpk_f32_to_f16(x); }

typedef struct tcase {
	int B, H, Hkv, d, L, r, fmt, phl, sph, dt, topk, topk_div, dense_below;
	int ties; /* 1: keys drawn from 3 values on the heavy channels (heavy score ties) */
} tcase;

static double max_rel(const float *a, const float *b, size_t n)
{
	double err = 0, mx = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)a[i] - b[i]);
		if (!(e == e))
			return INFINITY;
		err = fmax(err, e);
		mx = fmax(mx, fabs(b[i]));
	}
	return err / (mx > 0 ? mx : 1);
}

static void run_case(const tcase *t)
{
	int B = t->B, H = t->H, Hkv = t->Hkv, d = t->d, L = t->L, r = t->r, dt = t->dt;
	int LH = t->phl ? H : Hkv;
	fpk_ds_shape s = {B, H, Hkv, d, L, dt};
	int32_t *ch = malloc(sizeof(int32_t) * LH * r);
	for (int lh = 0; lh < LH; lh++) {
		int perm[256];
		for (int i = 0; i < d; i++)
			perm[i] = i;
		for (int i = 0; i < r; i++) {
			int j = i + (int)(fpk_test_rand(&seed) % (d - i)), x = perm[i];
			perm[i] = perm[j], perm[j] = x;
			ch[lh * r + i] = perm[i];
		}
	}
	size_t nq = (size_t)B * H * d, nk = (size_t)B * Hkv * L * d, lb, sb;
	uint16_t *q = malloc(2 * nq), *k = malloc(2 * nk), *v = malloc(2 * nk);
	for (size_t i = 0; i < nq; i++)
		q[i] = rnd16(dt, fpk_test_randn(&seed));
	for (size_t i = 0; i < nk; i++) {
		float x = fpk_test_randn(&seed);
		if (t->ties)
			x = (float)((int)(fpk_test_rand(&seed) % 3) - 1) * 0.75f;
		k[i] = rnd16(dt, x);
		v[i] = rnd16(dt, fpk_test_randn(&seed));
	}
	int32_t *lens = malloc(sizeof(int32_t) * B);
	for (int b = 0; b < B; b++)
		lens[b] = b == 0 ? L : 1 + (int)(fpk_test_rand(&seed) % L);
	fpk_ds_label_cfg c = {r, t->fmt, t->phl, ch};
	fpk_ds_label_cache_bytes(&s, &c, &lb, &sb);
	uint8_t *lab = malloc(lb), *glab = malloc(lb);
	uint16_t *sca = malloc(sb + 2), *gsca = malloc(sb + 2);
	memset(lab, 0xAB, lb);
	memset(sca, 0xAB, sb + 2);
	fpk_ds_label_params lp = {s, c, k, lens, NULL, lab, sca};
	CHECK_OK(fpk_ds_ref_label_build(&lp));

	/* device copies; labels poisoned */
	void *dq = up(q, 2 * nq), *dk = up(k, 2 * nk), *dv = up(v, 2 * nk);
	int32_t *dlens = up(lens, sizeof(int32_t) * B), *dch = up(ch, sizeof(int32_t) * LH * r);
	uint8_t *dlab;
	uint16_t *dsca;
	CU(cudaMalloc((void **)&dlab, lb));
	CU(cudaMalloc((void **)&dsca, sb + 2));
	CU(cudaMemset(dlab, 0x5A, lb));
	CU(cudaMemset(dsca, 0x5A, sb + 2));
	fpk_ds_label_cfg dc = c;
	dc.ch = dch;
	fpk_ds_label_params glp = {s, dc, dk, dlens, NULL, dlab, t->fmt ? dsca : NULL};
	CHECK_OK(fpk_ds_label_build(&glp, NULL));
	CU(cudaDeviceSynchronize());
	CU(cudaMemcpy(glab, dlab, lb, cudaMemcpyDeviceToHost));
	CU(cudaMemcpy(gsca, dsca, sb + 2, cudaMemcpyDeviceToHost));
	size_t rb = fpk_ds_label_row_bytes(&c);
	int lab_ok = 1;
	for (int b = 0; b < B; b++)
		for (int lh = 0; lh < LH; lh++)
			for (int x = 0; x < lens[b]; x++) {
				size_t row = ((size_t)b * LH + lh) * L + x;
				lab_ok &= !memcmp(glab + row * rb, lab + row * rb, rb);
				if (t->fmt)
					lab_ok &= gsca[row] == sca[row];
			}
	CHECK(lab_ok);

	/* decode: reference vs GPU (twice: the workspace must come back clean) */
	int per = t->sph ? H : Hkv, U = B * per;
	int kcap = t->topk > 0 ? t->topk : (L + t->topk_div - 1) / t->topk_div;
	float *out = malloc(sizeof(float) * nq), *gout = malloc(sizeof(float) * nq), *gout2 = malloc(sizeof(float) * nq);
	int32_t *idx = malloc(sizeof(int32_t) * U * kcap), *nsel = malloc(sizeof(int32_t) * U);
	int32_t *gidx = malloc(sizeof(int32_t) * U * kcap), *gnsel = malloc(sizeof(int32_t) * U);
	fpk_ds_decode_params dp = {s, c, q, k, v, lens, lab, sca, t->sph, t->topk, t->topk_div, t->dense_below, out, 0};
	CHECK_OK(fpk_ds_ref_decode(&dp, idx, nsel, kcap));
	fpk_ds_workspace *ws = NULL;
	CHECK_OK(fpk_ds_workspace_new(&s, kcap, &ws));
	float *dout;
	CU(cudaMalloc((void **)&dout, sizeof(float) * nq));
	fpk_ds_decode_params gp = {s, dc, dq, dk, dv, dlens, dlab, t->fmt ? dsca : NULL, t->sph, t->topk, t->topk_div,
				   t->dense_below, dout, 0};
	/* the path the call takes: on sm_90 and later the fused cluster kernel unless FPK_DS_SELECT=split */
	int fused = fpk_ds_decode_fused(&gp, ws), cc = 0, dev = 0;
	CU(cudaGetDevice(&dev));
	CU(cudaDeviceGetAttribute(&cc, cudaDevAttrComputeCapabilityMajor, dev));
	const char *mode = getenv("FPK_DS_SELECT");
	if (mode && !strcmp(mode, "split"))
		CHECK(fused == 0);
	else if (mode && !strcmp(mode, "fused"))
		CHECK(cc >= 9 && L <= 131072 ? fused >= 1 && fused <= 16 : fused == 0);
	for (int rep = 0; rep < 2; rep++) {
		CU(cudaMemset(dout, 0xFF, sizeof(float) * nq)); /* NaN */
		CHECK_OK(fpk_ds_decode(&gp, ws, NULL));
		CU(cudaDeviceSynchronize());
		CU(cudaMemcpy(rep ? gout2 : gout, dout, sizeof(float) * nq, cudaMemcpyDeviceToHost));
	}
	const int32_t *widx, *wnsel;
	int wk;
	fpk_ds_workspace_selection(ws, &widx, &wnsel, &wk);
	CU(cudaMemcpy(gnsel, wnsel, sizeof(int32_t) * U, cudaMemcpyDeviceToHost));
	int sel_ok = 1;
	for (int u = 0; u < U; u++) {
		sel_ok &= gnsel[u] == nsel[u];
		if (nsel[u] > 0 && gnsel[u] == nsel[u]) {
			CU(cudaMemcpy(gidx + (size_t)u * kcap, widx + (size_t)u * wk, sizeof(int32_t) * nsel[u], cudaMemcpyDeviceToHost));
			sel_ok &= !memcmp(gidx + (size_t)u * kcap, idx + (size_t)u * kcap, sizeof(int32_t) * nsel[u]);
		}
	}
	CHECK(sel_ok);
	unsigned faults = 1;
	CHECK_OK(fpk_ds_workspace_faults(ws, &faults));
	CHECK(faults == 0); /* every selection took exactly k_b tokens (the kernels' own check) */
	double e = max_rel(gout, out, nq);
	CHECK(e <= 2e-4);
	CHECK(!memcmp(gout, gout2, sizeof(float) * nq));

	/* dense */
	fpk_ds_dense_params rdp = {s, q, k, v, lens, out};
	CHECK_OK(fpk_ds_ref_dense_decode(&rdp));
	CU(cudaMemset(dout, 0xFF, sizeof(float) * nq));
	fpk_ds_dense_params gdp = {s, dq, dk, dv, dlens, dout};
	CHECK_OK(fpk_ds_dense_decode(&gdp, ws, NULL));
	CU(cudaDeviceSynchronize());
	CU(cudaMemcpy(gout, dout, sizeof(float) * nq, cudaMemcpyDeviceToHost));
	double ed = max_rel(gout, out, nq);
	CHECK(ed <= 2e-4);

	/* append: rebuild the last token of every sequence from poison */
	int32_t *from = malloc(sizeof(int32_t) * B);
	for (int b = 0; b < B; b++)
		from[b] = lens[b] - 1;
	int32_t *dfrom = up(from, sizeof(int32_t) * B);
	for (int b = 0; b < B; b++)
		for (int lh = 0; lh < LH; lh++)
			CU(cudaMemset(dlab + (((size_t)b * LH + lh) * L + from[b]) * rb, 0x77, rb));
	glp.from = dfrom;
	CHECK_OK(fpk_ds_label_build(&glp, NULL));
	CU(cudaDeviceSynchronize());
	CU(cudaMemcpy(glab, dlab, lb, cudaMemcpyDeviceToHost));
	int app_ok = 1;
	for (int b = 0; b < B; b++)
		for (int lh = 0; lh < LH; lh++) {
			size_t row = ((size_t)b * LH + lh) * L + from[b];
			app_ok &= !memcmp(glab + row * rb, lab + row * rb, rb);
		}
	CHECK(app_ok);

	int nds = 0;
	for (int u = 0; u < U; u++)
		nds += nsel[u] > 0;
	fprintf(stderr, "  B%d H%d Hkv%d d%d L%d r%d fmt%d phl%d sph%d %s ties%d: %d/%d units sparse (%s), err %.2e dense err "
		"%.2e\n", B, H, Hkv, d, L, r, t->fmt, t->phl, t->sph, dt == FPK_BF16 ? "bf16" : "f16", t->ties, nds, U,
		fused ? "fused" : "split", e, ed);
	if (fused)
		fprintf(stderr, "    fused score + select: clusters of %d blocks\n", fused);

	fpk_ds_workspace_free(ws);
	cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(dlens), cudaFree(dch), cudaFree(dlab), cudaFree(dsca);
	cudaFree(dout), cudaFree(dfrom);
	free(ch), free(q), free(k), free(v), free(lens), free(lab), free(glab), free(sca), free(gsca), free(out);
	free(gout), free(gout2), free(idx), free(nsel), free(gidx), free(gnsel), free(from);
}

static const tcase cases[] = {
	/* B  H   Hkv d    L      r   fmt              phl sph dt       topk div  dense ties */
	{2, 8, 2, 64, 700, 8, FPK_DS_LABEL_16, 0, 0, FPK_F16, 0, 16, 100, 0},
	{3, 32, 8, 128, 5000, 8, FPK_DS_LABEL_Q4, 0, 0, FPK_F16, 0, 16, 0, 1},
	{2, 32, 8, 128, 20000, 8, FPK_DS_LABEL_16, 0, 0, FPK_F16, 0, 16, 4096, 0},
	{2, 32, 8, 128, 20000, 16, FPK_DS_LABEL_Q4, 0, 0, FPK_F16, 0, 16, 0, 0},
	{2, 8, 8, 128, 3000, 16, FPK_DS_LABEL_Q8, 0, 0, FPK_BF16, 100, 0, 0, 0},
	{2, 8, 2, 64, 2000, 4, FPK_DS_LABEL_16, 0, 1, FPK_F16, 0, 8, 0, 1},
	{2, 6, 2, 24, 900, 5, FPK_DS_LABEL_Q8, 1, 1, FPK_BF16, 0, 4, 50, 0},
	{4, 4, 4, 8, 600, 2, FPK_DS_LABEL_16, 0, 0, FPK_BF16, 0, 16, 0, 1},
	{1, 16, 1, 256, 1500, 31, FPK_DS_LABEL_Q8, 0, 0, FPK_F16, 0, 3, 0, 0},
	{2, 12, 4, 80, 2500, 10, FPK_DS_LABEL_Q4, 0, 0, FPK_F16, 64, 0, 0, 1},
	{1, 32, 2, 96, 1800, 7, FPK_DS_LABEL_16, 0, 0, FPK_BF16, 0, 16, 0, 0},  /* G = 16: two head blocks */
	{2, 8, 4, 40, 3000, 3, FPK_DS_LABEL_Q4, 1, 1, FPK_F16, 0, 32, 0, 1},
	{1, 8, 8, 128, 70000, 8, FPK_DS_LABEL_16, 0, 0, FPK_F16, 0, 16, 0, 0}, /* many select tiles */
	{3, 2, 1, 32, 40, 4, FPK_DS_LABEL_16, 0, 0, FPK_F16, 5, 0, 0, 1},
	/* r = 1 with 3 key values: over 6144 candidates, most of them tied in bin b*, so the resolve's list stays in
	 * global memory; k = 5000 of them taken, so the k-th tie lies in the second tile of the ordered pass */
	{2, 4, 2, 32, 20000, 1, FPK_DS_LABEL_16, 0, 0, FPK_F16, 5000, 0, 0, 1},
	/* 256 units of 24K tokens: the score kernel's chunks exceed 4096 tokens, so the filter runs on its own,
	 * smaller chunks (on a GPU with up to ~200 SMs) */
	{4, 64, 64, 8, 24576, 4, FPK_DS_LABEL_16, 0, 0, FPK_F16, 0, 16, 0, 0},
	/* the fused path's largest blocks: one unit of 131072 tokens, clusters of 16 blocks of 8192 keys */
	{1, 4, 1, 64, 131072, 8, FPK_DS_LABEL_16, 0, 0, FPK_F16, 0, 16, 0, 0},
	/* past the fused path's reach (L_max over 16 x 8192): the split path on every GPU; ties over many blocks */
	{1, 2, 1, 32, 140000, 2, FPK_DS_LABEL_Q8, 0, 0, FPK_F16, 0, 16, 0, 1},
};

int main(int argc, char **argv)
{
	int n = (int)(sizeof(cases) / sizeof(cases[0]));
	int quick = (argc > 1 && !strcmp(argv[1], "quick")) || getenv("FPK_QUICK");
	/* more units than one grid dimension holds: a clear usage error, before any allocation */
	fpk_ds_shape big = {8193, 8, 4, 64, 128, FPK_F16};
	fpk_ds_workspace *ws = NULL;
	CHECK_ERR(fpk_ds_workspace_new(&big, 16, &ws), FPK_EUSAGE, "at most 65535");
	CHECK(ws == NULL);
	/* every case on both selection paths (the fused one needs sm_90; elsewhere both runs take the split path),
	 * then the default choice */
	static const char *const modes[3] = {"split", "fused", "auto"};
	for (int mo = 0; mo < 3; mo++) {
		if (mo < 2)
			setenv("FPK_DS_SELECT", modes[mo], 1);
		else
			unsetenv("FPK_DS_SELECT");
		for (int i = 0; i < n; i++) {
			if (quick && i != 1 && i != 6 && i != 14 && i != 16)
				continue;
			int before = fpk_test_failures;
			run_case(&cases[i]);
			fprintf(stderr, "%s case %d (%s)\n", fpk_test_failures == before ? "ok  " : "FAIL", i, modes[mo]);
		}
	}
	TEST_EXIT();
}
