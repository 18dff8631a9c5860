/* ds_attention.h: Double Sparsity decode attention on the GPU (label cache, approximate scores, exact top-k,
 * sparse exact attention) and the dense flash-decoding baseline. Tests: tests/gpu/test_ds_attention.c; bench: bench/bench_ds.
 *
 * Layouts (all row-major, device memory, see docs/double-sparsity.md):
 *   q       (B, H, d)            KV dtype (fp16 or bf16)
 *   K, V    (B, Hkv, L_max, d)   KV dtype; sequence b holds lens[b] <= L_max valid tokens (post-RoPE keys)
 *   ch      (LH, r) int32        heavy channels of each label head (LH = Hkv, or H with per_head_labels)
 *   labels  (B, LH, L_max, rb)   bytes; rb = 2r (16-bit, KV dtype), r (8-bit) or ceil(r/2) (4-bit), rounded up to 4
 *   scales  (B, LH, L_max) fp16  per-token scale of quantized labels (unused for 16-bit labels)
 *   out     (B, H, d) float32
 * The C reference twins of every kernel are in ds_attention_ref.h and share these structs. */
#ifndef FPK_DS_ATTENTION_H
#define FPK_DS_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* label storage formats: values reach no file, but keep them stable */
enum fpk_ds_label_fmt {
	FPK_DS_LABEL_16 = 0, /* the key's own 16-bit dtype, exact copy of the channels */
	FPK_DS_LABEL_Q8 = 1, /* int8 in [-127, 127], value = q * scale, per-token fp16 scale */
	FPK_DS_LABEL_Q4 = 2, /* int4 in [-7, 7] two's-complement nibbles, channel 2i in the low nibble */
};

typedef struct fpk_ds_shape {
	int batch;     /* B; on the GPU B * H <= 65535 (one grid dimension holds the units) */
	int heads;     /* H query heads */
	int kv_heads;  /* Hkv key/value heads; H % Hkv == 0, group size G = H / Hkv */
	int head_dim;  /* d: a multiple of 8 in 8..256 */
	int max_len;   /* L_max: token capacity of each sequence in K, V, labels */
	int kv_dtype;  /* FPK_F16 or FPK_BF16 (fpk_common.h) */
} fpk_ds_shape;

typedef struct fpk_ds_label_cfg {
	int r;               /* heavy channels per label head, 1..d */
	int fmt;             /* enum fpk_ds_label_fmt */
	int per_head_labels; /* 0: one label row per kv head (ch has Hkv rows; e.g. the "k" config or one merged
	                        "qk" row per group); 1: one per query head (ch has H rows), G times the bytes */
	const int32_t *ch;   /* (LH, r) channel indices in 0..d-1 (device memory for the kernels) */
} fpk_ds_label_cfg;

/* bytes of a label cache: labels and scales (scales 0 for 16-bit labels) */
size_t fpk_ds_label_row_bytes(const fpk_ds_label_cfg *cfg);
void fpk_ds_label_cache_bytes(const fpk_ds_shape *s, const fpk_ds_label_cfg *cfg, size_t *label_bytes,
			      size_t *scale_bytes);

/* Label build / append: writes labels (and scales) of tokens [from[b], lens[b]) of every sequence.
 * from == NULL builds from token 0; append one token with from[b] = lens[b] - 1. */
typedef struct fpk_ds_label_params {
	fpk_ds_shape shape;
	fpk_ds_label_cfg cfg;
	const void *k;        /* (B, Hkv, L_max, d) */
	const int32_t *lens;  /* (B) */
	const int32_t *from;  /* (B) or NULL */
	uint8_t *labels;      /* (B, LH, L_max, rb) */
	uint16_t *scales;     /* (B, LH, L_max) fp16 bits, NULL for 16-bit labels */
} fpk_ds_label_params;

/* One decode step. Per sequence b: k_b = topk if topk > 0 else ceil(lens[b] / topk_div); sequences with
 * lens[b] < dense_below or k_b >= lens[b] take dense attention, the others Double Sparsity. */
typedef struct fpk_ds_decode_params {
	fpk_ds_shape shape;
	fpk_ds_label_cfg cfg;
	const void *q, *k, *v;     /* (B, H, d), (B, Hkv, L_max, d) x2 */
	const int32_t *lens;       /* (B) valid tokens per sequence, 1..L_max */
	const uint8_t *labels;     /* label cache as built by fpk_ds_label_build */
	const uint16_t *scales;
	int sel_per_head;          /* 0: one top-k per kv group with the group-summed query (needs per-kv-head
	                              labels); 1: one top-k per query head */
	int topk, topk_div;        /* token budget, see above */
	int dense_below;           /* dense fallback below this length (e.g. 4096; 0 = only when k_b >= len) */
	float *out;                /* (B, H, d) float32 */
	int stop_after;            /* benchmarks only: 0 all stages; 1 after scores, 2 after selection */
} fpk_ds_decode_params;

/* Dense flash-decoding attention over lens[b] tokens (the fallback and the baseline). */
typedef struct fpk_ds_dense_params {
	fpk_ds_shape shape;
	const void *q, *k, *v;
	const int32_t *lens;
	float *out;
} fpk_ds_dense_params;

/* Scratch memory of the kernels (scores, histograms, candidate lists, partial results). One per stream.
 * max_topk bounds k_b of every call. Caller frees with fpk_ds_workspace_free. */
typedef struct fpk_ds_workspace fpk_ds_workspace;
int fpk_ds_workspace_new(const fpk_ds_shape *s, int max_topk, fpk_ds_workspace **out);
void fpk_ds_workspace_free(fpk_ds_workspace *ws);

/* launchers: 0 or FPK_EUSAGE (bad shape/config) / FPK_EGPU; stream is a cudaStream_t (NULL: default) */
int fpk_ds_label_build(const fpk_ds_label_params *p, void *stream);
int fpk_ds_decode(const fpk_ds_decode_params *p, fpk_ds_workspace *ws, void *stream);
int fpk_ds_dense_decode(const fpk_ds_dense_params *p, fpk_ds_workspace *ws, void *stream);

/* The selection of the last fpk_ds_decode on ws (device pointers, valid until the next call):
 * nsel (U) with U = B*H (sel_per_head) or B*Hkv; nsel[u] >= 0 tokens selected, or -len when the sequence
 * went dense; idx (U, kcap) selected token indices in ascending order. For tests and verify. */
void fpk_ds_workspace_selection(const fpk_ds_workspace *ws, const int32_t **idx, const int32_t **nsel, int *kcap);

/* How fpk_ds_decode would run the scores and the top-k selection of p on ws: the cluster size of the fused
 * score + select kernel (sm_90 and later: one thread-block cluster per unit, the scores kept in shared memory;
 * taken when all the units' clusters can be resident at once, i.e. short contexts or few sequences), or 0 for the
 * split path (score, filter and resolve kernels). The environment variable FPK_DS_SELECT=split forces the split
 * path, FPK_DS_SELECT=fused the fused one wherever it fits (L_max up to 131072, sm_90). Both give the same
 * selection. */
int fpk_ds_decode_fused(const fpk_ds_decode_params *p, const fpk_ds_workspace *ws);

/* Self-check of the selection: how many unit selections since the workspace was made (or since the last call)
 * took a number of tokens other than k_b (0 unless a kernel is wrong; the output is still bounded by k_b).
 * Synchronizes with the device and resets the count. 0 or FPK_EGPU. */
int fpk_ds_workspace_faults(fpk_ds_workspace *ws, unsigned *faults);

#ifdef __cplusplus
}
#endif
#endif
