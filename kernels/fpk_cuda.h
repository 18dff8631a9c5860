/* fpk_cuda.h: the one CUDA error-checking macro of the project (records statement, file and line, returns
 * FPK_EGPU). Include from .cu files and from C files built only with CUDA (tests/gpu, bench). */
#ifndef FPK_CUDA_H
#define FPK_CUDA_H

#include "fpk_common.h"
#include <cuda_runtime_api.h>

/* run stmt (a cudaError_t expression); on failure record "cuda error '...' in 'stmt' at file:line" and
 * return FPK_EGPU from the calling function */
#define FPK_CUDA_TRY(stmt)                                                                                   \
	do {                                                                                                     \
		cudaError_t e_ = (stmt);                                                                             \
		if (e_ != cudaSuccess)                                                                               \
			return fpk_error_set(FPK_EGPU, "cuda error '%s' in '%s' at %s:%d", cudaGetErrorString(e_), #stmt, \
					     __FILE__, __LINE__);                                                        \
	} while (0)

/* same, but jump to label done with rc set (for functions that own resources) */
#define FPK_CUDA_GOTO(stmt, rc, label)                                                                       \
	do {                                                                                                     \
		cudaError_t e_ = (stmt);                                                                             \
		if (e_ != cudaSuccess) {                                                                             \
			(rc) = fpk_error_set(FPK_EGPU, "cuda error '%s' in '%s' at %s:%d", cudaGetErrorString(e_), #stmt, \
					     __FILE__, __LINE__);                                                        \
			goto label;                                                                                      \
		}                                                                                                    \
	} while (0)

#endif
