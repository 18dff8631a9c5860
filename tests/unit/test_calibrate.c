/* test_calibrate.c: CPU calibration of stories260K on the TinyStories sample: shapes (GQA row counts), validity
 * through the reader, determinism, short data, and an independent scalar recomputation of one layer's statistics
 * from q/k activations dumped through the hook (with the test's own RoPE). Run: ctest -R test_calibrate. */
#include "calibrate.h"
#include "fpk_test.h"
#include "tokenizer.h"

#include <math.h>

static fpk_model *model;
static int *ids;
static size_t nids;

static int setup(void)
{
	fpk_tokenizer *t = NULL;
	char *text = NULL;
	size_t len = 0;
	CHECK_OK(fpk_model_load(&model, fpk_test_shared("testdata/stories260K"), 2));
	CHECK_OK(fpk_tokenizer_load(&t, fpk_test_shared("testdata/stories260K")));
	CHECK_OK(fpk_read_file(fpk_test_shared("testdata/tinystories-sample/tinystories_sample.txt"), &text, &len));
	if (t && text)
		CHECK_OK(fpk_tokenizer_encode(t, text, len, 1, &ids, &nids));
	free(text);
	fpk_tokenizer_free(t);
	return model && ids ? 0 : -1;
}

static void calibrate_should_give_gqa_rows_that_validate(void)
{
	fpk_calibration c;
	fpk_calibrate_opts o = {ids, nids, 0, 256, 512, 0, NULL, NULL, 0};
	CHECK_OK(fpk_calibrate_channels(model, &o, &c));
	CHECK_EQ_INT(c.blocks, (int)(nids / 512));
	CHECK(c.flags == FPK_CAL_SHORT_BLOCKS);
	CHECK_EQ_INT(c.tokens_used, c.blocks * 512);
	char *js = NULL;
	size_t len = 0;
	CHECK_OK(fpk_channels_to_json(&c.order, &js, &len));
	fpk_channels back;
	fpk_channels_expect e = {5, 8, 4, 8};
	CHECK_OK(fpk_channels_parse(&back, js, len, "calibrated", &e));
	CHECK_EQ_INT(back.modes, 7);
	CHECK_EQ_INT(fpk_channels_heads(&back, FPK_CH_Q), 8);
	CHECK_EQ_INT(fpk_channels_heads(&back, FPK_CH_QK), 8);
	CHECK_EQ_INT(fpk_channels_heads(&back, FPK_CH_K), 4);
	/* every row sorted by descending statistic, ties by index */
	int bad = 0;
	for (int m = 0; m < FPK_CH_MODES; m++)
		for (int l = 0; l < 5; l++)
			for (int h = 0; h < fpk_channels_heads(&back, m); h++) {
				const int *r = fpk_channels_row(&back, m, l, h);
				const double *s = c.stat[m] + ((size_t)l * fpk_channels_heads(&back, m) + h) * 8;
				for (int j = 1; j < 8; j++)
					bad += s[r[j - 1]] < s[r[j]] || (s[r[j - 1]] == s[r[j]] && r[j - 1] > r[j]) || !(s[r[j]] > 0);
			}
	CHECK_EQ_INT(bad, 0);
	/* determinism: same bytes twice */
	fpk_calibration c2;
	char *js2 = NULL;
	CHECK_OK(fpk_calibrate_channels(model, &o, &c2));
	CHECK_OK(fpk_channels_to_json(&c2.order, &js2, NULL));
	CHECK(js && js2 && !strcmp(js, js2));
	CHECK(!memcmp(c.stat[FPK_CH_QK], c2.stat[FPK_CH_QK], 5 * 8 * 8 * sizeof(double)));
	free(js);
	free(js2);
	fpk_channels_release(&back);
	fpk_calibration_release(&c);
	fpk_calibration_release(&c2);
}

/* ---- the independent check ---- */
#define LAYER 3
typedef struct dump {
	float *q, *k; /* (tokens, 64), (tokens, 32) pre-RoPE of LAYER */
	int *pos;
	size_t n;
} dump;

static int dump_hook(void *ud, int layer, int n, int pos0, const float *qp, const float *kp, const float *q,
	const float *k)
{
	dump *d = ud;
	(void)q;
	(void)k;
	if (layer != LAYER)
		return 0;
	memcpy(d->q + d->n * 64, qp, (size_t)n * 64 * sizeof(float));
	memcpy(d->k + d->n * 32, kp, (size_t)n * 32 * sizeof(float));
	for (int t = 0; t < n; t++)
		d->pos[d->n + (size_t)t] = pos0 + t;
	d->n += (size_t)n;
	return 0;
}

/* rotate-half RoPE written out plainly, in double: x[i], x[i+4] rotated by pos / 10000^(2i/8) */
static void simple_rope(const float *in, double *out, int pos)
{
	for (int i = 0; i < 4; i++) {
		double a = pos / pow(10000.0, 2.0 * i / 8.0);
		out[i] = in[i] * cos(a) - in[i + 4] * sin(a);
		out[i + 4] = in[i + 4] * cos(a) + in[i] * sin(a);
	}
}

static void calibrate_should_match_a_plain_scalar_recomputation(void)
{
	int nb = 2, len = 256;
	dump d = {malloc((size_t)nb * len * 64 * sizeof(float)), malloc((size_t)nb * len * 32 * sizeof(float)),
		malloc((size_t)nb * len * sizeof(int)), 0};
	fpk_model_state *st = NULL;
	fpk_model_hooks hk = {&d, dump_hook, NULL};
	CHECK_OK(fpk_model_state_new(model, len, len, &st));
	for (int b = 0; b < nb; b++)
		CHECK_OK(fpk_model_forward(model, st, ids + (size_t)b * len, len, 0, &hk, -1));
	fpk_model_state_free(st);
	CHECK_EQ_INT(d.n, nb * len);
	double qk[8][8] = {{0}}, q[8][8] = {{0}}, k[4][8] = {{0}};
	for (size_t t = 0; t < d.n; t++) {
		double kr[4][8];
		for (int g = 0; g < 4; g++) {
			simple_rope(d.k + t * 32 + g * 8, kr[g], d.pos[t]);
			for (int c = 0; c < 8; c++)
				k[g][c] += fabs(d.k[t * 32 + g * 8 + c]);
		}
		for (int h = 0; h < 8; h++) {
			double qr[8];
			simple_rope(d.q + t * 64 + h * 8, qr, d.pos[t]);
			for (int c = 0; c < 8; c++) {
				qk[h][c] += fabs(qr[c] * kr[h / 2][c]); /* 8 query heads over 4 kv heads: group of 2 */
				q[h][c] += fabs(d.q[t * 64 + h * 8 + c]);
			}
		}
	}
	fpk_calibration c;
	fpk_calibrate_opts o = {ids, nids, 0, nb, len, 0, NULL, NULL, 0};
	CHECK_OK(fpk_calibrate_channels(model, &o, &c));
	double worst = 0;
	for (int h = 0; h < 8; h++)
		for (int ch = 0; ch < 8; ch++) {
			double a = qk[h][ch] / (double)d.n, b = c.stat[FPK_CH_QK][(LAYER * 8 + h) * 8 + ch];
			worst = fmax(worst, fabs(a - b) / fabs(a));
			a = q[h][ch] / (double)d.n, b = c.stat[FPK_CH_Q][(LAYER * 8 + h) * 8 + ch];
			worst = fmax(worst, fabs(a - b) / fabs(a));
			if (h < 4) {
				a = k[h][ch] / (double)d.n, b = c.stat[FPK_CH_K][(LAYER * 4 + h) * 8 + ch];
				worst = fmax(worst, fabs(a - b) / fabs(a));
			}
		}
	fprintf(stderr, "layer %d: worst relative difference vs the scalar recomputation %.2e\n", LAYER, worst);
	CHECK(worst < 1e-4);
	fpk_calibration_release(&c);
	free(d.q);
	free(d.k);
	free(d.pos);
}

static void calibrate_should_use_a_short_text_as_one_block_and_refuse_nothing(void)
{
	fpk_calibration c;
	fpk_calibrate_opts o = {ids, 100, 1 << FPK_CH_K, 256, 512, 0, NULL, NULL, 0};
	CHECK_OK(fpk_calibrate_channels(model, &o, &c));
	CHECK(c.flags == FPK_CAL_PARTIAL_BLOCK && c.blocks == 1 && c.block_len == 100 && c.tokens_used == 100);
	CHECK(c.order.rows[FPK_CH_K] && !c.order.rows[FPK_CH_Q] && !c.stat[FPK_CH_QK]);
	fpk_calibration_release(&c);
	o.n_tokens = 0;
	CHECK_ERR(fpk_calibrate_channels(model, &o, &c), FPK_EUSAGE, "no tokens");
}

static void channel_order_should_break_ties_by_lower_index(void)
{
	double s[6] = {1, 3, 3, 0, 1, 5};
	int o[6], want[6] = {5, 1, 2, 0, 4, 3};
	fpk_channel_order(s, 6, o);
	CHECK(!memcmp(o, want, sizeof(o)));
	CHECK(fabs(fpk_channel_share(s, o, 6, 2) - 8.0 / 13.0) < 1e-12);
}

int main(void)
{
	if (setup())
		TEST_EXIT();
	RUN(channel_order_should_break_ties_by_lower_index);
	RUN(calibrate_should_give_gqa_rows_that_validate);
	RUN(calibrate_should_match_a_plain_scalar_recomputation);
	RUN(calibrate_should_use_a_short_text_as_one_block_and_refuse_nothing);
	free(ids);
	fpk_model_free(model);
	TEST_EXIT();
}
