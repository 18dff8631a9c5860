/* eval.h: `verify --eval`: perplexity of a packed model on real text, against the dense checkpoints it came from
 * (pruned and original), computed by the same engine (model/): on the GPU (the pack's encoded weights through our
 * Tiled-CSL SpMM kernel) or the CPU reference. Tested by tests/cli/verify_eval.sh, tests/gpu/verify_eval_gpu.sh. */
#ifndef FPK_EVAL_H
#define FPK_EVAL_H

#include "fpk_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FPK_EVAL_MAX_AGAINST 8
#define FPK_EVAL_DOC_SEP "<|endoftext|>"

typedef struct fpk_eval_opts {
	const char *pack;        /* packed-model directory (or any model directory) */
	const char *against[FPK_EVAL_MAX_AGAINST]; /* dense checkpoints; against[0] is the pruned one the pack must match */
	int n_against;
	const char *text_path;   /* UTF-8 text, tokenized with the pack's tokenizer.json; documents separated by
	                          * FPK_EVAL_DOC_SEP each start with BOS */
	const char *tokens_path; /* or pre-tokenized ids (formats/tokenizer.h fpk_tokens_read) */
	int context;             /* window length (default 512, at most the model's max_position_embeddings) */
	size_t max_tokens;       /* 0: all */
	int threads;
	int use_gpu;             /* 1: GPU engine (model_gpu.h fpk_model_gpu_nll); 0: CPU reference engine */
	double max_rel_ppl_diff; /* pass bound for |ppl(pack) - ppl(against[0])| / ppl(against[0]); default 0.005 */
	fpk_progress_fn progress;
	void *ud;
} fpk_eval_opts;

typedef struct fpk_eval_result {
	char path[1024];
	double mean_nll; /* natural log */
	double ppl;
	size_t predictions;
	int spmm_matrices;  /* GPU: layer matrices run through the Tiled-CSL SpMM kernel */
	int dense_matrices; /* GPU: layer matrices run through cuBLAS */
	double seconds;     /* load + perplexity (+ first-window logits on the CPU) */
	double engine_seconds; /* perplexity (+ logits) alone: GPU, fpk_model_gpu_nll's wall time (uploads included) */
	double upload_wait_s;  /* GPU: seconds the layer loop waited for weights */
} fpk_eval_result;

typedef struct fpk_eval_report {
	size_t tokens, documents;
	int context;
	fpk_eval_result pack;
	fpk_eval_result against[FPK_EVAL_MAX_AGAINST];
	int n_against;
	double rel_ppl_diff;   /* vs against[0] (0 when none) */
	double max_logit_diff; /* max |logit(pack) - logit(against[0])| over the first window */
	int logit_tokens;      /* tokens in that window */
	int pass;              /* 1 when rel_ppl_diff <= bound (always 1 without --against) */
	int gpu;               /* the engine that ran: 1 GPU, 0 CPU reference */
	char device[128];      /* GPU name, or "cpu" */
	fpk_dtype precision;   /* GPU: dtype of every linear product (the pack's weight dtype); CPU: FPK_F32 */
	int passes;            /* GPU: times the layers were streamed per model */
} fpk_eval_report;

int fpk_eval_run(const fpk_eval_opts *o, fpk_eval_report *r);
/* Tokenize a text file with model_dir's tokenizer.json: documents split at FPK_EVAL_DOC_SEP, each starting with
 * BOS. *ids allocated (caller frees); *docs receives the document count. */
int fpk_eval_tokenize(const char *model_dir, const char *path, int **ids, size_t *n, size_t *docs);

#ifdef __cplusplus
}
#endif
#endif
