/* attn_prefill.h: fused causal attention over blocks of queries (prefill, calibration) on tensor cores:
 * out = softmax(q k^T * scale, causal) v per head, with fp32 inputs and outputs, fp16 operands for both products
 * (mma.sync m16n8k16, fp32 accumulation) and an fp32 online softmax (kernels/attn_prefill.cu). The scores never
 * leave the chip. Used by the engine's mixed-precision mode (model_gpu.cu); tested against a double-precision
 * host reference by tests/gpu/test_attn_prefill.c (label gpu). */
#ifndef FPK_ATTN_PREFILL_H
#define FPK_ATTN_PREFILL_H

#include "fpk_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fpk_attn_prefill_params {
	const float *q;     /* device: nb * Tq rows of q_ld floats; block b's query t is row b * Tq + t, head h at
	                     * columns h * d .. h * d + d - 1 (after RoPE) */
	const float *k, *v; /* device: block b's cache at k + b * kv_bstride, position p at row p (kv_ld floats),
	                     * kv head g at columns g * d ..; positions 0 .. pos0 + Tq - 1 are read */
	float *out;         /* device: like q (q_ld floats per row); every (row, head) value is written */
	int nb, Tq, pos0;   /* blocks, queries per block (at positions pos0 .. pos0 + Tq - 1) */
	int heads, kv_heads, d; /* heads % kv_heads == 0 (GQA: head h reads kv head h / (heads / kv_heads)) */
	int64_t q_ld, kv_ld, kv_bstride;
	float scale;        /* usually 1 / sqrt(d) */
	void *stream;       /* cudaStream_t, NULL for the default stream */
} fpk_attn_prefill_params;

/* 1 when head_dim d has a compiled kernel (16, 32, 64, 128) */
int fpk_attn_prefill_supported(int d);
/* launch (asynchronous); FPK_EUSAGE for unsupported or inconsistent parameters, FPK_EGPU for a CUDA error */
int fpk_attn_prefill(const fpk_attn_prefill_params *p);

#ifdef __cplusplus
}
#endif
#endif
