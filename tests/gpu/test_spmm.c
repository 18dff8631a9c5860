/* test_spmm.c: the Tiled-CSL SpMM kernel (kernels/spmm.cu) against its scalar reference (kernels/spmm_ref.c)
 * over shapes, token counts, densities 0..100% (tiles above 4096 entries included), fp16 and bf16, forced
 * split-K, with Y poisoned (NaN) before each run. Run on a GPU: ctest -L gpu (or build/tests/gpu/test_spmm).
 * Tolerance: max |gpu - ref| <= tol * max |ref| with tol 2e-3 (fp16 output rounding is 4.9e-4 of a value of
 * the output's scale) and 1e-2 for bf16 (3.9e-3); an element the kernel did not write stays NaN and fails.
 * A chain of back-to-back launches checks the programmatic-dependent-launch ordering (kernels/fpk_pdl.cuh). */
#include "fpk_cuda.h"
#include "fpk_test.h"
#include "spmm.h"
#include "spmm_ref.h"
#include "tcsl.h"

#include <math.h>
#include <string.h>

static uint16_t to16(float f, fpk_dtype dt) { return dt == FPK_BF16 ? fpk_f32_to_bf16(f) : fpk_f32_to_f16(f); }
static float from16(uint16_t h, fpk_dtype dt) { return dt == FPK_BF16 ? fpk_bf16_to_f32(h) : fpk_f16_to_f32(h); }

static void random_w(uint16_t *w, int64_t m, int64_t k, double density, fpk_dtype dt, uint64_t *s)
{
	for (int64_t i = 0; i < m * k; i++) {
		double u = (double)(fpk_test_rand(s) >> 11) / 9007199254740992.0;
		w[i] = u < density ? to16(fpk_test_randn(s), dt) : 0;
		if (u < density && (w[i] & 0x7fff) == 0)
			w[i] = to16(0.25f, dt);
	}
}

static int ncases, nfail;

/* max |g - ref| over cnt values (1e30 when a value is NaN, e.g. never written over the poison); *scale gets
 * max |ref| */
static double max_diff(const uint16_t *g, const float *ref, int64_t cnt, fpk_dtype dt, double *scale)
{
	double maxd = 0, sc = 0;
	for (int64_t i = 0; i < cnt; i++) {
		float v = from16(g[i], dt);
		double d = fabs((double)v - ref[i]);
		if (isnan(v) || isnan(d))
			d = 1e30;
		maxd = d > maxd ? d : maxd;
		sc = fabs(ref[i]) > sc ? fabs(ref[i]) : sc;
	}
	*scale = sc;
	return maxd;
}

/* returns the relative error, or 1e30 on a CUDA/encode failure */
static double run_case(int64_t m, int64_t k, int64_t n, double density, fpk_dtype dt, int reorder, int blocks,
		       uint64_t seed, int repeat)
{
	uint64_t s = seed;
	uint16_t *w = malloc(2 * (size_t)m * k), *x = malloc(2 * (size_t)n * k), *yg = malloc(2 * (size_t)n * m);
	float *yr = malloc(4 * (size_t)n * m);
	void *dx = NULL, *dy = NULL, *ws = NULL;
	size_t wss = fpk_spmm_workspace_size(m, n);
	fpk_tcsl t = {0};
	fpk_spmm_weights dw = {0};
	double err = 1e30, maxd = 0, scale = 0;
	random_w(w, m, k, density, dt, &s);
	for (int64_t i = 0; i < n * k; i++)
		x[i] = to16(fpk_test_randn(&s), dt);
	if (fpk_tcsl_encode(&t, w, m, k, dt, reorder, 0, 4) || fpk_spmm_ref(&t, x, n, yr, 4) || fpk_spmm_upload(&dw, &t) ||
	    fpk_spmm_workspace_alloc(&ws, wss))
		goto done;
	if (cudaMalloc(&dx, 2 * (size_t)n * k) || cudaMalloc(&dy, 2 * (size_t)n * m) ||
	    cudaMemcpy(dx, x, 2 * (size_t)n * k, cudaMemcpyHostToDevice))
		goto done;
	for (int r = 0; r < repeat; r++) {
		fpk_spmm_params p = {.w = &dw, .x = dx, .y = dy, .n = n, .workspace = ws, .workspace_size = wss, .blocks = blocks};
		if (cudaMemset(dy, 0xff, 2 * (size_t)n * m) || fpk_spmm_run(&p) || cudaDeviceSynchronize() ||
		    cudaMemcpy(yg, dy, 2 * (size_t)n * m, cudaMemcpyDeviceToHost))
			goto done;
		maxd = max_diff(yg, yr, n * m, dt, &scale);
		double e = scale > 0 ? maxd / scale : maxd;
		if (r == 0 || e > err)
			err = e;
	}
done:
	if (err >= 1e30 && fpk_error_msg()[0])
		fprintf(stderr, "error: %s\n", fpk_error_msg());
	fpk_tcsl_release(&t);
	fpk_spmm_weights_free(&dw);
	cudaFree(dx);
	cudaFree(dy);
	fpk_spmm_workspace_free(ws);
	free(w);
	free(x);
	free(yg);
	free(yr);
	return err;
}

static void check_case(int64_t m, int64_t k, int64_t n, double density, fpk_dtype dt, int reorder, int blocks,
		       uint64_t seed)
{
	double tol = dt == FPK_BF16 ? 1e-2 : 2e-3;
	double e = run_case(m, k, n, density, dt, reorder, blocks, seed, 2); /* twice: the workspace must come back zero */
	ncases++;
	if (!(e <= tol)) {
		nfail++;
		fprintf(stderr, "FAIL %lld x %lld n %lld density %.3f %s reorder %d blocks %d: rel err %g (tol %g)\n",
			(long long)m, (long long)k, (long long)n, density, dt == FPK_BF16 ? "bf16" : "f16", reorder, blocks,
			e, tol);
	}
	CHECK(e <= tol);
}

static void spmm_should_match_the_reference_on_many_shapes(void)
{
	static const int64_t shapes[][2] = {{128, 64},  {1, 1},     {100, 70},  {300, 200},  {257, 1000},
					    {640, 576}, {1000, 130}, {129, 4097}, {384, 8192}, {2048, 1024}};
	static const int64_t ns[] = {1, 2, 3, 7, 8, 16, 31, 32, 33, 64, 65, 128};
	static const double dens[] = {0.0, 0.01, 0.1, 0.3, 0.5, 0.55, 0.8, 1.0};
	static const int blocks[] = {0, 1, 3, 7};
	uint64_t seed = 777;
	int c = 0;
	if (getenv("FPK_SPMM_QUICK")) { /* a few cases for compute-sanitizer runs */
		check_case(300, 200, 7, 0.3, FPK_F16, 1, 3, seed++);
		check_case(257, 1000, 33, 0.8, FPK_BF16, 1, 0, seed++);
		check_case(640, 576, 16, 1.0, FPK_F16, 0, 5, seed++);
		check_case(100, 70, 1, 0.01, FPK_F16, 1, 0, seed++);
		return;
	}
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++)
		for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
			/* each (shape, n) gets two densities and dtypes, rotating through the lists */
			for (int r = 0; r < 2; r++, c++) {
				double d = dens[(c * 3 + r) % 8];
				fpk_dtype dt = (c & 1) ? FPK_BF16 : FPK_F16;
				int b = blocks[(c / 2) % 4];
				check_case(shapes[si][0], shapes[si][1], ns[ni], d, dt, (c % 5) != 0, b, seed++);
			}
		}
	/* every density at two shapes, both dtypes, automatic and forced splits */
	for (size_t di = 0; di < sizeof(dens) / sizeof(dens[0]); di++)
		for (int dt = 0; dt < 2; dt++) {
			check_case(640, 576, 16, dens[di], dt ? FPK_BF16 : FPK_F16, 1, 0, seed++);
			check_case(1000, 1000, 32, dens[di], dt ? FPK_BF16 : FPK_F16, 1, 5, seed++);
		}
	fprintf(stderr, "%d cases, %d failed\n", ncases, nfail);
}

/* A chain Y_i = W_(i&1) Y_(i-1) of back-to-back launches on one stream, one shared workspace, no synchronisation
 * in between: with programmatic dependent launch each kernel starts while the previous one runs.
 * 1. Every Y_i in its own buffer, poisoned (NaN), checked against the reference applied to the Y_(i-1) the GPU
 *    produced: fails if a kernel reads X or uses the workspace before the previous kernel has finished.
 * 2. The same chain through two buffers (ping-pong: each kernel writes the buffer the previous kernel reads),
 *    the last output checked against a host chain with the same fp16 rounding: fails if a kernel writes Y before
 *    the previous kernel has finished reading it. */
static void spmm_chain_should_read_each_previous_output(void)
{
	enum { STEPS = 6 };
	const int64_t m = 2048, ns[] = {8, 32};
	const double density = 0.2, sc = 1.0 / sqrt(density * (double)m); /* keeps |Y_i| near 1 */
	for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
		int64_t n = ns[ni];
		uint64_t s = 4242 + (uint64_t)n;
		uint16_t *w = malloc(2 * (size_t)m * m), *yh = malloc(2 * (size_t)(STEPS + 1) * n * m);
		float *yr = malloc(4 * (size_t)n * m);
		fpk_tcsl t[2] = {{0}, {0}};
		fpk_spmm_weights dw[2] = {{0}, {0}};
		void *dy = NULL, *ws = NULL;
		cudaStream_t st = NULL;
		size_t wss = fpk_spmm_workspace_size(m, n), yb = 2 * (size_t)n * m;
		int ok = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess;
		for (int q = 0; q < 2 && ok; q++) {
			for (int64_t i = 0; i < m * m; i++) {
				double u = (double)(fpk_test_rand(&s) >> 11) / 9007199254740992.0;
				w[i] = u < density ? fpk_f32_to_f16((float)(fpk_test_randn(&s) * sc)) : 0;
			}
			ok = !fpk_tcsl_encode(&t[q], w, m, m, FPK_F16, 1, 0, 4) && !fpk_spmm_upload(&dw[q], &t[q]);
		}
		for (int64_t i = 0; i < n * m; i++)
			yh[i] = fpk_f32_to_f16(fpk_test_randn(&s));
		ok = ok && !fpk_spmm_workspace_alloc(&ws, wss) && cudaMalloc(&dy, yb * (STEPS + 1)) == cudaSuccess &&
		     cudaMemcpy(dy, yh, yb, cudaMemcpyHostToDevice) == cudaSuccess &&
		     cudaMemset((char *)dy + yb, 0xff, yb * STEPS) == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess;
		for (int i = 1; i <= STEPS && ok; i++) {
			fpk_spmm_params p = {.w = &dw[i & 1], .x = (char *)dy + yb * (i - 1), .y = (char *)dy + yb * i, .n = n,
					     .workspace = ws, .workspace_size = wss, .stream = st};
			ok = !fpk_spmm_run(&p);
		}
		ok = ok && cudaStreamSynchronize(st) == cudaSuccess &&
		     cudaMemcpy(yh, dy, yb * (STEPS + 1), cudaMemcpyDeviceToHost) == cudaSuccess;
		CHECK(ok);
		for (int i = 1; i <= STEPS && ok; i++) {
			double scale;
			CHECK(!fpk_spmm_ref(&t[i & 1], yh + (size_t)n * m * (i - 1), n, yr, 4));
			double maxd = max_diff(yh + (size_t)n * m * i, yr, n * m, FPK_F16, &scale);
			if (!(maxd <= 2e-3 * scale))
				fprintf(stderr, "FAIL chain n %lld step %d: max diff %g, scale %g\n", (long long)n, i, maxd, scale);
			CHECK(scale > 0.1 && maxd <= 2e-3 * scale);
		}
		/* 2: ping-pong through the first two buffers, from the same input (re-uploaded) */
		ok = ok && cudaMemcpy(dy, yh, yb, cudaMemcpyHostToDevice) == cudaSuccess &&
		     cudaMemset((char *)dy + yb, 0xff, yb) == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess;
		for (int i = 1; i <= STEPS && ok; i++) {
			fpk_spmm_params p = {.w = &dw[i & 1], .x = (char *)dy + yb * ((i - 1) & 1), .y = (char *)dy + yb * (i & 1),
					     .n = n, .workspace = ws, .workspace_size = wss, .stream = st};
			ok = !fpk_spmm_run(&p);
		}
		uint16_t *hx = malloc(yb), *gy = malloc(yb);
		ok = ok && hx && gy && cudaStreamSynchronize(st) == cudaSuccess &&
		     cudaMemcpy(gy, (char *)dy + yb * (STEPS & 1), yb, cudaMemcpyDeviceToHost) == cudaSuccess;
		CHECK(ok);
		if (ok) {
			double scale;
			memcpy(hx, yh, yb);
			for (int i = 1; i <= STEPS; i++) { /* host chain: fp32 accumulation, fp16 between steps */
				CHECK(!fpk_spmm_ref(&t[i & 1], hx, n, yr, 4));
				for (int64_t e = 0; e < n * m; e++)
					hx[e] = fpk_f32_to_f16(yr[e]);
			}
			double maxd = max_diff(gy, yr, n * m, FPK_F16, &scale);
			/* six fp16 roundings apart, each ~5e-4 of the scale; a clobbered input is off by O(scale) */
			if (!(maxd <= 2e-2 * scale))
				fprintf(stderr, "FAIL ping-pong chain n %lld: max diff %g, scale %g\n", (long long)n, maxd, scale);
			CHECK(scale > 0.1 && maxd <= 2e-2 * scale);
		}
		free(hx);
		free(gy);
		for (int q = 0; q < 2; q++) {
			fpk_spmm_weights_free(&dw[q]);
			fpk_tcsl_release(&t[q]);
		}
		cudaFree(dy);
		fpk_spmm_workspace_free(ws);
		if (st)
			cudaStreamDestroy(st);
		free(w);
		free(yh);
		free(yr);
	}
}

static void spmm_should_reject_a_small_workspace(void)
{
	fpk_spmm_weights w = {.values = (const uint32_t *)16, .offsets = (const int32_t *)16, .m = 128, .k = 64,
			      .tiles_m = 1, .tiles_k = 1, .dtype = FPK_F16};
	fpk_spmm_params p = {.w = &w, .x = (void *)16, .y = (void *)16, .n = 8, .workspace = (void *)16, .workspace_size = 4};
	CHECK_ERR(fpk_spmm_run(&p), FPK_EUSAGE, "workspace");
	p.n = 0;
	CHECK_ERR(fpk_spmm_run(&p), FPK_EUSAGE, "n < 1");
}

int main(void)
{
	int nd = 0;
	if (cudaGetDeviceCount(&nd) != cudaSuccess || nd < 1) {
		fprintf(stderr, "no CUDA device: skipping\n");
		return 77;
	}
	RUN(spmm_should_reject_a_small_workspace);
	RUN(spmm_should_match_the_reference_on_many_shapes);
	RUN(spmm_chain_should_read_each_previous_output);
	TEST_EXIT();
}
