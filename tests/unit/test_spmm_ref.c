/* test_spmm_ref.c: the scalar Tiled-CSL SpMM reference (kernels/spmm_ref.c) against a naive dense fp64 product
 * of the decoded matrix, over shapes, densities, both dtypes and orders. Run: ctest -R test_spmm_ref. */
#include "fpk_test.h"
#include "spmm_ref.h"
#include "tcsl.h"

#include <math.h>

static uint16_t to16(float f, fpk_dtype dt) { return dt == FPK_BF16 ? fpk_f32_to_bf16(f) : fpk_f32_to_f16(f); }
static float from16(uint16_t h, fpk_dtype dt) { return dt == FPK_BF16 ? fpk_bf16_to_f32(h) : fpk_f16_to_f32(h); }

static void random_w(uint16_t *w, int64_t m, int64_t k, double density, fpk_dtype dt, uint64_t *s)
{
	for (int64_t i = 0; i < m * k; i++) {
		double u = (double)(fpk_test_rand(s) >> 11) / 9007199254740992.0;
		w[i] = u < density ? to16(fpk_test_randn(s), dt) : 0;
		if (u < density && (w[i] & 0x7fff) == 0)
			w[i] = to16(0.5f, dt);
	}
}

/* max |ref - dense fp64| / max |dense fp64| for one case */
static double run_case(int64_t m, int64_t k, int64_t n, double density, fpk_dtype dt, int reorder, uint64_t seed)
{
	uint64_t s = seed;
	uint16_t *w = malloc(sizeof(uint16_t) * m * k), *wd = malloc(sizeof(uint16_t) * m * k);
	uint16_t *x = malloc(sizeof(uint16_t) * n * k);
	float *y = malloc(sizeof(float) * n * m);
	double err = 1e30, scale = 0, maxd = 0;
	fpk_tcsl t = {0};
	random_w(w, m, k, density, dt, &s);
	for (int64_t i = 0; i < n * k; i++)
		x[i] = to16(fpk_test_randn(&s), dt);
	for (int64_t i = 0; i < n * m; i++)
		y[i] = NAN;
	if (fpk_tcsl_encode(&t, w, m, k, dt, reorder, 0, 2) || fpk_tcsl_decode(&t, wd))
		goto done;
	if (fpk_spmm_ref(&t, x, n, y, 2))
		goto done;
	for (int64_t tok = 0; tok < n; tok++)
		for (int64_t o = 0; o < m; o++) {
			double acc = 0;
			for (int64_t i = 0; i < k; i++)
				acc += (double)from16(wd[o * k + i], dt) * (double)from16(x[tok * k + i], dt);
			double d = fabs((double)y[tok * m + o] - acc);
			if (!(d == d) || isnan(y[tok * m + o]))
				d = 1e30;
			maxd = d > maxd ? d : maxd;
			scale = fabs(acc) > scale ? fabs(acc) : scale;
		}
	err = scale > 0 ? maxd / scale : maxd;
done:
	fpk_tcsl_release(&t);
	free(w);
	free(wd);
	free(x);
	free(y);
	return err;
}

static void spmm_ref_should_match_dense_fp64_on_many_shapes(void)
{
	static const int64_t shapes[][3] = {{1, 1, 1},   {128, 64, 8},  {100, 70, 3},  {257, 130, 5},
					    {300, 200, 1}, {129, 65, 16}, {64, 500, 2}, {256, 128, 33}};
	static const double dens[] = {0.0, 0.05, 0.3, 0.5, 0.8, 1.0};
	uint64_t seed = 12345;
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++)
		for (size_t di = 0; di < sizeof(dens) / sizeof(dens[0]); di++)
			for (int dt = 0; dt < 2; dt++) {
				fpk_dtype d = dt ? FPK_BF16 : FPK_F16;
				double e = run_case(shapes[si][0], shapes[si][1], shapes[si][2], dens[di], d, (int)((si + di) & 1),
						    seed++);
				/* fp32 accumulation of k <= 500 products: well under 1e-5 of the output scale */
				if (!(e <= 1e-5))
					fprintf(stderr, "case %lld x %lld n %lld density %.2f %s: rel err %g\n",
						(long long)shapes[si][0], (long long)shapes[si][1], (long long)shapes[si][2], dens[di],
						dt ? "bf16" : "f16", e);
				CHECK(e <= 1e-5);
			}
}

static void spmm_ref_should_reject_a_loc_out_of_range(void)
{
	uint64_t s = 99;
	uint16_t w[128 * 64];
	uint16_t x[64];
	float y[128];
	fpk_tcsl t = {0};
	random_w(w, 128, 64, 0.5, FPK_F16, &s);
	for (int i = 0; i < 64; i++)
		x[i] = fpk_f32_to_f16(1.0f);
	CHECK_OK(fpk_tcsl_encode(&t, w, 128, 64, FPK_F16, 1, 0, 1));
	t.values[3] = (t.values[3] & 0xffffu) | (9000u << 16);
	CHECK_ERR(fpk_spmm_ref(&t, x, 1, y, 1), FPK_EFORMAT, "loc 9000");
	t.offsets[1] = (int32_t)(t.n_entries / 4 + 5);
	CHECK_ERR(fpk_spmm_ref(&t, x, 1, y, 1), FPK_EFORMAT, "offsets");
	fpk_tcsl_release(&t);
}

int main(void)
{
	RUN(spmm_ref_should_match_dense_fp64_on_many_shapes);
	RUN(spmm_ref_should_reject_a_loc_out_of_range);
	TEST_EXIT();
}
