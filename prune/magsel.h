/* magsel.h: internal selection primitives of the prune stage (magnitude keys, histogram passes, radix select,
 * apply). Keys are monotone in |x|; Inf and NaN sort above every finite value. Tested by tests/unit/test_prune.c. */
#ifndef FPK_MAGSEL_H
#define FPK_MAGSEL_H

#include "fpk_common.h"

#include <pthread.h>

#define FPK_PRUNE_MAX_M 64

/* key kinds: 15-bit keys of 16-bit floats, 31-bit keys of F32; *G: the f32 bit pattern of the magnitude of a
 * 16-bit float, so tensors of different dtypes share one key space (global scope) */
enum { KEY_F16, KEY_BF16, KEY_F32, KEY_F16G, KEY_BF16G };

/* one level of a radix select: keys with (key >> pshift) == pval are counted in bin (key >> shift) & mask */
typedef struct fpk_magsel_level {
	unsigned pshift;
	uint32_t pval;
	unsigned shift;
	uint32_t mask;
} fpk_magsel_level;

typedef struct fpk_magsel_result {
	uint32_t key;      /* threshold key T (valid when k > 0) */
	uint64_t n_less;   /* elements with key < T */
	uint64_t n_eq;     /* elements with key == T */
	uint64_t n_eq_sel; /* of those, selected (the lowest indices) */
} fpk_magsel_result;

void fpk_magsel_init(void);
int fpk_magsel_kind(fpk_dtype dt, int global, int *kind); /* -1 for dtypes that cannot be pruned */
uint32_t fpk_magsel_key(const void *data, int kind, uint64_t i);
int fpk_magsel_bits(int kind);
uint32_t fpk_magsel_nonfinite(int kind); /* keys >= this are Inf or NaN */
unsigned fpk_magsel_esize(int kind);
double fpk_magsel_value(uint32_t key, int kind); /* the magnitude a key stands for */
int fpk_magsel_threads(int threads);
int fpk_magsel_levels(int kind, fpk_magsel_level lv[2]);
uint32_t fpk_magsel_find(const uint64_t *hist, size_t bins, uint64_t k, uint64_t *below);

void fpk_magsel_hist(const void *data, int kind, uint64_t lo, uint64_t hi, const fpk_magsel_level *lv,
		     uint32_t *hist, uint64_t *zeros, uint64_t *first_bad);
uint64_t fpk_magsel_count_eq(const void *data, int kind, uint64_t lo, uint64_t hi, uint32_t T);
/* copy [lo, hi) to out (when not NULL) with key < T, and the first *eq_budget keys == T, pruned (when any);
 * returns the zeros of the result over the range; *eq_budget is decremented by the ties pruned */
uint64_t fpk_magsel_apply(const void *data, int kind, uint64_t lo, uint64_t hi, int any, uint32_t T,
			  uint64_t *eq_budget, void *out);

/* whole-tensor passes (parallel over chunks; results independent of the thread count) */
int fpk_magsel_tensor_hist(const void *data, int kind, uint64_t n, const fpk_magsel_level *lv, int threads,
			   uint64_t *acc, size_t bins, uint64_t *zeros, uint64_t *first_bad);
/* eq_budget: ties to prune in index order (UINT64_MAX: all); left with the budget not used */
int fpk_magsel_tensor_apply(const void *data, int kind, uint64_t n, int any, uint32_t T, uint64_t *eq_budget,
			    int threads, void *out, uint64_t *zeros_after);
/* the k smallest by (key, index); zeros and the first non-finite index (UINT64_MAX: none) come from pass 1 */
int fpk_magsel_select(const void *data, int kind, uint64_t n, uint64_t k, int threads, fpk_magsel_result *res,
		      uint64_t *zeros, uint64_t *first_bad);
/* rows of cols elements: k smallest per row, or N:M groups when nm_m > 0 (then k is ignored) */
int fpk_magsel_rows(const void *data, int kind, uint64_t rows, uint64_t cols, uint64_t k, int nm_n, int nm_m,
		    int threads, void *out, uint32_t *thr_max, uint64_t *zeros_before, uint64_t *zeros_after);

#endif
