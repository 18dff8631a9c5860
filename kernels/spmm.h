/* spmm.h: Y = W X on the GPU with W in Tiled-CSL (kernels/spmm.cu), its workspace and device upload, and the
 * dense cuBLAS helper used as the reference/baseline. Tests: tests/gpu/test_spmm.c; bench: bench/bench_spmm.cu. */
#ifndef FPK_SPMM_H
#define FPK_SPMM_H

#include "fpk_common.h"
#include "tcsl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* W in Tiled-CSL on the device (arrays as in tcsl.h). */
typedef struct fpk_spmm_weights {
	const uint32_t *values;  /* device, (4 * n_vectors) entries: bits | loc << 16 */
	const int32_t *offsets;  /* device, (T + 3) tile starts in 16-byte vectors (one spare int past the spec's T+2) */
	int64_t m, k;            /* logical shape of W ([out, in]) */
	int64_t tiles_m, tiles_k;/* 128-row and 64-column tiles; T = tiles_m * tiles_k */
	uint64_t n_vectors;      /* offsets[T]: the kernel clamps every offset to this */
	fpk_dtype dtype;         /* FPK_F16 or FPK_BF16 */
	int owned;               /* 1: values/offsets were allocated by fpk_spmm_upload */
} fpk_spmm_weights;

/* One multiplication Y (n x m, row-major: [tokens, out]) = X (n x k, row-major: [tokens, in]) times W^T,
 * i.e. Y[t][o] = sum_i W[o][i] * X[t][i], fp32 accumulation, Y in W's dtype. */
typedef struct fpk_spmm_params {
	const fpk_spmm_weights *w; /* the matrix (device) */
	const void *x;             /* device, n x k, dtype of w; only the logical k columns are read */
	void *y;                   /* device, n x m, dtype of w; every element is written */
	int64_t n;                 /* tokens, >= 1 */
	void *workspace;           /* device, fpk_spmm_workspace_size bytes, zero before the first call (use
				    * fpk_spmm_workspace_alloc); every call leaves it zero again */
	size_t workspace_size;
	int blocks;                /* 0: automatic split (stream-K over SMs x occupancy); > 0 forces blocks per
				    * 64-token chunk (tests use it to exercise the split-K reduction) */
	void *stream;              /* cudaStream_t, NULL for the default stream */
} fpk_spmm_params;

/* bytes of workspace for an m x k matrix and n tokens (fp32 partial sums + per-row-tile counters) */
size_t fpk_spmm_workspace_size(int64_t m, int64_t n);
/* cudaMalloc + zero a workspace of size bytes; free with cudaFree (fpk_spmm_workspace_free) */
int fpk_spmm_workspace_alloc(void **ws, size_t size);
void fpk_spmm_workspace_free(void *ws);

/* Copy t to the device (values, offsets + one spare int). Caller releases with fpk_spmm_weights_free. */
int fpk_spmm_upload(fpk_spmm_weights *d, const fpk_tcsl *t);
void fpk_spmm_weights_free(fpk_spmm_weights *d);

/* Launch (asynchronous on p->stream); FPK_EUSAGE for bad parameters, FPK_EGPU for a CUDA error.
 * On sm_90 the launch uses programmatic dependent launch (kernels/fpk_pdl.cuh; FPK_PDL=0 turns it off): the
 * kernel reads the matrix (values, offsets) while the previous kernel of the stream may still run, and X, Y and
 * the workspace only after it has finished. So the matrix must not be written by a kernel that is still running
 * on the stream when this is launched (fpk_spmm_upload's copies have completed when it returns). */
int fpk_spmm_run(const fpk_spmm_params *p);

/* Dense reference through cuBLAS (cublasGemmEx, fp32 compute): Y (n x m) = X (n x k) W^T with W dense row-major
 * m x k on the device, W and X of dtype in (F16/BF16), Y of dtype out (F16, BF16 or F32). handle: a
 * cublasHandle_t made by fpk_dense_handle (freed by fpk_dense_handle_free). */
int fpk_dense_handle(void **handle);
void fpk_dense_handle_free(void *handle);
int fpk_dense_gemm(void *handle, fpk_dtype in, fpk_dtype out, const void *w, const void *x, void *y, int64_t m,
		   int64_t k, int64_t n, void *stream);

#ifdef __cplusplus
}
#endif
#endif
