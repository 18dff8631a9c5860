/* ds_eval_gpu.h: Double Sparsity attention on the GPU inside the engine's perplexity path, for `verify --channels
 * --device gpu`: at every position of every window it runs our decode kernels (kernels/ds_attention.h: label cache,
 * approximate scores, exact top-k, sparse attention) and measures recall and output error against the dense
 * attention, with the rules of the CPU reference (verify/ds_eval.h). Without CUDA every call fails with FPK_EGPU
 * (ds_eval_gpu_stub.c). Tested by tests/gpu/verify_channels_gpu.sh (label gpu). */
#ifndef FPK_DS_EVAL_GPU_H
#define FPK_DS_EVAL_GPU_H

#include "ds_eval.h"
#include "fpk_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fpk_ds_gpu fpk_ds_gpu;

/* c: the settings of fpk_ds_eval_cfg, with c->ch the host table of every layer (n_layers, LH, r), LH = heads with
 * per_head_labels, else kv_heads. kv_dtype: FPK_F16 or FPK_BF16, the precision of the KV and label caches the
 * kernels read (the engine's fp32 keys and values are rounded to it). FPK_EUSAGE when the kernels do not take the
 * shape (head_dim a multiple of 8 in 8..256). */
int fpk_ds_gpu_new(const fpk_ds_eval_cfg *c, int n_layers, int kv_dtype, fpk_ds_gpu **out);
/* The fpk_gpu_attend_hook callback (model/model_gpu.h), ud = the fpk_ds_gpu: replaces att at every position that
 * takes Double Sparsity (len >= dense_below and k < len) and accumulates the statistics. */
int fpk_ds_gpu_attend(void *ud, int layer, int nb, int Tq, int max_nb, int max_T, const float *q, const float *kc,
	const float *vc, float *att);
/* the most windows per hook call (fpk_gpu_attend_hook.max_windows): the kernels' grids hold windows x heads
 * units in one dimension (<= 65535) and the workspace grows with it, so at most 4096 / heads windows (>= 1) */
int fpk_ds_gpu_max_windows(const fpk_ds_gpu *g);
/* statistics so far (merged into st) */
int fpk_ds_gpu_stats(fpk_ds_gpu *g, fpk_ds_eval_stats *st);
/* GPU seconds of the Double Sparsity work in fpk_ds_gpu_attend (CUDA events on the engine's stream: K/V conversion,
 * labels, decode steps, statistics) and decode steps run (fpk_ds_decode calls) */
void fpk_ds_gpu_timing(const fpk_ds_gpu *g, double *seconds, uint64_t *steps);
void fpk_ds_gpu_free(fpk_ds_gpu *g);

#ifdef __cplusplus
}
#endif
#endif
