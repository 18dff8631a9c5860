/* test_prune.c: the prune stage's exact selection against a sort-based reference (ties, all-equal tensors,
 * already-sparse tensors, S = 0, -0, rows, N:M) and determinism across thread counts. Run: ctest -R test_prune. */
#include "fpk_test.h"
#include "magsel.h"
#include "prune.h"

#include <math.h>

static const fpk_dtype dts[3] = {FPK_F32, FPK_F16, FPK_BF16};

static void store(uint8_t *d, fpk_dtype dt, uint64_t i, float v)
{
	if (dt == FPK_F32) {
		memcpy(d + 4 * i, &v, 4);
	} else {
		uint16_t h = dt == FPK_F16 ? fpk_f32_to_f16(v) : fpk_f32_to_bf16(v);
		memcpy(d + 2 * i, &h, 2);
	}
}

static float absval(const uint8_t *d, fpk_dtype dt, uint64_t i)
{
	return fabsf(fpk_load_f32(d, dt, (size_t)i));
}

typedef struct ref_item {
	float mag;
	uint64_t idx;
} ref_item;

static int ref_cmp(const void *a, const void *b)
{
	const ref_item *x = a, *y = b;
	if (x->mag != y->mag)
		return x->mag < y->mag ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* reference order: [lo, lo + n) sorted by (|x|, index); caller frees */
static ref_item *ref_sort(const uint8_t *in, fpk_dtype dt, uint64_t lo, uint64_t n)
{
	ref_item *it = malloc((n + 1) * sizeof(*it));
	for (uint64_t i = 0; i < n; i++)
		it[i] = (ref_item){absval(in, dt, lo + i), lo + i};
	qsort(it, (size_t)n, sizeof(*it), ref_cmp);
	return it;
}

/* reference: prune the first k of the sorted order into out (pruned non-zeros become +0) */
static void ref_apply(const ref_item *it, const uint8_t *in, fpk_dtype dt, uint64_t lo, uint64_t n, uint64_t k,
		      uint8_t *out)
{
	unsigned es = fpk_dtypes[dt].size;
	memcpy(out + lo * es, in + lo * es, (size_t)(n * es));
	for (uint64_t j = 0; j < k && j < n; j++)
		if (it[j].mag != 0)
			memset(out + it[j].idx * es, 0, es);
}

static void ref_prune(const uint8_t *in, fpk_dtype dt, uint64_t lo, uint64_t n, uint64_t k, uint8_t *out)
{
	ref_item *it = ref_sort(in, dt, lo, n);
	ref_apply(it, in, dt, lo, n, k, out);
	free(it);
}

static uint8_t *make(fpk_dtype dt, uint64_t n, uint64_t seed, int mode)
{
	uint8_t *d = malloc(n * fpk_dtypes[dt].size + 8);
	uint64_t s = seed;
	for (uint64_t i = 0; i < n; i++) {
		float v = fpk_test_randn(&s) * 0.02f;
		if (mode == 1) /* coarse values: many ties at every magnitude */
			v = roundf(v * 200.0f) / 200.0f;
		else if (mode == 2) /* all equal */
			v = 0.5f;
		else if (mode == 3 && fpk_test_rand(&s) % 10 < 6) /* 60% zeros, some of them -0 */
			v = (i & 1) ? -0.0f : 0.0f;
		store(d, dt, i, v);
	}
	return d;
}

static uint64_t count_zero(const uint8_t *d, fpk_dtype dt, uint64_t n)
{
	uint64_t z = 0;
	for (uint64_t i = 0; i < n; i++)
		z += absval(d, dt, i) == 0;
	return z;
}

/* tensor scope: exact reference match, every thread count, every dtype, ties and chunk boundaries */
static void tensor_scope_should_match_the_sorted_reference(void)
{
	const uint64_t sizes[] = {1, 7, 1000, 300001};
	for (int di = 0; di < 3; di++)
		for (int si = 0; si < 4; si++)
			for (int mode = 0; mode < 4; mode++) {
				fpk_dtype dt = dts[di];
				uint64_t n = sizes[si];
				unsigned es = fpk_dtypes[dt].size;
				uint8_t *in = make(dt, n, 1234 + (uint64_t)si * 7 + (uint64_t)mode, mode);
				uint8_t *want = malloc(n * es + 8), *got = malloc(n * es + 8), *first = malloc(n * es + 8);
				const uint64_t ks[] = {0, 1, n / 3, n / 2, (uint64_t)floor(0.9 * (double)n + 0.5), n - 1, n};
				int kind;
				CHECK_OK(fpk_magsel_kind(dt, 0, &kind));
				ref_item *order = ref_sort(in, dt, 0, n);
				for (int ki = 0; ki < 7; ki++) {
					uint64_t k = ks[ki];
					ref_apply(order, in, dt, 0, n, k, want);
					for (int th = 1; th <= 3; th++) {
						fpk_magsel_result res;
						uint64_t zb, za, bad, budget;
						memset(got, 0xAB, n * es);
						CHECK_OK(fpk_magsel_select(in, kind, n, k, th, &res, &zb, &bad));
						CHECK(bad == UINT64_MAX);
						CHECK_EQ_INT(zb, count_zero(in, dt, n));
						budget = res.n_eq_sel == res.n_eq ? UINT64_MAX : res.n_eq_sel;
						CHECK_OK(fpk_magsel_tensor_apply(in, kind, n, k > 0, res.key, &budget, th, got, &za));
						if (memcmp(got, want, n * es)) {
							fprintf(stderr, "  dtype %s n %llu mode %d k %llu threads %d differs from the reference\n",
								fpk_dtypes[dt].name, (unsigned long long)n, mode, (unsigned long long)k, th);
							fpk_test_failures++;
						}
						uint64_t expect = k > zb ? k : zb;
						CHECK_EQ_INT(za, expect);
						CHECK_EQ_INT(count_zero(got, dt, n), expect);
						if (th == 1)
							memcpy(first, got, n * es);
						else
							CHECK(!memcmp(first, got, n * es));
					}
				}
				free(order);
				free(in);
				free(want);
				free(got);
				free(first);
			}
}

static void all_equal_tensor_should_prune_the_lowest_indices_first(void)
{
	uint64_t n = 1000, k = 300;
	uint8_t *in = make(FPK_F16, n, 1, 2), *out = malloc(2 * n);
	int kind;
	fpk_magsel_result res;
	uint64_t zb, za, bad;
	fpk_magsel_kind(FPK_F16, 0, &kind);
	CHECK_OK(fpk_magsel_select(in, kind, n, k, 2, &res, &zb, &bad));
	CHECK_EQ_INT(res.n_less, 0);
	CHECK_EQ_INT(res.n_eq, n);
	CHECK_EQ_INT(res.n_eq_sel, k);
	uint64_t budget = res.n_eq_sel;
	CHECK_OK(fpk_magsel_tensor_apply(in, kind, n, 1, res.key, &budget, 3, out, &za));
	CHECK_EQ_INT(za, k);
	for (uint64_t i = 0; i < n; i++)
		CHECK((absval(out, FPK_F16, i) == 0) == (i < k));
	free(in);
	free(out);
}

static void already_sparse_tensor_should_count_existing_zeros_and_keep_their_bits(void)
{
	uint64_t n = 5000;
	uint8_t *in = make(FPK_F32, n, 99, 3), *out = malloc(4 * n);
	uint64_t zeros = count_zero(in, FPK_F32, n);
	CHECK(zeros > n / 2 && zeros < 2 * n / 3);
	int kind;
	fpk_magsel_kind(FPK_F32, 0, &kind);
	for (int pass = 0; pass < 2; pass++) {
		uint64_t k = pass == 0 ? n / 2 : (uint64_t)(0.8 * (double)n), zb, za, bad;
		fpk_magsel_result res;
		CHECK_OK(fpk_magsel_select(in, kind, n, k, 2, &res, &zb, &bad));
		uint64_t budget = res.n_eq_sel == res.n_eq ? UINT64_MAX : res.n_eq_sel;
		CHECK_OK(fpk_magsel_tensor_apply(in, kind, n, k > 0, res.key, &budget, 2, out, &za));
		CHECK_EQ_INT(zb, zeros);
		CHECK_EQ_INT(za, k > zeros ? k : zeros); /* never fewer zeros than before; exactly k when k >= zeros */
		for (uint64_t i = 0; i < n; i++) {
			uint32_t a, b;
			memcpy(&a, in + 4 * i, 4);
			memcpy(&b, out + 4 * i, 4);
			CHECK(a == b || b == 0);
			if ((a & 0x7fffffffu) == 0)
				CHECK(a == b); /* -0 stays -0 */
		}
	}
	free(in);
	free(out);
}

static void zero_sparsity_should_leave_the_tensor_byte_identical(void)
{
	uint64_t n = 70000, zb, za, bad, budget = UINT64_MAX;
	uint8_t *in = make(FPK_BF16, n, 5, 0), *out = malloc(2 * n);
	int kind;
	fpk_magsel_result res;
	fpk_magsel_kind(FPK_BF16, 0, &kind);
	CHECK_OK(fpk_magsel_select(in, kind, n, 0, 2, &res, &zb, &bad));
	CHECK_OK(fpk_magsel_tensor_apply(in, kind, n, 0, 0, &budget, 2, out, &za));
	CHECK(!memcmp(in, out, 2 * n));
	CHECK_EQ_INT(za, zb);
	free(in);
	free(out);
}

static void nonfinite_values_should_be_found_at_their_first_index(void)
{
	uint64_t n = 600000, zb, bad;
	uint8_t *in = make(FPK_F16, n, 8, 0);
	int kind;
	fpk_magsel_result res;
	store(in, FPK_F16, 512345, INFINITY);
	store(in, FPK_F16, 400000, NAN);
	fpk_magsel_kind(FPK_F16, 0, &kind);
	CHECK_OK(fpk_magsel_select(in, kind, n, 10, 3, &res, &zb, &bad));
	CHECK_EQ_INT(bad, 400000);
	free(in);
}

/* row scope: each row matches the reference for its own k */
static void row_scope_should_match_the_reference_per_row(void)
{
	for (int di = 0; di < 3; di++)
		for (int mode = 0; mode < 4; mode++) {
			fpk_dtype dt = dts[di];
			uint64_t rows = 37, cols = 301, n = rows * cols;
			unsigned es = fpk_dtypes[dt].size;
			uint8_t *in = make(dt, n, 77 + (uint64_t)mode, mode), *want = malloc(n * es), *got = malloc(n * es);
			int kind;
			fpk_magsel_kind(dt, 0, &kind);
			const uint64_t ks[] = {0, 1, 150, 211, 300, 301};
			for (int ki = 0; ki < 6; ki++) {
				for (uint64_t r = 0; r < rows; r++)
					ref_prune(in, dt, r * cols, cols, ks[ki], want);
				for (int th = 1; th <= 3; th++) {
					uint32_t tm;
					uint64_t zb, za;
					memset(got, 0xCD, n * es);
					CHECK_OK(fpk_magsel_rows(in, kind, rows, cols, ks[ki], 0, 0, th, got, &tm, &zb, &za));
					if (memcmp(got, want, n * es)) {
						fprintf(stderr, "  rows: dtype %s mode %d k %llu threads %d differs\n", fpk_dtypes[dt].name,
							mode, (unsigned long long)ks[ki], th);
						fpk_test_failures++;
					}
					CHECK_EQ_INT(za, count_zero(want, dt, n));
					CHECK_EQ_INT(zb, count_zero(in, dt, n));
				}
			}
			free(in);
			free(want);
			free(got);
		}
}

static void nm_pattern_should_keep_n_of_every_m(void)
{
	const int pats[][2] = {{2, 4}, {1, 4}, {4, 8}, {1, 2}};
	for (int di = 0; di < 3; di++)
		for (int p = 0; p < 4; p++)
			for (int mode = 0; mode < 4; mode++) {
				fpk_dtype dt = dts[di];
				int N = pats[p][0], M = pats[p][1];
				uint64_t rows = 19, cols = 64, n = rows * cols;
				unsigned es = fpk_dtypes[dt].size;
				uint8_t *in = make(dt, n, 5 + (uint64_t)mode, mode), *want = malloc(n * es), *got = malloc(n * es);
				int kind;
				fpk_magsel_kind(dt, 0, &kind);
				for (uint64_t g = 0; g < n; g += (uint64_t)M)
					ref_prune(in, dt, g, (uint64_t)M, (uint64_t)(M - N), want);
				for (int th = 1; th <= 3; th++) {
					uint32_t tm;
					uint64_t zb, za;
					CHECK_OK(fpk_magsel_rows(in, kind, rows, cols, 0, N, M, th, got, &tm, &zb, &za));
					CHECK(!memcmp(got, want, n * es));
					for (uint64_t g = 0; g < n; g += (uint64_t)M) {
						uint64_t nz = 0, z0 = 0;
						for (int j = 0; j < M; j++) {
							nz += absval(got, dt, g + (uint64_t)j) != 0;
							z0 += absval(in, dt, g + (uint64_t)j) == 0;
						}
						CHECK(nz <= (uint64_t)N);
						CHECK_EQ_INT((uint64_t)M - nz, z0 > (uint64_t)(M - N) ? z0 : (uint64_t)(M - N));
					}
				}
				free(in);
				free(want);
				free(got);
			}
}

/* global keys: one key space across dtypes, monotone in |x| */
static void global_keys_should_order_magnitudes_across_dtypes(void)
{
	uint64_t s = 3;
	for (int i = 0; i < 20000; i++) {
		float a = fpk_test_randn(&s) * (i % 3 ? 0.01f : 100.0f), b = fpk_test_randn(&s) * 0.02f;
		uint8_t x[4], y[4];
		fpk_dtype da = dts[i % 3], db = dts[(i / 3) % 3];
		store(x, da, 0, a);
		store(y, db, 0, b);
		int ka, kb;
		fpk_magsel_kind(da, 1, &ka);
		fpk_magsel_kind(db, 1, &kb);
		float ma = absval(x, da, 0), mb = absval(y, db, 0);
		uint32_t kx = fpk_magsel_key(x, ka, 0), ky = fpk_magsel_key(y, kb, 0);
		CHECK((ma < mb) == (kx < ky));
		CHECK((ma == mb) == (kx == ky));
		CHECK(fpk_magsel_value(kx, KEY_F32) == ma);
	}
}

/* fpk_prune_run: option validation before anything is opened or written */
static void prune_run_should_reject_bad_options(void)
{
	fpk_prune_report rep;
	fpk_prune_opts o = {.in = fpk_test_shared("testdata/stories260K"), .out = fpk_test_tmp("prune_unit_out"),
			    .sparsity = 1.0};
	CHECK_ERR(fpk_prune_run(&o, &rep), FPK_EUSAGE, "out of range");
	fpk_prune_report_release(&rep);
	o.sparsity = -0.1;
	CHECK_ERR(fpk_prune_run(&o, &rep), FPK_EUSAGE, "out of range");
	fpk_prune_report_release(&rep);
	o.sparsity = 0.5;
	o.pattern_n = 3;
	o.pattern_m = 2;
	CHECK_ERR(fpk_prune_run(&o, &rep), FPK_EUSAGE, "pattern 3:2");
	fpk_prune_report_release(&rep);
	o.pattern_n = o.pattern_m = 0;
	o.out = o.in;
	CHECK_ERR(fpk_prune_run(&o, &rep), FPK_EUSAGE, "inside it");
	fpk_prune_report_release(&rep);
	CHECK(!fpk_path_exists(fpk_test_tmp("prune_unit_out")));
}

/* a dry run counts exactly what a real run writes, and writes nothing */
static void prune_run_dry_run_should_report_exact_counts(void)
{
	fpk_prune_report rep;
	fpk_prune_opts o = {.in = fpk_test_shared("testdata/stories260K-fp16"), .sparsity = 0.25, .dry_run = 1,
			    .scope = FPK_SCOPE_GLOBAL};
	CHECK_OK(fpk_prune_run(&o, &rep));
	CHECK_EQ_INT(rep.n, 47);
	CHECK_EQ_INT(rep.n_targeted, 35);
	CHECK_EQ_INT(rep.zeros_after, (uint64_t)floor(0.25 * (double)rep.targeted_elements + 0.5));
	CHECK(rep.has_threshold && rep.global_threshold > 0);
	fpk_prune_report_release(&rep);
}

int main(void)
{
	RUN(tensor_scope_should_match_the_sorted_reference);
	RUN(all_equal_tensor_should_prune_the_lowest_indices_first);
	RUN(already_sparse_tensor_should_count_existing_zeros_and_keep_their_bits);
	RUN(zero_sparsity_should_leave_the_tensor_byte_identical);
	RUN(nonfinite_values_should_be_found_at_their_first_index);
	RUN(row_scope_should_match_the_reference_per_row);
	RUN(nm_pattern_should_keep_n_of_every_m);
	RUN(global_keys_should_order_magnitudes_across_dtypes);
	RUN(prune_run_should_reject_bad_options);
	RUN(prune_run_dry_run_should_report_exact_counts);
	TEST_EXIT();
}
