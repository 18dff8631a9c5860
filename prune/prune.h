/* prune.h: exact, deterministic, streaming magnitude pruning of safetensors checkpoints (tensor, row or global
 * scope, or an N:M pattern). Semantics: docs/prune.md. Tested by tests/unit/test_prune.c and tests/cli/prune_*.sh. */
#ifndef FPK_PRUNE_H
#define FPK_PRUNE_H

#include "fpk_common.h"
#include "safetensors.h"
#include "select.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fpk_prune_scope { FPK_SCOPE_TENSOR, FPK_SCOPE_ROW, FPK_SCOPE_GLOBAL } fpk_prune_scope;
extern const char *const fpk_prune_scope_names[3]; /* "tensor", "row", "global" */

typedef struct fpk_prune_rule {
	const char *glob; /* tensor-name glob; the last matching rule wins */
	double sparsity;
} fpk_prune_rule;

typedef struct fpk_prune_opts {
	const char *in;           /* .safetensors file or model directory */
	const char *out;          /* output directory (ignored by dry runs) */
	double sparsity;          /* [0, 1); ignored with a pattern */
	fpk_prune_scope scope;
	int pattern_n, pattern_m; /* N:M (keep N of every M along the last dim); 0:0 for unstructured */
	fpk_select select;        /* include/exclude globs; the default rule when no include is given */
	const fpk_prune_rule *rules; /* --sparsity-for; each must match at least one targeted tensor */
	size_t n_rules;
	int dry_run, force, allow_nonfinite;
	int threads;              /* 0: all cores */
	const char *command_line; /* recorded in prune_report.json (may be NULL) */
	fpk_progress_fn progress;
	void *progress_ud;
} fpk_prune_opts;

typedef struct fpk_prune_tensor {
	const char *name;   /* points into the report's model (valid until fpk_prune_report_release) */
	const fpk_st_tensor *t;
	int targeted;
	const char *tied_to; /* name of the tensor this one is an exact tied copy of (pruned once), or NULL */
	double target;      /* requested sparsity (pattern: (M-N)/M) */
	uint64_t elements, zeros_before, zeros_after;
	int has_threshold;  /* 0 when nothing was selected (k = 0) or for N:M */
	double threshold;   /* largest pruned magnitude (row scope: the largest over rows) */
} fpk_prune_tensor;

typedef struct fpk_prune_report {
	fpk_st_model *model;      /* the opened input (owned) */
	size_t n;
	fpk_prune_tensor *tensors; /* model order */
	uint64_t elements, targeted_elements, zeros_before, zeros_after; /* totals; zeros over targeted tensors */
	size_t n_targeted;
	int has_threshold;
	double global_threshold;   /* global scope */
	uint64_t bytes_in, bytes_out;
	double seconds;
	long peak_rss_kb;
} fpk_prune_report;

/* Prune opts->in into opts->out (a new directory, built under a temporary name and renamed when complete).
 * Fills rep (caller releases with fpk_prune_report_release, also after a failure). Returns 0 or an fpk status:
 * FPK_EUSAGE (options), FPK_EFORMAT (input data), FPK_EIO (files). */
int fpk_prune_run(const fpk_prune_opts *opts, fpk_prune_report *rep);
void fpk_prune_report_release(fpk_prune_report *rep);
/* the report as JSON (prune_report.json and --json); caller frees with cJSON_Delete */
cJSON *fpk_prune_report_json(const fpk_prune_opts *opts, const fpk_prune_report *rep);

#ifdef __cplusplus
}
#endif
#endif
