/* test_ds_ref.c: the scalar Double Sparsity references (kernels/ds_attention_ref.c) against naive float64 math:
 * top-k exactness with ties, quantized-label bounds, GQA units, variable lengths, dense fallback. ctest -R ds_ref */
#include "ds_attention_ref.h"
#include "fpk_test.h"

#include <math.h>

static uint64_t seed = 0x9e3779b97f4a7c15ull;

static uint16_t rnd16(int dt, float x) { return dt == FPK_BF16 ? fpk_f32_to_bf16(x) : fpk_f32_to_f16(x); }
static double ld16(int dt, const uint16_t *a, size_t i) { return dt == FPK_BF16 ? fpk_bf16_to_f32(a[i]) : fpk_f16_to_f32(a[i]); }

/* naive top-k by repeated arg-max with the lower index winning ties */
static void naive_topk(const float *s, int n, int k, int32_t *idx)
{
	char *used = calloc(n, 1);
	for (int i = 0; i < k; i++) {
		int best = -1;
		for (int t = 0; t < n; t++)
			if (!used[t] && (best < 0 || fpk_ds_key(s[t]) > fpk_ds_key(s[best])))
				best = t;
		used[best] = 1;
	}
	int j = 0;
	for (int t = 0; t < n; t++)
		if (used[t])
			idx[j++] = t;
	free(used);
}

static void topk_should_match_naive_selection_with_ties_to_lower_index(void)
{
	for (int iter = 0; iter < 60; iter++) {
		int n = 1 + (int)(fpk_test_rand(&seed) % 700), k = 1 + (int)(fpk_test_rand(&seed) % n);
		int levels = iter % 3 == 0 ? 3 : iter % 3 == 1 ? 40 : 0; /* heavy ties, some ties, continuous */
		float *s = malloc(sizeof(float) * n);
		int32_t *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n);
		for (int t = 0; t < n; t++) {
			float x = fpk_test_randn(&seed);
			s[t] = levels ? (float)(1 + (int)(fpk_test_rand(&seed) % levels)) * (iter & 1 ? -0.5f : 0.25f) : x;
		}
		CHECK_OK(fpk_ds_ref_topk(s, n, k, a));
		naive_topk(s, n, k, b);
		int same = 1;
		for (int i = 0; i < k; i++)
			same &= a[i] == b[i];
		CHECK(same);
		free(s), free(a), free(b);
	}
	/* all equal: the first k tokens */
	float e[50];
	int32_t id[50];
	for (int t = 0; t < 50; t++)
		e[t] = 1.5f;
	CHECK_OK(fpk_ds_ref_topk(e, 50, 7, id));
	for (int i = 0; i < 7; i++)
		CHECK_EQ_INT(id[i], i);
}

static void score_keys_should_order_like_floats(void)
{
	for (int i = 0; i < 20000; i++) {
		float a = fpk_test_randn(&seed) * (float)(1 << (i % 20)), b = fpk_test_randn(&seed) * 1e-3f;
		if (a == 0.0f || b == 0.0f)
			continue;
		CHECK((a < b) == (fpk_ds_key(a) < fpk_ds_key(b)));
		CHECK((a > b) == (fpk_ds_key(a) > fpk_ds_key(b)));
	}
}

static void quantized_labels_should_stay_within_bound(void)
{
	float x[256];
	uint8_t row[260];
	for (int iter = 0; iter < 3000; iter++) {
		int fmt = iter & 1 ? FPK_DS_LABEL_Q8 : FPK_DS_LABEL_Q4, qmax = fmt == FPK_DS_LABEL_Q8 ? 127 : 7;
		int r = 1 + (int)(fpk_test_rand(&seed) % 256);
		float mag = iter % 7 == 0 ? 1e-9f : iter % 7 == 1 ? 3000.0f : 1.0f + (float)(iter % 5);
		for (int j = 0; j < r; j++)
			x[j] = fpk_test_randn(&seed) * mag;
		if (iter % 11 == 0)
			for (int j = 0; j < r; j++)
				x[j] = 0.0f; /* all-zero row: scale 0 */
		uint16_t sb;
		memset(row, 0xCD, sizeof(row));
		fpk_ds_ref_quantize(x, r, fmt, row, &sb);
		double amax = 0;
		for (int j = 0; j < r; j++)
			amax = fmax(amax, fabs(x[j]));
		double sc = fpk_f16_to_f32(sb);
		CHECK(sc >= amax / qmax);
		CHECK(sc <= fmax(amax / qmax * (1 + 1.0 / 1024), 5.97e-8));
		int ok = 1;
		for (int j = 0; j < r; j++) {
			double v = fpk_ds_ref_label_value(row, sb, fmt, FPK_F16, j);
			ok &= fabs(v - x[j]) <= sc / 2 * (1 + 1e-6) + 1e-30;
		}
		CHECK(ok);
		if (fmt == FPK_DS_LABEL_Q4 && r % 2) /* the pad nibble and pad bytes are zero */
			CHECK((row[r / 2] >> 4) == 0);
	}
}

/* a random problem in host memory */
typedef struct prob {
	fpk_ds_shape s;
	fpk_ds_label_cfg c;
	uint16_t *q, *k, *v, *scales;
	uint8_t *labels;
	int32_t *lens, *ch;
} prob;

static void prob_make(prob *p, int B, int H, int Hkv, int d, int L, int r, int fmt, int per_head_labels, int dt)
{
	memset(p, 0, sizeof(*p));
	p->s = (fpk_ds_shape){B, H, Hkv, d, L, dt};
	int LH = per_head_labels ? H : Hkv;
	p->ch = malloc(sizeof(int32_t) * LH * r);
	for (int lh = 0; lh < LH; lh++) { /* r distinct channels */
		int perm[256];
		for (int i = 0; i < d; i++)
			perm[i] = i;
		for (int i = 0; i < r; i++) {
			int j = i + (int)(fpk_test_rand(&seed) % (d - i)), t = perm[i];
			perm[i] = perm[j], perm[j] = t;
			p->ch[lh * r + i] = perm[i];
		}
	}
	p->c = (fpk_ds_label_cfg){r, fmt, per_head_labels, p->ch};
	size_t nq = (size_t)B * H * d, nk = (size_t)B * Hkv * L * d, lb, sb;
	p->q = malloc(2 * nq), p->k = malloc(2 * nk), p->v = malloc(2 * nk);
	for (size_t i = 0; i < nq; i++)
		p->q[i] = rnd16(dt, fpk_test_randn(&seed));
	for (size_t i = 0; i < nk; i++) {
		p->k[i] = rnd16(dt, fpk_test_randn(&seed));
		p->v[i] = rnd16(dt, fpk_test_randn(&seed));
	}
	fpk_ds_label_cache_bytes(&p->s, &p->c, &lb, &sb);
	p->labels = malloc(lb);
	p->scales = malloc(sb ? sb : 2);
	p->lens = malloc(sizeof(int32_t) * B);
	for (int b = 0; b < B; b++)
		p->lens[b] = b == 0 ? L : 1 + (int)(fpk_test_rand(&seed) % L);
	fpk_ds_label_params lp = {p->s, p->c, p->k, p->lens, NULL, p->labels, p->scales};
	CHECK_OK(fpk_ds_ref_label_build(&lp));
}

static void prob_free(prob *p)
{
	free(p->q), free(p->k), free(p->v), free(p->scales), free(p->labels), free(p->lens), free(p->ch);
}

/* float64 attention of head h over a token list; returns max |out - ref| / max |ref| */
static double attn_err(const prob *p, int b, int h, const int32_t *idx, int n, const float *out)
{
	const fpk_ds_shape *s = &p->s;
	int d = s->head_dim, kvh = h / (s->heads / s->kv_heads);
	double *w = malloc(sizeof(double) * n), m = -INFINITY, sum = 0, err = 0, mx = 0;
	for (int i = 0; i < n; i++) {
		size_t row = (((size_t)b * s->kv_heads + kvh) * s->max_len + (idx ? idx[i] : i)) * d;
		double dot = 0;
		for (int j = 0; j < d; j++)
			dot += ld16(s->kv_dtype, p->q, ((size_t)b * s->heads + h) * d + j) * ld16(s->kv_dtype, p->k, row + j);
		w[i] = dot / sqrt((double)d);
		m = fmax(m, w[i]);
	}
	for (int i = 0; i < n; i++)
		sum += (w[i] = exp(w[i] - m));
	for (int j = 0; j < d; j++) {
		double o = 0;
		for (int i = 0; i < n; i++)
			o += w[i] * ld16(s->kv_dtype, p->v, (((size_t)b * s->kv_heads + kvh) * s->max_len + (idx ? idx[i] : i)) * d + j);
		o /= sum;
		err = fmax(err, fabs(o - out[j]));
		mx = fmax(mx, fabs(o));
	}
	free(w);
	return err / (mx > 0 ? mx : 1);
}

/* float64 scores of unit u: (sum of the unit's heads' q[ch]) . dequantized label */
static void scores64(const prob *p, int sel_per_head, int u, double *sc)
{
	const fpk_ds_shape *s = &p->s;
	int G = s->heads / s->kv_heads, per = sel_per_head ? s->heads : s->kv_heads, b = u / per, w = u % per;
	int LH = p->c.per_head_labels ? s->heads : s->kv_heads;
	int lh = p->c.per_head_labels ? w : (sel_per_head ? w / G : w), r = p->c.r;
	size_t rb = fpk_ds_label_row_bytes(&p->c);
	for (int t = 0; t < p->lens[b]; t++) {
		size_t lrow = ((size_t)b * LH + lh) * s->max_len + t;
		double acc = 0;
		for (int j = 0; j < r; j++) {
			double qs = 0;
			for (int h = sel_per_head ? w : w * G; h < (sel_per_head ? w + 1 : (w + 1) * G); h++)
				qs += ld16(s->kv_dtype, p->q, ((size_t)b * s->heads + h) * s->head_dim + p->ch[lh * r + j]);
			acc += qs * fpk_ds_ref_label_value(p->labels + lrow * rb, p->c.fmt ? p->scales[lrow] : 0, p->c.fmt,
							   s->kv_dtype, j);
		}
		sc[t] = acc;
	}
}

static void check_decode(int B, int H, int Hkv, int d, int L, int r, int fmt, int phl, int sph, int dt, int topk_div,
			 int dense_below)
{
	prob p;
	prob_make(&p, B, H, Hkv, d, L, r, fmt, phl, dt);
	int per = sph ? H : Hkv, U = B * per, kcap = (L + topk_div - 1) / topk_div;
	float *out = malloc(sizeof(float) * B * H * d);
	int32_t *idx = malloc(sizeof(int32_t) * U * kcap), *nsel = malloc(sizeof(int32_t) * U);
	for (int i = 0; i < B * H * d; i++)
		out[i] = NAN;
	fpk_ds_decode_params dp = {p.s, p.c, p.q, p.k, p.v, p.lens, p.labels, p.scales, sph, 0, topk_div, dense_below, out, 0};
	CHECK_OK(fpk_ds_ref_decode(&dp, idx, nsel, kcap));
	double *sc = malloc(sizeof(double) * L), worst = 0;
	int sel_ok = 1, fallback_ok = 1;
	for (int u = 0; u < U; u++) {
		int b = u / per, w = u % per, len = p.lens[b], n = nsel[u];
		int kb = fpk_ds_seq_topk(&dp, len);
		if (!kb) {
			fallback_ok &= n == -len;
		} else {
			fallback_ok &= n == kb;
			/* a valid top-k in float64 up to rounding of the float scores */
			scores64(&p, sph, u, sc);
			char *in = calloc(len, 1);
			double lo = INFINITY, hi = -INFINITY, scale = 0;
			for (int i = 0; i < n; i++) {
				sel_ok &= idx[u * kcap + i] >= 0 && idx[u * kcap + i] < len && (i == 0 || idx[u * kcap + i] > idx[u * kcap + i - 1]);
				in[idx[u * kcap + i]] = 1;
			}
			for (int t = 0; t < len; t++) {
				scale = fmax(scale, fabs(sc[t]));
				if (in[t])
					lo = fmin(lo, sc[t]);
				else
					hi = fmax(hi, sc[t]);
			}
			sel_ok &= lo >= hi - 1e-5 * (scale + 1);
			free(in);
		}
		int h0 = sph ? w : w * (H / Hkv), nh = sph ? 1 : H / Hkv;
		for (int h = h0; h < h0 + nh; h++)
			worst = fmax(worst, attn_err(&p, b, h, n < 0 ? NULL : idx + (size_t)u * kcap, n < 0 ? len : n,
						     out + ((size_t)b * H + h) * d));
	}
	CHECK(sel_ok);
	CHECK(fallback_ok);
	if (worst > 1e-5)
		fprintf(stderr, "  decode B%d H%d Hkv%d d%d L%d r%d fmt%d: worst rel err %.3g\n", B, H, Hkv, d, L, r, fmt, worst);
	CHECK(worst <= 1e-5);
	free(sc), free(out), free(idx), free(nsel);
	prob_free(&p);
}

static void decode_should_match_float64_over_shapes_gqa_and_lengths(void)
{
	check_decode(3, 8, 2, 64, 700, 8, FPK_DS_LABEL_16, 0, 0, FPK_F16, 16, 100);
	check_decode(2, 8, 2, 64, 500, 16, FPK_DS_LABEL_Q4, 0, 1, FPK_F16, 8, 0);
	check_decode(2, 6, 2, 24, 400, 5, FPK_DS_LABEL_Q8, 1, 1, FPK_BF16, 4, 50);
	check_decode(4, 4, 4, 8, 300, 2, FPK_DS_LABEL_16, 0, 0, FPK_BF16, 16, 0);
	check_decode(2, 32, 8, 128, 1000, 8, FPK_DS_LABEL_Q4, 0, 0, FPK_F16, 16, 200);
	check_decode(1, 16, 1, 256, 600, 31, FPK_DS_LABEL_Q8, 0, 0, FPK_F16, 3, 0);
}

static void labels_16_should_copy_channels_and_append_should_equal_build(void)
{
	prob p;
	prob_make(&p, 2, 4, 2, 32, 90, 6, FPK_DS_LABEL_16, 0, FPK_BF16);
	int ok = 1;
	size_t rb = fpk_ds_label_row_bytes(&p.c);
	for (int b = 0; b < 2; b++)
		for (int lh = 0; lh < 2; lh++)
			for (int t = 0; t < p.lens[b]; t++)
				for (int j = 0; j < 6; j++) {
					uint16_t h;
					memcpy(&h, p.labels + (((size_t)b * 2 + lh) * 90 + t) * rb + 2 * j, 2);
					ok &= h == p.k[(((size_t)b * 2 + lh) * 90 + t) * 32 + p.ch[lh * 6 + j]];
				}
	CHECK(ok);
	prob_free(&p);
	/* appending token by token gives the same bytes as one build (q4) */
	prob_make(&p, 2, 4, 2, 32, 60, 7, FPK_DS_LABEL_Q4, 0, FPK_F16);
	size_t lb, sb;
	fpk_ds_label_cache_bytes(&p.s, &p.c, &lb, &sb);
	rb = fpk_ds_label_row_bytes(&p.c);
	uint8_t *l2 = calloc(lb, 1);
	uint16_t *s2 = calloc(sb / 2, 2);
	int32_t from[2], lens[2];
	for (int t = 0; t < 60; t++) {
		for (int b = 0; b < 2; b++) {
			lens[b] = t + 1 <= p.lens[b] ? t + 1 : p.lens[b];
			from[b] = t < p.lens[b] ? t : p.lens[b];
		}
		fpk_ds_label_params lp = {p.s, p.c, p.k, lens, from, l2, s2};
		CHECK_OK(fpk_ds_ref_label_build(&lp));
	}
	ok = 1;
	for (int b = 0; b < 2; b++)
		for (int lh = 0; lh < 2; lh++)
			for (int t = 0; t < p.lens[b]; t++) {
				size_t row = ((size_t)b * 2 + lh) * 60 + t;
				ok &= !memcmp(l2 + row * rb, p.labels + row * rb, rb) && s2[row] == p.scales[row];
			}
	CHECK(ok);
	free(l2), free(s2);
	prob_free(&p);
}

static void bad_shapes_should_be_rejected(void)
{
	fpk_ds_shape s = {1, 6, 4, 64, 10, FPK_F16};
	CHECK_ERR(fpk_ds_check_shape(&s), FPK_EUSAGE, "multiple of kv heads");
	s = (fpk_ds_shape){1, 8, 4, 12, 10, FPK_F16};
	CHECK_ERR(fpk_ds_check_shape(&s), FPK_EUSAGE, "head_dim 12");
	s.head_dim = 64;
	int32_t ch[4] = {0};
	fpk_ds_label_cfg c = {65, FPK_DS_LABEL_16, 0, ch};
	CHECK_ERR(fpk_ds_check_cfg(&s, &c), FPK_EUSAGE, "r = 65");
}

int main(void)
{
	RUN(topk_should_match_naive_selection_with_ties_to_lower_index);
	RUN(score_keys_should_order_like_floats);
	RUN(quantized_labels_should_stay_within_bound);
	RUN(labels_16_should_copy_channels_and_append_should_equal_build);
	RUN(decode_should_match_float64_over_shapes_gqa_and_lengths);
	RUN(bad_shapes_should_be_rejected);
	TEST_EXIT();
}
