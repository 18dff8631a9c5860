/* inspect.h: per-tensor statistics of a checkpoint (dtype, shape, bytes, exact zeros), computed in parallel.
 * Used by `flashllm-pack inspect`. Tested by tests/cli/inspect.sh. */
#ifndef FPK_INSPECT_H
#define FPK_INSPECT_H

#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* number of elements equal to zero (+0 and -0 for floats; F8 kinds by bit pattern) */
uint64_t fpk_count_zeros(const void *data, fpk_dtype dt, uint64_t n);

typedef struct fpk_inspect_row {
	const fpk_st_tensor *t;
	uint64_t zeros;
} fpk_inspect_row;

/* rows: n_tensors entries in model order; caller frees */
int fpk_inspect_model(const fpk_st_model *m, int threads, fpk_inspect_row **rows, fpk_progress_fn progress, void *ud);

#ifdef __cplusplus
}
#endif
#endif
