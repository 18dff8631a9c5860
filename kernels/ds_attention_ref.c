/* ds_attention_ref.c: scalar C twins of the Double Sparsity kernels (labels, scores, top-k, attention).
 * Labels, scores and selections are bit-exact with kernels/ds_attention.cu; tested by tests/unit/test_ds_ref.c. */
#include "ds_attention_ref.h"

#include "fpk_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t fpk_ds_label_row_bytes(const fpk_ds_label_cfg *cfg)
{
	size_t b = cfg->fmt == FPK_DS_LABEL_16 ? (size_t)cfg->r * 2
		   : cfg->fmt == FPK_DS_LABEL_Q8 ? (size_t)cfg->r : ((size_t)cfg->r + 1) / 2;
	return (b + 3) & ~(size_t)3; /* rows padded to 4 bytes (zeros) so the kernels load whole words */
}

static int label_heads(const fpk_ds_shape *s, const fpk_ds_label_cfg *c)
{
	return c->per_head_labels ? s->heads : s->kv_heads;
}

void fpk_ds_label_cache_bytes(const fpk_ds_shape *s, const fpk_ds_label_cfg *cfg, size_t *label_bytes,
			      size_t *scale_bytes)
{
	size_t rows = (size_t)s->batch * label_heads(s, cfg) * s->max_len;
	*label_bytes = rows * fpk_ds_label_row_bytes(cfg);
	*scale_bytes = cfg->fmt == FPK_DS_LABEL_16 ? 0 : rows * 2;
}

int fpk_ds_check_shape(const fpk_ds_shape *s)
{
	if (s->batch < 1 || s->heads < 1 || s->kv_heads < 1 || s->heads % s->kv_heads)
		return fpk_error_set(FPK_EUSAGE, "ds attention: heads %d must be a positive multiple of kv heads %d",
				     s->heads, s->kv_heads);
	if (s->head_dim < 8 || s->head_dim > 256 || s->head_dim % 8)
		return fpk_error_set(FPK_EUSAGE, "ds attention: head_dim %d must be a multiple of 8 in 8..256", s->head_dim);
	if (s->max_len < 1)
		return fpk_error_set(FPK_EUSAGE, "ds attention: max_len %d must be positive", s->max_len);
	if (s->kv_dtype != FPK_F16 && s->kv_dtype != FPK_BF16)
		return fpk_error_set(FPK_EUSAGE, "ds attention: kv dtype must be F16 or BF16");
	return 0;
}

int fpk_ds_check_cfg(const fpk_ds_shape *s, const fpk_ds_label_cfg *c)
{
	if (c->r < 1 || c->r > s->head_dim)
		return fpk_error_set(FPK_EUSAGE, "ds attention: heavy channels r = %d must be in 1..%d", c->r, s->head_dim);
	if (c->fmt < FPK_DS_LABEL_16 || c->fmt > FPK_DS_LABEL_Q4)
		return fpk_error_set(FPK_EUSAGE, "ds attention: label format %d unknown (16, q8, q4)", c->fmt);
	if (!c->ch)
		return fpk_error_set(FPK_EUSAGE, "ds attention: no channel table");
	return 0;
}

int fpk_ds_seq_topk(const fpk_ds_decode_params *p, int len)
{
	long long k = p->topk > 0 ? p->topk : (p->topk_div > 0 ? ((long long)len + p->topk_div - 1) / p->topk_div : len);
	if (k < 1)
		k = 1;
	if (len < p->dense_below || k >= len)
		return 0;
	return (int)k;
}

/* ---- labels ---- */

static float kv_load(const void *base, int dt, size_t i)
{
	uint16_t h = ((const uint16_t *)base)[i];
	return dt == FPK_BF16 ? fpk_bf16_to_f32(h) : fpk_f16_to_f32(h);
}

void fpk_ds_ref_quantize(const float *x, int r, int fmt, uint8_t *row, uint16_t *scale_bits)
{
	int qmax = fmt == FPK_DS_LABEL_Q8 ? 127 : 7;
	float amax = 0;
	for (int j = 0; j < r; j++)
		amax = fmaxf(amax, fabsf(x[j]));
	float s = amax / (float)qmax;
	if (s > 65504.0f)
		s = 65504.0f;
	uint16_t sb = fpk_f32_to_f16(s);
	if (fpk_f16_to_f32(sb) < s)
		sb++; /* positive half: the next representable value up */
	float sh = fpk_f16_to_f32(sb);
	memset(row, 0, fmt == FPK_DS_LABEL_Q8 ? ((size_t)r + 3) & ~(size_t)3 : (((size_t)r + 1) / 2 + 3) & ~(size_t)3);
	for (int j = 0; j < r; j++) {
		float qf = sh > 0 ? rintf(x[j] / sh) : 0.0f;
		int qi = (int)fmaxf(-(float)qmax, fminf((float)qmax, qf));
		if (fmt == FPK_DS_LABEL_Q8)
			row[j] = (uint8_t)(int8_t)qi;
		else
			row[j / 2] |= (uint8_t)((qi & 0xF) << ((j & 1) * 4));
	}
	*scale_bits = sb;
}

float fpk_ds_ref_label_value(const uint8_t *row, uint16_t scale_bits, int fmt, int kv_dtype, int j)
{
	if (fmt == FPK_DS_LABEL_16) {
		uint16_t h;
		memcpy(&h, row + 2 * j, 2);
		return kv_dtype == FPK_BF16 ? fpk_bf16_to_f32(h) : fpk_f16_to_f32(h);
	}
	int qi;
	if (fmt == FPK_DS_LABEL_Q8)
		qi = (int8_t)row[j];
	else {
		int nib = (row[j / 2] >> ((j & 1) * 4)) & 0xF;
		qi = nib >= 8 ? nib - 16 : nib;
	}
	return (float)qi * fpk_f16_to_f32(scale_bits);
}

int fpk_ds_ref_label_build(const fpk_ds_label_params *p)
{
	const fpk_ds_shape *s = &p->shape;
	const fpk_ds_label_cfg *c = &p->cfg;
	int rc = fpk_ds_check_shape(s);
	if (rc || (rc = fpk_ds_check_cfg(s, c)))
		return rc;
	int G = s->heads / s->kv_heads, LH = label_heads(s, c), d = s->head_dim, r = c->r;
	size_t rb = fpk_ds_label_row_bytes(c);
	float x[256];
	for (int b = 0; b < s->batch; b++)
		for (int lh = 0; lh < LH; lh++) {
			int kvh = c->per_head_labels ? lh / G : lh;
			for (int t = p->from ? p->from[b] : 0; t < p->lens[b]; t++) {
				size_t krow = (((size_t)b * s->kv_heads + kvh) * s->max_len + t) * d;
				size_t lrow = ((size_t)b * LH + lh) * s->max_len + t;
				for (int j = 0; j < r; j++)
					x[j] = kv_load(p->k, s->kv_dtype, krow + c->ch[(size_t)lh * r + j]);
				if (c->fmt == FPK_DS_LABEL_16) {
					const uint16_t *src = (const uint16_t *)p->k + krow;
					uint8_t *dst = p->labels + lrow * rb;
					memset(dst, 0, rb);
					for (int j = 0; j < r; j++)
						memcpy(dst + 2 * j, src + c->ch[(size_t)lh * r + j], 2);
				} else {
					fpk_ds_ref_quantize(x, r, c->fmt, p->labels + lrow * rb, &p->scales[lrow]);
				}
			}
		}
	return 0;
}

/* ---- scores ---- */

/* scoring query of unit u: qs[j] = sum over the unit's heads (ascending) of q[h][ch[lh][j]] */
static void unit_query(const fpk_ds_decode_params *p, int u, float *qs, int *b_out, int *lh_out)
{
	const fpk_ds_shape *s = &p->shape;
	const fpk_ds_label_cfg *c = &p->cfg;
	int G = s->heads / s->kv_heads, r = c->r;
	int per = p->sel_per_head ? s->heads : s->kv_heads;
	int b = u / per, w = u % per;
	int h0 = p->sel_per_head ? w : w * G, nh = p->sel_per_head ? 1 : G;
	int lh = c->per_head_labels ? w : (p->sel_per_head ? w / G : w);
	for (int j = 0; j < r; j++) {
		float acc = 0.0f;
		for (int h = h0; h < h0 + nh; h++)
			acc += kv_load(p->q, s->kv_dtype, ((size_t)b * s->heads + h) * s->head_dim + c->ch[(size_t)lh * r + j]);
		qs[j] = acc;
	}
	*b_out = b;
	*lh_out = lh;
}

int fpk_ds_ref_scores(const fpk_ds_decode_params *p, int u, float *scores)
{
	const fpk_ds_shape *s = &p->shape;
	const fpk_ds_label_cfg *c = &p->cfg;
	float qs[256];
	int b, lh, LH = label_heads(s, c);
	unit_query(p, u, qs, &b, &lh);
	size_t rb = fpk_ds_label_row_bytes(c);
	for (int t = 0; t < p->lens[b]; t++) {
		size_t lrow = ((size_t)b * LH + lh) * s->max_len + t;
		const uint8_t *row = p->labels + lrow * rb;
		float acc = 0.0f;
		if (c->fmt == FPK_DS_LABEL_16) {
			for (int j = 0; j < c->r; j++)
				acc = fmaf(qs[j], fpk_ds_ref_label_value(row, 0, c->fmt, s->kv_dtype, j), acc);
		} else {
			for (int j = 0; j < c->r; j++)
				acc = fmaf(qs[j], fpk_ds_ref_label_value(row, 0x3c00 /* 1.0 */, c->fmt, s->kv_dtype, j), acc);
			acc = acc * fpk_f16_to_f32(p->scales[lrow]);
		}
		scores[t] = acc;
	}
	return 0;
}

/* ---- top-k ---- */

typedef struct { uint32_t key; int32_t idx; } keyed;

static int keyed_desc(const void *a, const void *b)
{
	const keyed *x = a, *y = b;
	if (x->key != y->key)
		return x->key > y->key ? -1 : 1;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

static int int_asc(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

int fpk_ds_ref_topk(const float *scores, int n, int k, int32_t *idx)
{
	keyed *v = malloc(sizeof(*v) * (n ? n : 1));
	if (!v)
		return fpk_error_set(FPK_EIO, "ds top-k: out of memory for %d scores", n);
	for (int t = 0; t < n; t++) {
		v[t].key = fpk_ds_key(scores[t]);
		v[t].idx = t;
	}
	qsort(v, n, sizeof(*v), keyed_desc);
	for (int i = 0; i < k; i++)
		idx[i] = v[i].idx;
	qsort(idx, k, sizeof(*idx), int_asc);
	free(v);
	return 0;
}

/* ---- attention ---- */

/* one query head over tokens (idx ascending, or 0..n-1 when idx is NULL), float math, out (d) */
static void attend(const fpk_ds_shape *s, const void *q, const void *k, const void *v, int b, int h, const int32_t *idx,
		   int n, float *out)
{
	int d = s->head_dim, G = s->heads / s->kv_heads, kvh = h / G, dt = s->kv_dtype;
	const size_t qrow = ((size_t)b * s->heads + h) * d;
	const float scale = 1.0f / sqrtf((float)d);
	float qf[256], acc[256];
	for (int i = 0; i < d; i++) {
		qf[i] = kv_load(q, dt, qrow + i);
		acc[i] = 0;
	}
	float m = -INFINITY, l = 0;
	for (int i = 0; i < n; i++) {
		size_t row = (((size_t)b * s->kv_heads + kvh) * s->max_len + (idx ? idx[i] : i)) * d;
		float dot = 0;
		for (int j = 0; j < d; j++)
			dot = fmaf(qf[j], kv_load(k, dt, row + j), dot);
		dot *= scale;
		float mn = fmaxf(m, dot);
		float c = expf(m - mn), pr = expf(dot - mn);
		l = l * c + pr;
		for (int j = 0; j < d; j++)
			acc[j] = acc[j] * c + pr * kv_load(v, dt, row + j);
		m = mn;
	}
	for (int j = 0; j < d; j++)
		out[j] = acc[j] / l;
}

int fpk_ds_ref_dense_decode(const fpk_ds_dense_params *p)
{
	const fpk_ds_shape *s = &p->shape;
	int rc = fpk_ds_check_shape(s);
	if (rc)
		return rc;
	for (int b = 0; b < s->batch; b++)
		for (int h = 0; h < s->heads; h++)
			attend(s, p->q, p->k, p->v, b, h, NULL, p->lens[b], p->out + ((size_t)b * s->heads + h) * s->head_dim);
	return 0;
}

int fpk_ds_ref_decode(const fpk_ds_decode_params *p, int32_t *idx, int32_t *nsel, int kcap)
{
	const fpk_ds_shape *s = &p->shape;
	int rc = fpk_ds_check_shape(s);
	if (rc || (rc = fpk_ds_check_cfg(s, &p->cfg)))
		return rc;
	if (p->cfg.per_head_labels && !p->sel_per_head)
		return fpk_error_set(FPK_EUSAGE, "ds attention: per-query-head labels need per-head selection");
	int G = s->heads / s->kv_heads, per = p->sel_per_head ? s->heads : s->kv_heads;
	int U = s->batch * per;
	float *sc = malloc(sizeof(float) * s->max_len);
	int32_t *sel = malloc(sizeof(int32_t) * s->max_len);
	rc = (!sc || !sel) ? fpk_error_set(FPK_EIO, "ds attention: out of memory") : 0;
	for (int u = 0; !rc && u < U; u++) {
		int b = u / per, w = u % per, len = p->lens[b];
		int kb = fpk_ds_seq_topk(p, len);
		if (kb > kcap && idx) {
			rc = fpk_error_set(FPK_EUSAGE, "ds attention: top-k %d over capacity %d", kb, kcap);
			break;
		}
		if (kb) {
			fpk_ds_ref_scores(p, u, sc);
			if ((rc = fpk_ds_ref_topk(sc, len, kb, sel)))
				break;
		}
		if (nsel)
			nsel[u] = kb ? kb : -len;
		if (idx && kb)
			memcpy(idx + (size_t)u * kcap, sel, sizeof(int32_t) * kb);
		int h0 = p->sel_per_head ? w : w * G, nh = p->sel_per_head ? 1 : G;
		for (int h = h0; h < h0 + nh; h++)
			attend(s, p->q, p->k, p->v, b, h, kb ? sel : NULL, kb ? kb : len,
			       p->out + ((size_t)b * s->heads + h) * s->head_dim);
	}
	free(sc);
	free(sel);
	return rc;
}
