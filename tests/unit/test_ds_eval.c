/* test_ds_eval.c: Double Sparsity recall / output error on the CPU path (verify/ds_eval.c) against independent
 * float64 math. ctest -R ds_eval */
#include "ds_eval.h"
#include "fpk_test.h"

#include <math.h>

static uint64_t seed = 0x5851f42d4c957f2dull;

typedef struct data {
	int H, Hkv, d, L;
	float *q, *k, *v;
} data;

static void data_make(data *x, int H, int Hkv, int d, int L)
{
	x->H = H, x->Hkv = Hkv, x->d = d, x->L = L;
	x->q = malloc(sizeof(float) * L * H * d);
	x->k = malloc(sizeof(float) * L * Hkv * d);
	x->v = malloc(sizeof(float) * L * Hkv * d);
	for (int i = 0; i < L * H * d; i++)
		x->q[i] = fpk_test_randn(&seed);
	for (int i = 0; i < L * Hkv * d; i++) {
		x->k[i] = fpk_test_randn(&seed) * 1.5f;
		x->v[i] = fpk_test_randn(&seed);
	}
}

static void data_free(data *x) { free(x->q), free(x->k), free(x->v); }

/* float64 softmax weights of head h at query row i (len keys), and the mass of the best m by exact logit */
static double topmass(const data *x, int i, int h, int len, int m, double *out)
{
	int d = x->d, kvh = h / (x->H / x->Hkv);
	double *w = malloc(sizeof(double) * len), mx = -INFINITY, z = 0;
	for (int t = 0; t < len; t++) {
		double dot = 0;
		for (int j = 0; j < d; j++)
			dot += (double)x->q[((size_t)i * x->H + h) * d + j] * x->k[((size_t)t * x->Hkv + kvh) * d + j];
		w[t] = dot / sqrt((double)d);
		mx = fmax(mx, w[t]);
	}
	for (int t = 0; t < len; t++)
		z += (w[t] = exp(w[t] - mx));
	if (out)
		for (int j = 0; j < d; j++) {
			double o = 0;
			for (int t = 0; t < len; t++)
				o += w[t] / z * x->v[((size_t)t * x->Hkv + kvh) * d + j];
			out[j] = o;
		}
	double mass = 0;
	for (int s = 0; s < m; s++) { /* m largest */
		int best = -1;
		for (int t = 0; t < len; t++)
			if (w[t] >= 0 && (best < 0 || w[t] > w[best]))
				best = t;
		mass += w[best] / z;
		w[best] = -1;
	}
	free(w);
	return mass;
}

static void dense_positions_should_not_count_and_return_dense(void)
{
	data x;
	data_make(&x, 4, 2, 16, 30);
	int32_t ch[2 * 4] = {0, 1, 2, 3, 4, 5, 6, 7};
	fpk_ds_eval_cfg c = {4, 2, 16, 4, 16, 0, 1, 0, 0, 0, ch}; /* k = len: always dense */
	fpk_ds_eval_stats st;
	fpk_ds_eval_stats_init(&st);
	float *out = malloc(sizeof(float) * 30 * 4 * 16);
	for (int i = 0; i < 30 * 4 * 16; i++)
		out[i] = NAN;
	CHECK_OK(fpk_ds_eval_attend(&c, 30, 0, x.q, x.k, x.v, 30, out, &st));
	CHECK_EQ_INT(st.count, 0);
	double ref[16], err = 0;
	for (int i = 0; i < 30; i += 7)
		for (int h = 0; h < 4; h++) {
			topmass(&x, i, h, i + 1, 1, ref);
			for (int j = 0; j < 16; j++)
				err = fmax(err, fabs(ref[j] - out[((size_t)i * 4 + h) * 16 + j]));
		}
	CHECK(err < 1e-5);
	free(out);
	data_free(&x);
}

static void recall_with_all_channels_should_equal_true_topk_mass(void)
{
	data x;
	data_make(&x, 4, 4, 32, 200);
	int32_t ch[4 * 32];
	for (int h = 0; h < 4; h++)
		for (int j = 0; j < 32; j++)
			ch[h * 32 + j] = (j * 5 + h) % 32;
	double prev = 0;
	int ks[] = {4, 16, 64, 199};
	for (int ki = 0; ki < 4; ki++) {
		fpk_ds_eval_cfg c = {4, 4, 32, 32, 16, ks[ki], 0, 0, 1, 0, ch};
		fpk_ds_eval_stats st;
		fpk_ds_eval_stats_init(&st);
		CHECK_OK(fpk_ds_eval_attend(&c, 1, 199, x.q + 199 * 4 * 32, x.k, x.v, 200, NULL, &st));
		CHECK_EQ_INT(st.count, 4);
		double want = 0;
		for (int h = 0; h < 4; h++)
			want += topmass(&x, 199, h, 200, ks[ki], NULL);
		/* fp16 labels can swap near-tied tokens: allow a little */
		CHECK(fabs(st.recall_sum - want) < 2e-3 * 4);
		CHECK(st.recall_sum >= prev);
		CHECK(st.recall_min > 0 && st.recall_min <= 1 + 1e-12);
		prev = st.recall_sum;
		if (ks[ki] == 199)
			CHECK(st.err_max < 0.05);
	}
	data_free(&x);
}

static void group_selection_and_quantized_labels_should_give_sane_stats(void)
{
	data x;
	data_make(&x, 8, 2, 16, 120);
	int32_t ch[2 * 4] = {3, 7, 11, 15, 0, 2, 4, 6};
	int bits[] = {16, 8, 4};
	for (int b = 0; b < 3; b++) {
		fpk_ds_eval_cfg c = {8, 2, 16, 4, bits[b], 0, 8, 32, 0, 0, ch};
		fpk_ds_eval_stats st;
		fpk_ds_eval_stats_init(&st);
		float *out = malloc(sizeof(float) * 60 * 8 * 16);
		CHECK_OK(fpk_ds_eval_attend(&c, 60, 60, x.q + 60 * 8 * 16, x.k, x.v, 120, out, &st));
		CHECK_EQ_INT(st.count, 60 * 8); /* every position has len >= 61 >= 32 */
		CHECK(st.recall_min > 0 && st.recall_sum / st.count <= 1.0);
		CHECK(st.err_sum >= 0 && isfinite(st.err_max));
		int fin = 1;
		for (int i = 0; i < 60 * 8 * 16; i++)
			fin &= isfinite(out[i]);
		CHECK(fin);
		free(out);
	}
	data_free(&x);
}

static void bad_configs_should_be_rejected(void)
{
	int32_t ch[4] = {0, 1, 2, 99};
	fpk_ds_eval_cfg c = {4, 2, 16, 2, 16, 0, 16, 0, 0, 0, ch};
	fpk_ds_eval_stats st;
	fpk_ds_eval_stats_init(&st);
	float z[64] = {1};
	CHECK_ERR(fpk_ds_eval_attend(&c, 1, 0, z, z, z, 1, NULL, &st), FPK_EUSAGE, "channel 99");
	c.label_bits = 5;
	CHECK_ERR(fpk_ds_eval_attend(&c, 1, 0, z, z, z, 1, NULL, &st), FPK_EUSAGE, "label bits 5");
	c.label_bits = 16, c.per_head_labels = 1;
	CHECK_ERR(fpk_ds_eval_attend(&c, 1, 0, z, z, z, 1, NULL, &st), FPK_EUSAGE, "per-head selection");
}

int main(void)
{
	RUN(dense_positions_should_not_count_and_return_dense);
	RUN(recall_with_all_channels_should_equal_true_topk_mass);
	RUN(group_selection_and_quantized_labels_should_give_sane_stats);
	RUN(bad_configs_should_be_rejected);
	TEST_EXIT();
}
