/* ds_eval.c: Double Sparsity recall and output error vs dense on the CPU, with the selection rules of the GPU
 * kernels with an fp16 KV cache (query and labels rounded to fp16, fmaf scores, exact top-k with lower-index ties
 * from kernels/ds_attention_ref.c), so that verify --channels selects the same tokens on both devices. */
#include "ds_eval.h"

#include "ds_attention_ref.h"
#include "fpk_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fpk_ds_eval_stats_init(fpk_ds_eval_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->recall_min = 1.0;
}

void fpk_ds_eval_stats_add(fpk_ds_eval_stats *a, const fpk_ds_eval_stats *b)
{
	a->count += b->count;
	a->recall_sum += b->recall_sum;
	a->err_sum += b->err_sum;
	if (b->count) {
		a->recall_min = fmin(a->recall_min, b->recall_min);
		a->err_max = fmax(a->err_max, b->err_max);
	}
}

static int check_cfg(const fpk_ds_eval_cfg *c)
{
	if (c->head_dim < 1 || c->head_dim > 256)
		return fpk_error_set(FPK_EUSAGE, "ds eval: head_dim %d must be in 1..256", c->head_dim);
	if (c->heads < 1 || c->kv_heads < 1 || c->heads % c->kv_heads)
		return fpk_error_set(FPK_EUSAGE, "ds eval: heads %d must be a positive multiple of kv heads %d", c->heads,
				     c->kv_heads);
	if (c->r < 1 || c->r > c->head_dim)
		return fpk_error_set(FPK_EUSAGE, "ds eval: heavy channels r = %d must be in 1..%d", c->r, c->head_dim);
	if (c->label_bits != 16 && c->label_bits != 8 && c->label_bits != 4)
		return fpk_error_set(FPK_EUSAGE, "ds eval: label bits %d must be 16, 8 or 4", c->label_bits);
	if (c->per_head_labels && !c->sel_per_head)
		return fpk_error_set(FPK_EUSAGE, "ds eval: per-query-head labels need per-head selection");
	if (!c->ch)
		return fpk_error_set(FPK_EUSAGE, "ds eval: no channel table");
	int LH = c->per_head_labels ? c->heads : c->kv_heads;
	for (int i = 0; i < LH * c->r; i++)
		if (c->ch[i] < 0 || c->ch[i] >= c->head_dim)
			return fpk_error_set(FPK_EUSAGE, "ds eval: channel %d out of range 0..%d", c->ch[i], c->head_dim - 1);
	return 0;
}

static int seq_topk(const fpk_ds_eval_cfg *c, int len)
{
	long long k = c->topk > 0 ? c->topk : (c->topk_div > 0 ? ((long long)len + c->topk_div - 1) / c->topk_div : len);
	if (k < 1)
		k = 1;
	return (len < c->dense_below || k >= len) ? 0 : (int)k;
}

int fpk_ds_eval_attend(const fpk_ds_eval_cfg *c, int n, int pos0, const float *q, const float *k, const float *v,
		       int kv_len, float *out, fpk_ds_eval_stats *st)
{
	int rc = check_cfg(c);
	if (rc)
		return rc;
	if (pos0 < 0 || n < 1 || pos0 + n > kv_len)
		return fpk_error_set(FPK_EUSAGE, "ds eval: positions %d..%d outside the cache of %d", pos0, pos0 + n - 1,
				     kv_len);
	const int H = c->heads, Hkv = c->kv_heads, d = c->head_dim, r = c->r, G = H / Hkv;
	const int LH = c->per_head_labels ? H : Hkv, per = c->sel_per_head ? H : Hkv;
	const int fmt = c->label_bits == 16 ? FPK_DS_LABEL_16 : c->label_bits == 8 ? FPK_DS_LABEL_Q8 : FPK_DS_LABEL_Q4;
	float *lv = malloc(sizeof(float) * (size_t)LH * kv_len * r); /* label values (16-bit) or integer codes */
	float *ls = malloc(sizeof(float) * (size_t)LH * kv_len);     /* per-token scale (quantized) */
	float *sc = malloc(sizeof(float) * kv_len);
	int32_t *sel = malloc(sizeof(int32_t) * kv_len);
	double *w = malloc(sizeof(double) * kv_len), *od = malloc(sizeof(double) * d), *os = malloc(sizeof(double) * d);
	if (!lv || !ls || !sc || !sel || !w || !od || !os) {
		rc = fpk_error_set(FPK_EIO, "ds eval: out of memory for %d cached tokens", kv_len);
		goto done;
	}
	/* labels of every cached token, as the GPU label cache would hold them (fp16 keys) */
	for (int lh = 0; lh < LH; lh++) {
		int kvh = c->per_head_labels ? lh / G : lh;
		for (int t = 0; t < kv_len; t++) {
			float x[256];
			uint8_t row[260];
			uint16_t sb;
			float *dst = lv + ((size_t)lh * kv_len + t) * r;
			for (int j = 0; j < r; j++)
				x[j] = fpk_f16_to_f32(fpk_f32_to_f16(k[(size_t)t * Hkv * d + kvh * d + c->ch[lh * r + j]]));
			if (fmt == FPK_DS_LABEL_16) {
				memcpy(dst, x, sizeof(float) * r);
				ls[(size_t)lh * kv_len + t] = 1.0f;
			} else {
				fpk_ds_ref_quantize(x, r, fmt, row, &sb);
				for (int j = 0; j < r; j++)
					dst[j] = fpk_ds_ref_label_value(row, 0x3c00 /* 1.0: the integer code */, fmt, FPK_F16, j);
				ls[(size_t)lh * kv_len + t] = fpk_f16_to_f32(sb);
			}
		}
	}
	fpk_ds_eval_stats loc;
	fpk_ds_eval_stats_init(&loc);
	const double scale = 1.0 / sqrt((double)d);
	for (int i = 0; i < n; i++) {
		const int len = pos0 + i + 1, kb = seq_topk(c, len);
		const float *qi = q + (size_t)i * H * d;
		for (int u = 0; u < per; u++) {
			int h0 = c->sel_per_head ? u : u * G, nh = c->sel_per_head ? 1 : G;
			if (kb) {
				int lh = c->per_head_labels ? u : (c->sel_per_head ? u / G : u);
				float qs[256];
				for (int j = 0; j < r; j++) {
					float acc = 0.0f;
					for (int h = h0; h < h0 + nh; h++) /* q as the kernels read it: fp16 */
						acc += fpk_f16_to_f32(fpk_f32_to_f16(qi[h * d + c->ch[lh * r + j]]));
					qs[j] = acc;
				}
				for (int t = 0; t < len; t++) {
					const float *lab = lv + ((size_t)lh * kv_len + t) * r;
					float acc = 0.0f;
					for (int j = 0; j < r; j++)
						acc = fmaf(qs[j], lab[j], acc);
					sc[t] = fmt == FPK_DS_LABEL_16 ? acc : acc * ls[(size_t)lh * kv_len + t];
				}
				if ((rc = fpk_ds_ref_topk(sc, len, kb, sel)))
					goto done;
			}
			for (int h = h0; h < h0 + nh; h++) {
				int kvh = h / G;
				double m = -INFINITY, z = 0;
				for (int t = 0; t < len; t++) {
					double dot = 0;
					for (int j = 0; j < d; j++)
						dot += (double)qi[h * d + j] * k[(size_t)t * Hkv * d + kvh * d + j];
					w[t] = dot * scale;
					m = fmax(m, w[t]);
				}
				for (int t = 0; t < len; t++)
					z += (w[t] = exp(w[t] - m));
				for (int j = 0; j < d; j++)
					od[j] = 0;
				for (int t = 0; t < len; t++)
					for (int j = 0; j < d; j++)
						od[j] += w[t] / z * v[(size_t)t * Hkv * d + kvh * d + j];
				float *o = out ? out + (size_t)i * H * d + h * d : NULL;
				if (!kb) {
					if (o)
						for (int j = 0; j < d; j++)
							o[j] = (float)od[j];
					continue;
				}
				double mass = 0, e2 = 0, n2 = 0;
				for (int j = 0; j < d; j++)
					os[j] = 0;
				for (int x = 0; x < kb; x++) {
					int t = sel[x];
					mass += w[t];
					for (int j = 0; j < d; j++)
						os[j] += w[t] * v[(size_t)t * Hkv * d + kvh * d + j];
				}
				for (int j = 0; j < d; j++) {
					os[j] /= mass;
					e2 += (os[j] - od[j]) * (os[j] - od[j]);
					n2 += od[j] * od[j];
					if (o)
						o[j] = (float)os[j];
				}
				double recall = mass / z, err = sqrt(e2) / (n2 > 0 ? sqrt(n2) : 1.0);
				loc.count++;
				loc.recall_sum += recall;
				loc.recall_min = fmin(loc.recall_min, recall);
				loc.err_sum += err;
				loc.err_max = fmax(loc.err_max, err);
			}
		}
	}
	fpk_ds_eval_stats_add(st, &loc);
done:
	free(lv), free(ls), free(sc), free(sel), free(w), free(od), free(os);
	return rc;
}
