/* model_gpu.h: the GPU path of the engine (model_gpu.cu: cuBLAS matrix products, small kernels for norms, RoPE,
 * causal attention, activations; layer-streamed: one decoder layer's weights resident at a time). Without CUDA the
 * functions fail with FPK_EGPU (model_gpu_stub.c). Tested by tests/gpu/test_model_gpu.c (label gpu). */
#ifndef FPK_MODEL_GPU_H
#define FPK_MODEL_GPU_H

#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build has CUDA and a device is visible */
int fpk_gpu_available(void);
/* "cpu" -> 0; "gpu" -> 1 or FPK_EGPU when there is none; "auto" -> 1 when available; else FPK_EUSAGE */
int fpk_device_pick(const char *device, int *use_gpu);

/* Greedy decoding on the GPU, same contract as fpk_model_generate_greedy. */
int fpk_model_gpu_generate_greedy(const fpk_model *m, const int *prompt, int n_prompt, int steps, int *out, int *n_out);

/* Layer-streamed calibration sums: nb blocks of len tokens (tokens: nb*len ids, block b at positions 0..len-1).
 * For each mode bit set in modes (1 << FPK_CH_Q/K/QK), sum[mode] (n_layers, heads(mode), head_dim) receives
 * the sum over all tokens of |q_pre|, |k_pre|, |q_post * k_post (GQA-expanded)| (added to what is there).
 * half: fp16 weights and fp16 inputs to the linear products (fp32 accumulation), TF32 attention products: the
 * speed mode for large models (statistics then differ from the fp32 reference at the 1e-3 level); 0: exact fp32.
 * timing (may be NULL) receives seconds: [0] weights read+upload that the layer loop waited for (layer l + 1 is
 * prefetched by a thread while layer l computes), [1] linear products, [2] attention (score and
 * value products, softmax), [3] everything else on the GPU (norms, RoPE, statistics, ...). */
int fpk_model_gpu_qk_sums(const fpk_model *m, const int *tokens, int nb, int len, int modes, int half,
	double *sum[3], double timing[4], fpk_progress_fn progress, void *progress_ud);

#ifdef __cplusplus
}
#endif
#endif
