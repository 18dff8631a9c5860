/* channels_eval.h: `verify --channels`: validate a Double Sparsity channel config against its model, then run the
 * model over real text with Double Sparsity attention in place of dense attention (on the GPU: our kernels in the
 * engine's GPU path, verify/ds_eval_gpu.h; on the CPU: their reference, verify/ds_eval.h): recall, output error and perplexity per (r, k), against random and first-r channels.
 * Tested by tests/cli/verify_channels.sh. */
#ifndef FPK_CHANNELS_EVAL_H
#define FPK_CHANNELS_EVAL_H

#include "fpk_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FPK_CHEVAL_MAX 8

typedef enum fpk_ch_source { FPK_SRC_CALIBRATED, FPK_SRC_RANDOM, FPK_SRC_FIRST, FPK_SRC_COUNT } fpk_ch_source;
extern const char *const fpk_ch_source_names[FPK_SRC_COUNT];

typedef struct fpk_cheval_opts {
	const char *channels;    /* channel-config JSON */
	const char *model;       /* model directory */
	const char *text_path;   /* or tokens_path */
	const char *tokens_path;
	const char *mode;        /* which rows drive selection: "qk" (default), "q" (per query head) or "k" (per kv group) */
	int r[FPK_CHEVAL_MAX];   /* heavy channels; <= 0 entries are not allowed */
	int n_r;
	int k_fixed[FPK_CHEVAL_MAX]; /* heavy tokens: k_fixed > 0 a budget, else 1/k_div of the length */
	int k_div[FPK_CHEVAL_MAX];
	int n_k;
	int label_bits;          /* 16, 8 or 4 */
	int context;             /* window (default: min(512, max_position_embeddings)) */
	int dense_below;         /* positions with fewer keys stay dense (default 64) */
	size_t max_tokens;
	int threads;
	double max_ppl_increase; /* pass bound on (ppl_ds - ppl_dense) / ppl_dense of the first setting (default 0.05) */
	uint64_t seed;           /* random channel baseline */
	int use_gpu;             /* 1: the model and our Double Sparsity kernels on the GPU (ds_eval_gpu.h); 0: CPU */
	fpk_progress_fn progress;
	void *ud;
} fpk_cheval_opts;

typedef struct fpk_cheval_row {
	int r, k_fixed, k_div;
	fpk_ch_source source;
	double ppl, rel_ppl_increase;
	double recall_mean, recall_min, err_mean, err_max;
	uint64_t evaluated; /* (position, head) pairs past the dense threshold */
} fpk_cheval_row;

typedef struct fpk_cheval_report {
	int n_layers, n_heads, n_kv_heads, head_dim, label_bits, context, dense_below;
	char mode[8];
	size_t tokens, documents;
	double ppl_dense;
	int n_rows;
	fpk_cheval_row rows[FPK_CHEVAL_MAX * FPK_CHEVAL_MAX * FPK_SRC_COUNT];
	int pass; /* the calibrated row of the first (r, k) evaluated positions and meets max_ppl_increase */
	int gpu;            /* ran on the GPU */
	char device[128];   /* the GPU's name, or "cpu" */
	fpk_dtype precision;/* GPU: precision of the linear products (the model's weight dtype); CPU: F32 */
	double ds_seconds;  /* GPU: time in the Double Sparsity hook over all rows (KV rounding, labels, decode steps,
	                       statistics) */
	uint64_t ds_steps;  /* GPU: decode steps run (one per layer, window group and position) */
	double seconds;     /* wall time */
} fpk_cheval_report;

/* FPK_EFORMAT for a bad or mismatched channel config (the reader's rule named), FPK_EUSAGE for bad settings. */
int fpk_cheval_run(const fpk_cheval_opts *o, fpk_cheval_report *r);

#ifdef __cplusplus
}
#endif
#endif
