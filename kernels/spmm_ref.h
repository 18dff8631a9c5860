/* spmm_ref.h: scalar C reference of the Tiled-CSL SpMM (kernels/spmm_ref.c), the twin of kernels/spmm.cu.
 * Tested by tests/unit/test_spmm_ref.c against a dense fp64 product of the decoded matrix. */
#ifndef FPK_SPMM_REF_H
#define FPK_SPMM_REF_H

#include "fpk_common.h"
#include "tcsl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y (n x m, row-major, fp32) = x (n x k, row-major, 16-bit patterns of w->dtype) times W^T, reading the
 * Tiled-CSL arrays directly: each tile is scattered into a dense 128x64 tile by un-swizzling loc, then
 * multiplied in fp32. Only the logical k columns of x are read. FPK_EFORMAT when an offset or loc is out of
 * range (the arrays are not trusted). nthreads workers over row tiles (<= 0: one). */
int fpk_spmm_ref(const fpk_tcsl *w, const uint16_t *x, int64_t n, float *y, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
