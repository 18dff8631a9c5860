/* test_common.c: common/: 16-bit float conversion (exhaustive, against the compiler's _Float16 and an
 * independent bf16 rounding), CRC-32 check value, parallel_for failure propagation, atomic files and dirs. */
#include "fpk_test.h"

#include <math.h>
#include <unistd.h>

#ifdef __FLT16_MAX__ /* gcc >= 12 on x86-64; clang 14 (fuzz builds) lacks _Float16 there */
static void f16_should_match_the_compiler_for_every_pattern(void)
{
	int bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		_Float16 x;
		uint16_t hh = (uint16_t)h;
		memcpy(&x, &hh, 2);
		float ref = (float)x, got = fpk_f16_to_f32(hh);
		if (isnan(ref) ? !isnan(got) : memcmp(&ref, &got, 4))
			bad++;
		if (!isnan(ref) && fpk_f32_to_f16(got) != hh)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	/* rounding of arbitrary floats, including ties, subnormals and overflow */
	uint64_t s = 12345;
	int badr = 0;
	for (int i = 0; i < 2000000; i++) {
		uint32_t u = (uint32_t)fpk_test_rand(&s);
		float f;
		memcpy(&f, &u, 4);
		if (isnan(f))
			continue;
		_Float16 r = (_Float16)f;
		uint16_t want;
		memcpy(&want, &r, 2);
		if (fpk_f32_to_f16(f) != want)
			badr++;
	}
	float ties[] = {65504.0f, 65519.99f, 65520.0f, 1.0f + 1.0f / 2048, 5.9604644775390625e-8f * 0.5f, 5.96e-8f * 1.5f, -0.0f};
	for (size_t i = 0; i < sizeof(ties) / sizeof(ties[0]); i++) {
		_Float16 r = (_Float16)ties[i];
		uint16_t want;
		memcpy(&want, &r, 2);
		if (fpk_f32_to_f16(ties[i]) != want)
			badr++;
	}
	CHECK_EQ_INT(badr, 0);
}
#endif

static void bf16_should_round_to_nearest_even(void)
{
	uint64_t s = 99;
	int bad = 0;
	for (int i = 0; i < 2000000; i++) {
		uint32_t u = (uint32_t)fpk_test_rand(&s);
		float f;
		memcpy(&f, &u, 4);
		if (isnan(f) || isinf(f))
			continue;
		uint16_t b = fpk_f32_to_bf16(f);
		/* independent check: the two bf16 neighbours of f by truncation, pick the nearer in double */
		uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
		double dl = fabs((double)fpk_bf16_to_f32(lo) - (double)f);
		double dh = isinf(fpk_bf16_to_f32(hi)) ? INFINITY : fabs((double)fpk_bf16_to_f32(hi) - (double)f);
		uint16_t want = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
		if ((u & 0xffff) == 0)
			want = lo;
		if (isinf(fpk_bf16_to_f32(hi)) && (u & 0xffff) >= 0x8000 && !((u & 0xffff) == 0x8000 && !(lo & 1)))
			want = hi; /* rounds up to infinity */
		if (b != want)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(isnan(fpk_bf16_to_f32(fpk_f32_to_bf16(NAN))));
}

static void crc32_should_give_the_standard_check_value(void)
{
	CHECK_EQ_INT(fpk_crc32(0, "123456789", 9), 0xCBF43926u);
}

static int fail_at_7(void *ctx, size_t i, int tid)
{
	(void)tid;
	int *count = ctx;
	__atomic_fetch_add(count, 1, __ATOMIC_RELAXED);
	if (i == 7)
		return fpk_error_set(FPK_EFORMAT, "item %zu is bad", i);
	return 0;
}

static int square(void *ctx, size_t i, int tid)
{
	(void)tid;
	((uint64_t *)ctx)[i] = (uint64_t)i * i;
	return 0;
}

static void parallel_for_should_run_all_items_and_carry_the_first_error(void)
{
	uint64_t out[1000];
	memset(out, 0, sizeof(out));
	CHECK_OK(fpk_parallel_for(1000, 3, square, out));
	int bad = 0;
	for (int i = 0; i < 1000; i++)
		bad += out[i] != (uint64_t)i * i;
	CHECK_EQ_INT(bad, 0);
	int count = 0;
	fpk_error_clear();
	CHECK_ERR(fpk_parallel_for(100, 2, fail_at_7, &count), FPK_EFORMAT, "item 7 is bad");
}

static void atomic_file_should_appear_only_on_commit(void)
{
	const char *p = fpk_test_tmp("atomic.bin");
	unlink(p);
	fpk_atomic_file f;
	CHECK_OK(fpk_atomic_open(&f, p));
	CHECK_OK(fpk_atomic_write(&f, "abc", 3));
	CHECK(!fpk_path_exists(p));
	fpk_atomic_abort(&f);
	CHECK(!fpk_path_exists(p));
	CHECK_OK(fpk_write_file_atomic(p, "xyz", 3));
	char *buf = NULL;
	size_t n = 0;
	CHECK_OK(fpk_read_file(p, &buf, &n));
	CHECK(n == 3 && buf && !memcmp(buf, "xyz", 3));
	free(buf);
}

static void outdir_should_refuse_existing_without_force(void)
{
	const char *d = fpk_test_tmp("outdir");
	fpk_rmtree(d);
	fpk_outdir o;
	CHECK_OK(fpk_outdir_begin(&o, d, 0));
	CHECK(!fpk_path_exists(d));
	char *f = fpk_path_join(o.tmp_path, "x");
	CHECK_OK(fpk_write_file_atomic(f, "1", 1));
	free(f);
	CHECK_OK(fpk_outdir_commit(&o));
	CHECK(fpk_is_dir(d));
	CHECK_ERR(fpk_outdir_begin(&o, d, 0), FPK_EUSAGE, "already exists");
	CHECK_OK(fpk_outdir_begin(&o, d, 1));
	fpk_outdir_abort(&o);
	CHECK(fpk_is_dir(d)); /* an aborted forced run keeps the old output */
	/* a trailing slash names the same directory; the temporary is built beside it, not inside */
	char slash[1100];
	snprintf(slash, sizeof(slash), "%s/", fpk_test_tmp("outdir2"));
	fpk_rmtree(fpk_test_tmp("outdir2"));
	CHECK_OK(fpk_outdir_begin(&o, slash, 0));
	CHECK(!fpk_path_exists(fpk_test_tmp("outdir2")));
	CHECK_OK(fpk_outdir_commit(&o));
	CHECK(fpk_is_dir(fpk_test_tmp("outdir2")));
	fpk_rmtree(fpk_test_tmp("outdir2"));
	CHECK(fpk_path_is_within(d, fpk_test_tmp("")));
	CHECK(!fpk_path_is_within(fpk_test_tmp(""), d));
	fpk_rmtree(d);
}

int main(void)
{
#ifdef __FLT16_MAX__
	RUN(f16_should_match_the_compiler_for_every_pattern);
#else
	fprintf(stderr, "skip f16_should_match_the_compiler_for_every_pattern: no _Float16 in this compiler\n");
#endif
	RUN(bf16_should_round_to_nearest_even);
	RUN(crc32_should_give_the_standard_check_value);
	RUN(parallel_for_should_run_all_items_and_carry_the_first_error);
	RUN(atomic_file_should_appear_only_on_commit);
	RUN(outdir_should_refuse_existing_without_force);
	TEST_EXIT();
}
