/* ds_attention_ref.h: scalar C reference twins of the Double Sparsity kernels (ds_attention.h); the same params
 * structs with HOST pointers. Bit-exact on labels, scores and the top-k; attention in float. Test: tests/unit/test_ds_ref.c. */
#ifndef FPK_DS_ATTENTION_REF_H
#define FPK_DS_ATTENTION_REF_H

#include "ds_attention.h"

#ifdef __cplusplus
extern "C" {
#endif

/* order-preserving map of a float score to a uint32 key (larger score -> larger key; -0 < +0; NaN by bits) */
static inline uint32_t fpk_ds_key(float f)
{
	union { float f; uint32_t u; } c = {f};
	return (c.u & 0x80000000u) ? ~c.u : (c.u | 0x80000000u);
}

/* Quantize one label row x (r floats) to fmt Q8/Q4: scale = fp16 rounded UP from max|x| / qmax (qmax 127 or 7),
 * q = rint(x / scale) clamped. Bound: |x - q*scale| <= scale/2 with scale <= max(max|x|/qmax*(1+2^-10), 2^-24),
 * for max|x| <= 65504*qmax. row gets rb bytes, *scale_bits the fp16 scale. */
void fpk_ds_ref_quantize(const float *x, int r, int fmt, uint8_t *row, uint16_t *scale_bits);
/* label value j of a row (any fmt; kv_dtype for 16-bit rows) as float */
float fpk_ds_ref_label_value(const uint8_t *row, uint16_t scale_bits, int fmt, int kv_dtype, int j);

/* exact top-k of scores[0..n): the k largest by fpk_ds_key, ties to the lower index; idx gets them ascending.
 * k <= n. Returns 0 or FPK_EIO (no memory). */
int fpk_ds_ref_topk(const float *scores, int n, int k, int32_t *idx);

int fpk_ds_ref_label_build(const fpk_ds_label_params *p);
/* approximate scores of selection unit u (see ds_attention.h) over tokens 0..lens[b)-1 */
int fpk_ds_ref_scores(const fpk_ds_decode_params *p, int unit, float *scores);
/* full decode step; idx (U, kcap) and nsel (U) as fpk_ds_workspace_selection describes (may be NULL) */
int fpk_ds_ref_decode(const fpk_ds_decode_params *p, int32_t *idx, int32_t *nsel, int kcap);
int fpk_ds_ref_dense_decode(const fpk_ds_dense_params *p);

/* shared checks of a shape/config (used by the launchers too): 0 or FPK_EUSAGE with a message */
int fpk_ds_check_shape(const fpk_ds_shape *s);
int fpk_ds_check_cfg(const fpk_ds_shape *s, const fpk_ds_label_cfg *c);
/* k_b of a sequence of length len, or 0 when it takes the dense path */
int fpk_ds_seq_topk(const fpk_ds_decode_params *p, int len);

#ifdef __cplusplus
}
#endif
#endif
