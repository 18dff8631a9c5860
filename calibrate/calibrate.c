/* calibrate.c: channel calibration over token blocks with the engine's q/k hook (CPU) or the layer-streamed GPU
 * path; statistics, orders and shares. Tested by tests/unit/test_calibrate.c. */
#include "calibrate.h"
#include "model_gpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int heads_of(const fpk_model *m, int mode)
{
	return mode == FPK_CH_K ? m->cfg.n_kv_heads : m->cfg.n_heads;
}

int fpk_qk_sums_hook(void *ud, int layer, int n, int pos0, const float *q_pre, const float *k_pre, const float *q_post,
	const float *k_post)
{
	fpk_qk_sums *s = ud;
	const fpk_model *m = s->m;
	int H = m->cfg.n_heads, Hkv = m->cfg.n_kv_heads, d = m->cfg.head_dim, grp = H / Hkv;
	(void)pos0;
	if (s->modes & (1 << FPK_CH_Q)) {
		double *acc = s->sum[FPK_CH_Q] + (size_t)layer * H * d;
		for (int t = 0; t < n; t++)
			for (int i = 0; i < H * d; i++)
				acc[i] += fabsf(q_pre[(size_t)t * H * d + i]);
	}
	if (s->modes & (1 << FPK_CH_K)) {
		double *acc = s->sum[FPK_CH_K] + (size_t)layer * Hkv * d;
		for (int t = 0; t < n; t++)
			for (int i = 0; i < Hkv * d; i++)
				acc[i] += fabsf(k_pre[(size_t)t * Hkv * d + i]);
	}
	if (s->modes & (1 << FPK_CH_QK)) {
		double *acc = s->sum[FPK_CH_QK] + (size_t)layer * H * d;
		for (int t = 0; t < n; t++)
			for (int h = 0; h < H; h++) {
				const float *q = q_post + (size_t)t * H * d + (size_t)h * d;
				const float *k = k_post + (size_t)t * Hkv * d + (size_t)(h / grp) * d;
				for (int c = 0; c < d; c++)
					acc[h * d + c] += fabsf(q[c] * k[c]);
			}
	}
	if (layer == 0)
		s->tokens += (size_t)n;
	return 0;
}

void fpk_channel_order(const double *stat, int d, int *order)
{
	/* insertion sort on (stat desc, index asc): d is at most a few hundred */
	for (int i = 0; i < d; i++) {
		int j = i;
		while (j > 0 && stat[order[j - 1]] < stat[i])
			j--;
		memmove(order + j + 1, order + j, (size_t)(i - j) * sizeof(int));
		order[j] = i;
	}
}

double fpk_channel_share(const double *stat, const int *order, int d, int r)
{
	double top = 0, all = 0;
	if (r < 1)
		r = 1;
	if (r > d)
		r = d;
	for (int j = 0; j < d; j++) {
		all += stat[order[j]];
		if (j < r)
			top += stat[order[j]];
	}
	return all > 0 ? top / all : 0;
}

void fpk_calibration_release(fpk_calibration *c)
{
	for (int m = 0; m < FPK_CH_MODES; m++)
		free(c->stat[m]);
	fpk_channels_release(&c->order);
	memset(c, 0, sizeof(*c));
}

int fpk_calibrate_channels(const fpk_model *m, const fpk_calibrate_opts *o, fpk_calibration *out)
{
	int rc = 0, modes = o->modes ? o->modes : (1 << FPK_CH_MODES) - 1;
	int want = o->blocks > 0 ? o->blocks : 256, len = o->block_len > 0 ? o->block_len : 512;
	const fpk_model_config *c = &m->cfg;
	fpk_model_state *st = NULL;
	fpk_calibration r;
	memset(&r, 0, sizeof(r));
	memset(out, 0, sizeof(*out));
	double t0 = fpk_now_s();
	if (o->n_tokens == 0)
		return fpk_error_set(FPK_EUSAGE, "calibration data holds no tokens");
	if (modes & ~((1 << FPK_CH_MODES) - 1))
		return fpk_error_set(FPK_EUSAGE, "calibration modes 0x%x are not a subset of q, k, qk", modes);
	size_t full = o->n_tokens / (size_t)len;
	int nb;
	if (full == 0) {
		nb = 1;
		len = (int)o->n_tokens;
		r.flags |= FPK_CAL_PARTIAL_BLOCK;
	} else {
		nb = full < (size_t)want ? (int)full : want;
		if (nb < want)
			r.flags |= FPK_CAL_SHORT_BLOCKS;
	}
	if (c->arch == FPK_ARCH_OPT && len > c->max_pos)
		return fpk_error_set(FPK_EUSAGE, "block length %d exceeds the model's %d learned positions", len, c->max_pos);
	r.n_layers = c->n_layers;
	r.n_heads = c->n_heads;
	r.n_kv_heads = c->n_kv_heads;
	r.head_dim = c->head_dim;
	r.modes = modes;
	r.blocks = nb;
	r.block_len = len;
	r.tokens_used = (size_t)nb * (size_t)len;
	fpk_qk_sums sums = {m, modes, {NULL, NULL, NULL}, 0};
	for (int k = 0; k < FPK_CH_MODES; k++) {
		if (!(modes >> k & 1))
			continue;
		size_t cnt = (size_t)c->n_layers * (size_t)heads_of(m, k) * (size_t)c->head_dim;
		if (!(sums.sum[k] = calloc(cnt, sizeof(double)))) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
	}
	if (o->use_gpu) {
		if ((rc = fpk_model_gpu_qk_sums(m, o->tokens, nb, len, modes, o->mixed, sums.sum, NULL, o->progress, o->progress_ud)))
			goto done;
		sums.tokens = r.tokens_used;
	} else {
		fpk_model_hooks hooks = {&sums, fpk_qk_sums_hook, NULL};
		if ((rc = fpk_model_state_new(m, len, len, &st)))
			goto done;
		for (int b = 0; b < nb; b++) {
			if ((rc = fpk_model_forward(m, st, o->tokens + (size_t)b * len, len, 0, &hooks, -1)))
				goto done;
			if (o->progress)
				o->progress(o->progress_ud, "calibrate", (uint64_t)b + 1, (uint64_t)nb);
		}
	}
	/* means and orders */
	r.order.n_layers = c->n_layers;
	r.order.n_heads = c->n_heads;
	r.order.n_kv_heads = c->n_kv_heads;
	r.order.head_dim = c->head_dim;
	r.order.modes = modes;
	for (int k = 0; k < FPK_CH_MODES; k++) {
		if (!(modes >> k & 1))
			continue;
		size_t rows = (size_t)c->n_layers * (size_t)heads_of(m, k), d = (size_t)c->head_dim;
		if (!(r.order.rows[k] = malloc(rows * d * sizeof(int)))) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		r.stat[k] = sums.sum[k];
		sums.sum[k] = NULL;
		for (size_t i = 0; i < rows * d; i++)
			r.stat[k][i] /= (double)sums.tokens;
		for (size_t i = 0; i < rows; i++)
			fpk_channel_order(r.stat[k] + i * d, (int)d, r.order.rows[k] + i * d);
	}
	r.seconds = fpk_now_s() - t0;
	*out = r;
	memset(&r, 0, sizeof(r));
done:
	for (int k = 0; k < FPK_CH_MODES; k++)
		free(sums.sum[k]);
	fpk_model_state_free(st);
	fpk_calibration_release(&r);
	return rc;
}
