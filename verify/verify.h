/* verify.h: `flashllm-pack verify` as a library: prove a pack right by running it (structure rules R1-R15,
 * decode == --against bit for bit, numerics of our SpMM vs a dense reference per tensor and batch, speed).
 * CLI: cli/cmd_verify.c. Tests: tests/cli/verify_*.sh (CPU), tests/gpu/verify_stories.sh (GPU). */
#ifndef FPK_VERIFY_H
#define FPK_VERIFY_H

#include "fpk_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FPK_VERIFY_MAX_BATCH 16

typedef enum fpk_verify_device { FPK_VERIFY_AUTO = 0, FPK_VERIFY_GPU, FPK_VERIFY_CPU } fpk_verify_device;

typedef struct fpk_verify_opts {
	const char *pack;       /* packed-model directory or file */
	const char *against;    /* pruned dense checkpoint to compare decode with, or NULL */
	fpk_verify_device device;
	int require_gpu;        /* with AUTO: no GPU is an error (FPK_EGPU) instead of the CPU path */
	int batches[FPK_VERIFY_MAX_BATCH]; /* token counts N; n_batches 0 means {1, 8, 16, 32} */
	int n_batches;
	double rtol;            /* max error relative to the output scale; <= 0: 2e-3 for F16, 1e-2 for BF16 */
	int bench;              /* time our kernel vs cuBLAS per tensor (GPU only) */
	uint64_t seed;          /* X = seeded random normal values */
	int threads;            /* CPU workers (<= 0: all cores) */
	fpk_progress_fn progress;
	void *progress_ud;
} fpk_verify_opts;

typedef struct fpk_verify_batch {
	int n;
	double max_abs;   /* max |ours - dense| over the output */
	double scale;     /* max |dense| */
	double max_rel;   /* max_abs / scale (max_abs when scale is 0) */
	int pass;         /* max_rel <= tol and no NaN/Inf */
	double us_ours, us_dense; /* --bench medians (GPU), else 0 */
} fpk_verify_batch;

typedef struct fpk_verify_tensor {
	char *name;
	int64_t m, k;
	fpk_dtype dtype;
	uint64_t nnz;
	double tol;
	int against;      /* -1 not compared, 1 decode == --against, 0 differs (see mismatch) */
	char *mismatch;   /* what differs, or NULL */
	int n_batches;
	fpk_verify_batch b[FPK_VERIFY_MAX_BATCH];
	int pass;
} fpk_verify_tensor;

typedef struct fpk_verify_report {
	int gpu;              /* 1: numerics ran on the GPU (our kernel vs cuBLAS), 0: CPU (spmm_ref vs fp64 dense) */
	char device_name[128];
	char *note;           /* e.g. "no GPU found: using the CPU path", or NULL */
	int structure_ok;     /* rules R1-R15 passed (always 1 in a returned report: a malformed pack is FPK_EFORMAT) */
	size_t n_tensors;
	fpk_verify_tensor *t;
	size_t n_failed;
	int pass;             /* every tensor and the --against comparison passed */
} fpk_verify_report;

/* Run verify. Returns 0 with *out set (check (*out)->pass), FPK_EFORMAT for a malformed pack (message names the
 * rule), FPK_EIO, FPK_EGPU (GPU error, or no GPU with --device gpu / --require-gpu), FPK_EUSAGE.
 * Caller frees *out with fpk_verify_report_free. */
int fpk_verify_run(const fpk_verify_opts *o, fpk_verify_report **out);
void fpk_verify_report_free(fpk_verify_report *r);
/* the report as JSON text (caller frees) */
char *fpk_verify_report_json(const fpk_verify_report *r, const fpk_verify_opts *o);

#ifdef __cplusplus
}
#endif
#endif
