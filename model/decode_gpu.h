/* decode_gpu.h: a resident fp16 decode engine on the GPU (model/decode_gpu.cu): B sequences advance one token per
 * step through Llama-style (RMSNorm, RoPE, SwiGLU) or OPT-style (LayerNorm, biases, ReLU) decoder layers over an
 * fp16 KV cache; every linear layer is either dense (cuBLAS) or Tiled-CSL (our SpMM kernel, kernels/spmm.h).
 * Tested by tests/gpu/test_decode_gpu.c (label gpu); benchmarked by bench/bench_decode.cu (docs/BENCHMARKS.md).
 *
 * Numerics: fp16 weights and activations between kernels, fp32 accumulation everywhere, the residual stream in
 * fp32, attention output fp32 (rounded to fp16 before the output projection), logits fp32.
 * Layout choices (the same for dense and sparse weights): q, k and v are one fused [(H + 2 Hkv) d, hidden]
 * matrix (rows: q heads, then k heads, then v heads); Llama's gate and up are one fused [2 ffn, hidden] matrix
 * (rows: gate, then up); OPT's fc1 is [ffn, hidden]. Without CUDA every entry point fails with FPK_EGPU. */
#ifndef FPK_DECODE_GPU_H
#define FPK_DECODE_GPU_H

#include "fpk_common.h"
#include "tcsl.h"

#ifdef __cplusplus
extern "C" {
#endif

enum fpk_dec_arch {
	FPK_DEC_LLAMA = 0, /* pre-RMSNorm, RoPE (rotate-half pairs i, i + d/2), SwiGLU MLP, no biases */
	FPK_DEC_OPT = 1,   /* pre-LayerNorm, learned positions added to the embedding, biases, ReLU MLP (fc1/fc2) */
};

typedef struct fpk_dec_config {
	int arch;                  /* enum fpk_dec_arch */
	int hidden;                /* model width; a multiple of 8 */
	int heads, kv_heads;       /* H query heads, Hkv key/value heads (H % Hkv == 0) */
	int head_dim;              /* d: even, a multiple of 8 in 8..256 (the attention kernel's limits) */
	int ffn;                   /* MLP width; a multiple of 8 */
	int layers;                /* decoder layers held on the GPU */
	int vocab;                 /* embedding rows and LM-head rows */
	int max_pos;               /* OPT: rows of the learned position table (position p uses row p); Llama: 0 */
	int tie_embed;             /* 1: the LM head is the embedding table (OPT); 0: a separate [vocab, hidden] */
	float norm_eps;            /* RMSNorm / LayerNorm epsilon */
	float rope_theta;          /* Llama: inv_freq[i] = 1 / theta^(2i/d) */
} fpk_dec_config;

/* the linear layers of a decoder layer */
enum fpk_dec_linear_id {
	FPK_DEC_QKV = 0,  /* [(H + 2 Hkv) d, hidden] */
	FPK_DEC_O = 1,    /* [hidden, H d] */
	FPK_DEC_UP = 2,   /* Llama: [2 ffn, hidden] gate then up; OPT: fc1 [ffn, hidden] */
	FPK_DEC_DOWN = 3, /* [hidden, ffn] (OPT: fc2) */
	FPK_DEC_NLINEAR = 4,
};

/* the small per-layer vectors (fp16); the biases and norm biases exist for OPT only */
enum fpk_dec_vec_id {
	FPK_DEC_NORM1_W = 0, /* (hidden) attention-input norm weight */
	FPK_DEC_NORM1_B,     /* (hidden) OPT */
	FPK_DEC_NORM2_W,     /* (hidden) MLP-input norm weight */
	FPK_DEC_NORM2_B,     /* (hidden) OPT */
	FPK_DEC_QKV_B,       /* ((H + 2 Hkv) d) OPT */
	FPK_DEC_O_B,         /* (hidden) OPT */
	FPK_DEC_UP_B,        /* (ffn) OPT */
	FPK_DEC_DOWN_B,      /* (hidden) OPT */
	FPK_DEC_NVEC,
};

/* the model-wide tensors (fp16, row-major) */
enum fpk_dec_global_id {
	FPK_DEC_EMBED = 0,     /* (vocab, hidden) */
	FPK_DEC_POS_EMBED = 1, /* (max_pos, hidden) OPT */
	FPK_DEC_FINAL_W = 2,   /* (hidden) final norm weight */
	FPK_DEC_FINAL_B = 3,   /* (hidden) OPT */
	FPK_DEC_LM_HEAD = 4,   /* (vocab, hidden); with tie_embed the same memory as FPK_DEC_EMBED */
	FPK_DEC_NGLOBAL = 5,
};

/* phases of a step: fpk_dec_step launches only the kernels of the phases asked for (benchmarks time each
 * phase alone this way; anything but FPK_DEC_ALL computes garbage) */
enum fpk_dec_phase {
	FPK_DEC_PH_LINEAR = 1, /* the four linear layers of every decoder layer (dense cuBLAS or SpMM) */
	FPK_DEC_PH_ATTN = 2,   /* q/k/v bias + RoPE + KV-cache append, flash-decoding attention, fp32->fp16 output */
	FPK_DEC_PH_OTHER = 4,  /* embedding, residual adds + norms, biases + activation of the MLP */
	FPK_DEC_PH_HEAD = 8,   /* last residual add + final norm + LM head (dense cuBLAS, logits fp32) */
	FPK_DEC_ALL = 15,
	/* timing only: one kind of linear layer of every decoder layer (a subset of FPK_DEC_PH_LINEAR) */
	FPK_DEC_PH_QKV = 16,
	FPK_DEC_PH_O = 32,
	FPK_DEC_PH_UP = 64,
	FPK_DEC_PH_DOWN = 128,
};

typedef struct fpk_dec_model fpk_dec_model; /* weights (device) */
typedef struct fpk_dec_state fpk_dec_state; /* one batch: KV cache, activations, workspaces, cuBLAS handle */

/* logical [m, k] of a linear layer under c; FPK_EUSAGE for a bad id */
int fpk_dec_linear_shape(const fpk_dec_config *c, int which, int64_t *m, int64_t *k);
/* elements of a per-layer vector (0 when the architecture has none) and of a global tensor */
size_t fpk_dec_vec_len(const fpk_dec_config *c, int which);
size_t fpk_dec_global_len(const fpk_dec_config *c, int which);

/* Check c and allocate the model-wide tensors and the per-layer vectors (device memory, contents undefined
 * until the caller writes them through fpk_dec_vector / fpk_dec_global); linear layers are added one by one
 * below. Caller frees with fpk_dec_model_free. */
int fpk_dec_model_new(const fpk_dec_config *c, fpk_dec_model **out);
void fpk_dec_model_free(fpk_dec_model *m);
const fpk_dec_config *fpk_dec_model_config(const fpk_dec_model *m);

/* Make linear `which` of `layer` dense: allocates its m x k fp16 matrix on the device and returns it in *w for
 * the caller to fill (cudaMemcpy, or a kernel). Replaces what was there (freed). */
int fpk_dec_linear_dense(fpk_dec_model *m, int layer, int which, void **w);
/* Make it Tiled-CSL: uploads t (fp16, shape as fpk_dec_linear_shape). t stays the caller's. */
int fpk_dec_linear_sparse(fpk_dec_model *m, int layer, int which, const fpk_tcsl *t);
/* device pointer of a per-layer vector / a global tensor (fp16) and its element count; FPK_EUSAGE when the
 * architecture has no such tensor */
int fpk_dec_vector(fpk_dec_model *m, int layer, int which, void **dev, size_t *n);
int fpk_dec_global(fpk_dec_model *m, int which, void **dev, size_t *n);

/* device bytes held by the model: linear layers (dense m*k*2, or Tiled-CSL values + offsets), the per-layer
 * vectors, and the global tensors (embedding, positions, final norm, LM head counted once when tied) */
typedef struct fpk_dec_bytes {
	uint64_t linear, vectors, globals;
	int sparse_linears, dense_linears; /* counts */
} fpk_dec_bytes;
void fpk_dec_model_bytes(const fpk_dec_model *m, fpk_dec_bytes *b);

/* A batch of `batch` sequences with room for max_len tokens each (the KV cache, (layers, 2, B, Hkv, max_len, d)
 * fp16, is allocated here with undefined contents). Every linear layer of m must be set. Caller frees with
 * fpk_dec_state_free; the state must not outlive m. */
int fpk_dec_state_new(const fpk_dec_model *m, int batch, int max_len, fpk_dec_state **out);
void fpk_dec_state_free(fpk_dec_state *s);
/* bytes of the KV cache, and of the activations + SpMM workspace (the attention workspace is not counted) */
uint64_t fpk_dec_state_kv_bytes(const fpk_dec_state *s);
uint64_t fpk_dec_state_other_bytes(const fpk_dec_state *s);

/* Position of the new token of each sequence (host array of B, each in 0..max_len-1): the next step writes its
 * K/V at pos[b] and attends over tokens 0..pos[b]. Synchronous copy; FPK_EUSAGE for a position out of range. */
int fpk_dec_set_positions(fpk_dec_state *s, const int32_t *pos);
/* device pointers the caller reads or writes: the input token of each sequence (B int32, clamped to the
 * vocabulary), the logits (B, vocab) fp32 written by a step, and layer l's cache K, V: (B, Hkv, max_len, d) fp16 */
int32_t *fpk_dec_tokens(fpk_dec_state *s);
float *fpk_dec_logits(fpk_dec_state *s);
int fpk_dec_kv(fpk_dec_state *s, int layer, void **k, void **v);

/* One decode step (asynchronous on stream, a cudaStream_t or NULL): embeds tokens, runs every layer (appending
 * each sequence's K/V at its position), and writes the logits. phases: FPK_DEC_ALL, or a mask of
 * enum fpk_dec_phase for timing. No allocation and no synchronisation: a step can be captured in a CUDA graph
 * (after one uncaptured step, so that cuBLAS has set itself up). */
int fpk_dec_step(const fpk_dec_model *m, fpk_dec_state *s, unsigned phases, void *stream);

#ifdef __cplusplus
}
#endif
#endif
