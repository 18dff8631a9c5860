/* ds_eval.h: Double Sparsity quality on the CPU reference path, for `verify --channels`: attention-mass recall of
 * the selected tokens and the relative error of the attention output vs dense. Tested by tests/unit/test_ds_eval.c. */
#ifndef FPK_DS_EVAL_H
#define FPK_DS_EVAL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* one layer's Double Sparsity settings (the same rules as kernels/ds_attention.h) */
typedef struct fpk_ds_eval_cfg {
	int heads, kv_heads, head_dim;
	int r;               /* heavy channels, 1..head_dim */
	int label_bits;      /* 16 (fp16 labels, as a GPU fp16 cache holds them), 8 or 4 (per-token scale) */
	int topk;            /* > 0: fixed budget; else ceil(len / topk_div) */
	int topk_div;
	int dense_below;     /* positions with len < dense_below (or k >= len) stay dense and are not counted */
	int sel_per_head;    /* 0: one top-k per kv group (group-summed query); 1: per query head */
	int per_head_labels; /* 1: ch has one row per query head (needs sel_per_head) */
	const int32_t *ch;   /* (Hkv or H, r) heavy channels of this layer */
} fpk_ds_eval_cfg;

typedef struct fpk_ds_eval_stats {
	uint64_t count;     /* (position, query head) pairs evaluated */
	double recall_sum;  /* sum of the exact softmax mass on the selected tokens */
	double recall_min;
	double err_sum;     /* sum of ||out_ds - out_dense|| / ||out_dense|| */
	double err_max;
} fpk_ds_eval_stats;

void fpk_ds_eval_stats_init(fpk_ds_eval_stats *s);
/* merge b into a */
void fpk_ds_eval_stats_add(fpk_ds_eval_stats *a, const fpk_ds_eval_stats *b);

/* Evaluate one layer for n query positions pos0..pos0+n-1, in the layout of the engine's attention hook
 * (model/model.h): q (n, H*d) post-RoPE, k and v (kv_len, Hkv*d) the layer's cache, query t sees keys
 * 0..pos0+t. Accumulates into st; out (n, H*d), if not NULL, receives the Double Sparsity attention output
 * (dense where the position stays dense), so a hook can return it to measure perplexity.
 * Returns 0, FPK_EUSAGE (bad cfg) or FPK_EIO (no memory). */
int fpk_ds_eval_attend(const fpk_ds_eval_cfg *c, int n, int pos0, const float *q, const float *k, const float *v,
		       int kv_len, float *out, fpk_ds_eval_stats *st);

#ifdef __cplusplus
}
#endif
#endif
