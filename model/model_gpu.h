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

/* What fpk_model_gpu_nll ran. */
typedef struct fpk_gpu_eval_info {
	char device[128];   /* the GPU's name */
	fpk_dtype dtype;    /* precision of the linear products (inputs, weights and outputs; fp32 accumulation) */
	int spmm_matrices;  /* layer matrices run through the Tiled-CSL SpMM kernel (encoded in a pack) */
	int dense_matrices; /* layer matrices run through cuBLAS (dense checkpoints, tensors a pack left dense) */
	int passes;         /* times the layers were streamed through the GPU (windows batched per pass) */
	size_t windows;     /* context windows evaluated */
	double upload_wait_s; /* seconds the layer loop waited for weights (read + upload; the next layer prefetches) */
	double seconds;     /* wall time of the call */
} fpk_gpu_eval_info;

/* Perplexity on the GPU, the contract of fpk_model_nll (no hooks): mean NLL of tokens[1..n-1] over non-overlapping
 * windows of ctx tokens, *count predictions. Layer-streamed: one decoder layer's weights on the device at a time
 * (the next one prefetched by a thread), the hidden states of many windows carried from layer to layer, as many
 * windows per pass as device memory allows. Load the model with fpk_model_load_lazy: a pack's encoded layer
 * matrices then run through the Tiled-CSL SpMM kernel from their arrays (never decoded); other matrices through
 * cuBLAS. prec FPK_F16 or FPK_BF16: every linear product takes prec inputs and weights (dense ones converted) and
 * gives a prec output with fp32 accumulation, as the SpMM kernel does; FPK_F32: fp32 products for dense matrices.
 * Norms, attention, the LM head and the log-softmax are fp32. logits (may be NULL when nlog == 0) receives the
 * logits of tokens[0..nlog-1] (nlog x vocab; nlog <= ctx, the first window). info may be NULL. */
int fpk_model_gpu_nll(const fpk_model *m, const int *tokens, size_t n, int ctx, fpk_dtype prec, double *mean_nll,
	size_t *count, float *logits, int nlog, fpk_gpu_eval_info *info);

/* Attention hook of the GPU perplexity path (verify --channels puts Double Sparsity attention here). Called on the
 * default stream for every decoder layer and every group of nb windows of Tq tokens, after the dense attention,
 * with device pointers: q (nb*Tq, H*d) fp32 post-RoPE queries, kc and vc (nb, Tq, Hkv*d) fp32 post-RoPE keys and
 * values (window b at b*Tq*Hkv*d; query t of a window sees its keys 0..t), att (nb*Tq, H*d) the dense attention
 * output, which the hook may overwrite. max_nb and max_T bound nb and Tq over the run (for the hook's buffers);
 * max_windows > 0 caps nb (the engine then runs fewer windows per call). A non-zero return stops the run with it. */
typedef struct fpk_gpu_attend_hook {
	void *ud;
	int (*attend)(void *ud, int layer, int nb, int Tq, int max_nb, int max_T, const float *q, const float *kc,
		const float *vc, float *att);
	int max_windows;
} fpk_gpu_attend_hook;

/* fpk_model_gpu_nll with an attention hook (hook may be NULL). */
int fpk_model_gpu_nll_hooked(const fpk_model *m, const int *tokens, size_t n, int ctx, fpk_dtype prec,
	const fpk_gpu_attend_hook *hook, double *mean_nll, size_t *count, float *logits, int nlog,
	fpk_gpu_eval_info *info);

#ifdef __cplusplus
}
#endif
#endif
