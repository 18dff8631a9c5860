/* fpk_test.h: the tiny test harness every tests/unit program uses: CHECK macros, a runner, test data paths.
 * A test program exits 0 when every check passed; each failure prints file, line and the expression. */
#ifndef FPK_TEST_H
#define FPK_TEST_H

#include "fpk_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fpk_test_failures;

#define CHECK(cond)                                                                                          \
	do {                                                                                                     \
		if (!(cond)) {                                                                                       \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                       \
			fpk_test_failures++;                                                                             \
		}                                                                                                    \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                                   \
	do {                                                                                                     \
		long long va_ = (long long)(a), vb_ = (long long)(b);                                              \
		if (va_ != vb_) {                                                                                    \
			fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, va_, \
				vb_);                                                                                        \
			fpk_test_failures++;                                                                             \
		}                                                                                                    \
	} while (0)

/* expect status rc and a message containing needle */
#define CHECK_ERR(expr, code, needle)                                                                        \
	do {                                                                                                     \
		int rc_ = (expr);                                                                                    \
		if (rc_ != (code) || !strstr(fpk_error_msg(), (needle))) {                                           \
			fprintf(stderr, "%s:%d: expected %d with '%s' from %s, got %d: %s\n", __FILE__, __LINE__, (int)(code), \
				(needle), #expr, rc_, fpk_error_msg());                                                    \
			fpk_test_failures++;                                                                             \
		}                                                                                                    \
	} while (0)

#define CHECK_OK(expr)                                                                                       \
	do {                                                                                                     \
		int rc_ = (expr);                                                                                    \
		if (rc_) {                                                                                           \
			fprintf(stderr, "%s:%d: %s failed (%d): %s\n", __FILE__, __LINE__, #expr, rc_, fpk_error_msg());   \
			fpk_test_failures++;                                                                             \
		}                                                                                                    \
	} while (0)

#define RUN(test)                                                                                            \
	do {                                                                                                     \
		int before_ = fpk_test_failures;                                                                     \
		test();                                                                                              \
		fprintf(stderr, "%s %s\n", fpk_test_failures == before_ ? "ok  " : "FAIL", #test);                  \
	} while (0)

#define TEST_EXIT() return fpk_test_failures ? 1 : 0

/* ../shared/testdata path of a file, from FPK_SHARED or the default beside the checkout */
static inline const char *fpk_test_shared(const char *rel)
{
	static char buf[8][1024];
	static int k;
	const char *root = getenv("FPK_SHARED");
	char *b = buf[k++ % 8];
	snprintf(b, sizeof(buf[0]), "%s/%s", root ? root : "../shared", rel);
	return b;
}

/* a fresh scratch path under FPK_TMP (or /tmp) */
static inline const char *fpk_test_tmp(const char *name)
{
	static char buf[8][1024];
	static int k;
	const char *root = getenv("FPK_TMP");
	char *b = buf[k++ % 8];
	snprintf(b, sizeof(buf[0]), "%s/%s", root ? root : "/tmp", name);
	return b;
}

/* deterministic xorshift random numbers for tests */
static inline uint64_t fpk_test_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline float fpk_test_randn(uint64_t *s)
{
	/* sum of uniforms: close enough to normal for test data, deterministic across platforms */
	float acc = 0;
	for (int i = 0; i < 4; i++)
		acc += (float)(fpk_test_rand(s) >> 40) / (float)(1 << 24);
	return (acc - 2.0f) * 1.7320508f;
}

#endif
