/* calibrate.h: Double Sparsity offline channel calibration (docs/calibrate.md, ../shared/specs/double-sparsity.md):
 * per layer/head/channel mean |q|, |k| (pre-RoPE) and |q*k| (post-RoPE, GQA-expanded) over all tokens of all blocks.
 * Tested by tests/unit/test_calibrate.c, tests/cli/calibrate_*.sh, tests/gpu/test_model_gpu.c. */
#ifndef FPK_CALIBRATE_H
#define FPK_CALIBRATE_H

#include "channels.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FPK_CAL_SHORT_BLOCKS 1  /* fewer whole blocks than asked for: all of them were used */
#define FPK_CAL_PARTIAL_BLOCK 2 /* not one whole block: the tokens there are ran as one shorter block */

typedef struct fpk_calibrate_opts {
	const int *tokens;     /* the token stream (BOS as the tokenizer put it; no BOS is inserted per block) */
	size_t n_tokens;
	int modes;             /* bit set of 1 << FPK_CH_Q / FPK_CH_K / FPK_CH_QK (0 = all three) */
	int blocks;            /* blocks wanted (default 256) */
	int block_len;         /* tokens per block (default 512) */
	int use_gpu;           /* layer-streamed GPU path (model_gpu.h) */
	fpk_progress_fn progress;
	void *progress_ud;
	int mixed;             /* GPU path only: fp16 weights and linear inputs (fp32 accumulation) and the fused
	                        * fp16 tensor-core attention (kernels/attn_prefill.h); 0: fp32 throughout */
} fpk_calibrate_opts;

typedef struct fpk_calibration {
	int n_layers, n_heads, n_kv_heads, head_dim, modes;
	int blocks, block_len;  /* what was used */
	size_t tokens_used;     /* blocks * block_len */
	int flags;              /* FPK_CAL_SHORT_BLOCKS | FPK_CAL_PARTIAL_BLOCK: the caller warns */
	double *stat[FPK_CH_MODES]; /* mode m: (n_layers, heads(m), head_dim) means; NULL when not computed */
	fpk_channels order;     /* the permutations (descending statistic, ties: lower index first) */
	double seconds;
} fpk_calibration;

/* Blocks: non-overlapping runs of block_len tokens from the start of the stream, each run at positions
 * 0..block_len-1 with a fresh cache. Fails (FPK_EUSAGE) when there is no token. Caller releases with
 * fpk_calibration_release. */
int fpk_calibrate_channels(const fpk_model *m, const fpk_calibrate_opts *o, fpk_calibration *out);
void fpk_calibration_release(fpk_calibration *c);

/* Sort channel indices by descending stat, ties by lower index (a full permutation of 0..d-1). */
void fpk_channel_order(const double *stat, int d, int *order);

/* Share of the row's total statistic captured by its top r channels (r clamped to 1..d). */
double fpk_channel_share(const double *stat, const int *order, int d, int r);

/* Accumulator used by both paths: sums per layer/head/channel; exposed for tests. */
typedef struct fpk_qk_sums {
	const fpk_model *m;
	int modes;
	double *sum[FPK_CH_MODES];
	size_t tokens;
} fpk_qk_sums;
int fpk_qk_sums_hook(void *ud, int layer, int n, int pos0, const float *q_pre, const float *k_pre, const float *q_post,
	const float *k_post);

#ifdef __cplusplus
}
#endif
#endif
