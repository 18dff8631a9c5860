/* select.h: which tensors a stage targets: the default rule (2-D linear weights of transformer blocks) and
 * --include/--exclude globs. Shared by prune and encode. Tested by tests/unit/test_select.c. */
#ifndef FPK_SELECT_H
#define FPK_SELECT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fpk_select {
	const char *const *include; /* globs (fnmatch); when any are given they replace the default rule */
	size_t n_include;
	const char *const *exclude; /* globs removed after inclusion */
	size_t n_exclude;
} fpk_select;

/* 1 when name/ndim is a linear layer weight of a transformer block (q/k/v/o, gate/up/down, fc1/fc2, fused qkv
 * and the like); never embeddings, lm_head, norms, biases or tensors that are not 2-D. */
int fpk_select_default(const char *name, int ndim);
/* the stage's rule: include globs (or the default) minus exclude globs */
int fpk_select_match(const fpk_select *s, const char *name, int ndim);
/* 1 when glob matches name */
int fpk_glob_match(const char *glob, const char *name);

#ifdef __cplusplus
}
#endif
#endif
