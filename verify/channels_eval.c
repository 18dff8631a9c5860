/* channels_eval.c: Double Sparsity attention swapped into the engine through its attend hook, over real text:
 * perplexity vs dense, recall and output error, for calibrated, random and first-r channels. */
#include "channels_eval.h"
#include "channels.h"
#include "ds_eval.h"
#include "ds_eval_gpu.h"
#include "eval.h"
#include "model.h"
#include "model_gpu.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const fpk_ch_source_names[FPK_SRC_COUNT] = {"calibrated", "random", "first-r"};

typedef struct hook_ctx {
	fpk_ds_eval_cfg cfg;      /* shared settings; ch set per layer */
	const int32_t *ch;        /* (n_layers, label heads, r) */
	int label_heads;
	fpk_ds_eval_stats stats;
	int rc;
} hook_ctx;

static int ds_attend(void *ud, int layer, int n, int pos0, const float *q, const float *k, const float *v, int kv_len,
		     float *out)
{
	hook_ctx *h = ud;
	fpk_ds_eval_cfg c = h->cfg;
	c.ch = h->ch + (size_t)layer * (size_t)h->label_heads * (size_t)c.r;
	return fpk_ds_eval_attend(&c, n, pos0, q, k, v, kv_len, out, &h->stats);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* channels (n_layers, label_heads, r) for a source */
static void pick_channels(const fpk_channels *cc, int mode, fpk_ch_source src, int r, int label_heads, uint64_t seed,
			  int32_t *ch)
{
	int d = cc->head_dim;
	uint64_t s = seed ? seed : 0x9e3779b97f4a7c15ull;
	for (int l = 0; l < cc->n_layers; l++) {
		for (int h = 0; h < label_heads; h++) {
			int32_t *dst = ch + ((size_t)l * (size_t)label_heads + (size_t)h) * (size_t)r;
			if (src == FPK_SRC_CALIBRATED) {
				const int *row = fpk_channels_row(cc, mode, l, h);
				for (int j = 0; j < r; j++)
					dst[j] = row[j];
			} else if (src == FPK_SRC_FIRST) {
				for (int j = 0; j < r; j++)
					dst[j] = j;
			} else { /* a seeded random subset: partial Fisher-Yates */
				int perm[256];
				for (int j = 0; j < d; j++)
					perm[j] = j;
				for (int j = 0; j < r; j++) {
					int t = j + (int)(rnd(&s) % (uint64_t)(d - j));
					int x = perm[j];
					perm[j] = perm[t];
					perm[t] = x;
					dst[j] = perm[j];
				}
			}
		}
	}
}

int fpk_cheval_run(const fpk_cheval_opts *o, fpk_cheval_report *r)
{
	int rc, *ids = NULL;
	size_t n = 0;
	fpk_model *m = NULL;
	fpk_channels cc;
	int32_t *ch = NULL;
	memset(&cc, 0, sizeof(cc));
	memset(r, 0, sizeof(*r));
	const char *mode_name = o->mode ? o->mode : "qk";
	int mode = !strcmp(mode_name, "qk") ? FPK_CH_QK : !strcmp(mode_name, "q") ? FPK_CH_Q : !strcmp(mode_name, "k") ? FPK_CH_K : -1;
	if (mode < 0)
		return fpk_error_set(FPK_EUSAGE, "--label-mode '%s': expected qk, q or k", mode_name);
	int bits = o->label_bits ? o->label_bits : 16;
	if (bits != 16 && bits != 8 && bits != 4)
		return fpk_error_set(FPK_EUSAGE, "--label-bits %d: expected 16, 8 or 4", bits);
	double t_start = fpk_now_s();
	if ((rc = o->use_gpu ? fpk_model_load_lazy(&m, o->model, o->threads) : fpk_model_load(&m, o->model, o->threads)))
		return rc;
	r->gpu = o->use_gpu;
	r->precision = o->use_gpu ? fpk_model_weight_dtype(m) : FPK_F32;
	snprintf(r->device, sizeof(r->device), "cpu");
	fpk_channels_expect want = {m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.head_dim};
	if ((rc = fpk_channels_load(&cc, o->channels, &want)))
		goto done;
	if (!(cc.modes & (1 << mode))) {
		rc = fpk_error_set(FPK_EFORMAT, "'%s' has no %s_proj rows (needed by --label-mode %s)", o->channels, mode_name,
				   mode_name);
		goto done;
	}
	int d = m->cfg.head_dim;
	if (d > 256) {
		rc = fpk_error_set(FPK_EUSAGE, "%s: head_dim %d: Double Sparsity evaluation takes head_dim <= 256", o->model, d);
		goto done;
	}
	if (o->n_r > FPK_CHEVAL_MAX || o->n_k > FPK_CHEVAL_MAX) {
		rc = fpk_error_set(FPK_EUSAGE, "at most %d heavy-channel and %d heavy-token settings", FPK_CHEVAL_MAX,
				   FPK_CHEVAL_MAX);
		goto done;
	}
	int rs[FPK_CHEVAL_MAX], nr = o->n_r;
	if (nr <= 0) { /* default: d/8 and d/4 (at least 1) */
		rs[0] = d / 8 > 0 ? d / 8 : 1;
		rs[1] = d / 4 > rs[0] ? d / 4 : rs[0] + 1;
		nr = 2;
	} else {
		memcpy(rs, o->r, sizeof(int) * (size_t)nr);
	}
	for (int i = 0; i < nr; i++) {
		if (rs[i] < 1 || rs[i] > d) {
			rc = fpk_error_set(FPK_EUSAGE, "--heavy-channels %d: expected 1..%d (head_dim)", rs[i], d);
			goto done;
		}
	}
	int nk = o->n_k > 0 ? o->n_k : 1;
	int kf[FPK_CHEVAL_MAX] = {0}, kd[FPK_CHEVAL_MAX] = {16};
	if (o->n_k > 0) {
		memcpy(kf, o->k_fixed, sizeof(int) * (size_t)nk);
		memcpy(kd, o->k_div, sizeof(int) * (size_t)nk);
	}
	int ctx = o->context > 0 ? o->context : (m->cfg.max_pos < 512 ? m->cfg.max_pos : 512);
	if (ctx > m->cfg.max_pos) {
		rc = fpk_error_set(FPK_EUSAGE, "--context %d exceeds max_position_embeddings %d", ctx, m->cfg.max_pos);
		goto done;
	}
	if (o->tokens_path) {
		rc = fpk_tokens_read(o->tokens_path, m->cfg.vocab, &ids, &n);
		r->documents = 1;
	} else if (o->text_path) {
		rc = fpk_eval_tokenize(o->model, o->text_path, &ids, &n, &r->documents);
	} else {
		rc = fpk_error_set(FPK_EUSAGE, "verify --channels needs --data TEXT or --tokens FILE");
	}
	if (rc)
		goto done;
	if (o->max_tokens && n > o->max_tokens)
		n = o->max_tokens;
	r->tokens = n;
	r->n_layers = m->cfg.n_layers;
	r->n_heads = m->cfg.n_heads;
	r->n_kv_heads = m->cfg.n_kv_heads;
	r->head_dim = d;
	r->label_bits = bits;
	r->context = ctx;
	r->dense_below = o->dense_below > 0 ? o->dense_below : 64;
	snprintf(r->mode, sizeof(r->mode), "%s", mode_name);
	int per_head = mode != FPK_CH_K;
	int label_heads = per_head ? m->cfg.n_heads : m->cfg.n_kv_heads;
	ch = malloc(sizeof(int32_t) * (size_t)m->cfg.n_layers * (size_t)label_heads * (size_t)d);
	if (!ch) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	double nll;
	size_t cnt;
	uint64_t total = 1 + (uint64_t)nr * (uint64_t)nk * FPK_SRC_COUNT, step = 0;
	if (o->progress)
		o->progress(o->ud, "dense perplexity", step, total);
	if (o->use_gpu) {
		fpk_gpu_eval_info gi;
		if ((rc = fpk_model_gpu_nll_hooked(m, ids, n, ctx, r->precision, NULL, &nll, &cnt, NULL, 0, &gi)))
			goto done;
		snprintf(r->device, sizeof(r->device), "%s", gi.device);
	} else if ((rc = fpk_model_nll(m, ids, n, ctx, NULL, &nll, &cnt))) {
		goto done;
	}
	r->ppl_dense = exp(nll);
	for (int ki = 0; ki < nk; ki++) {
		for (int ri = 0; ri < nr; ri++) {
			for (int src = 0; src < FPK_SRC_COUNT; src++) {
				if (o->progress)
					o->progress(o->ud, "double sparsity", ++step, total);
				hook_ctx h;
				memset(&h, 0, sizeof(h));
				h.cfg.heads = m->cfg.n_heads;
				h.cfg.kv_heads = m->cfg.n_kv_heads;
				h.cfg.head_dim = d;
				h.cfg.r = rs[ri];
				h.cfg.label_bits = bits;
				h.cfg.topk = kf[ki];
				h.cfg.topk_div = kd[ki];
				h.cfg.dense_below = r->dense_below;
				h.cfg.sel_per_head = per_head;
				h.cfg.per_head_labels = per_head;
				h.label_heads = label_heads;
				h.ch = ch;
				pick_channels(&cc, mode, (fpk_ch_source)src, rs[ri], label_heads, o->seed + 1 + (uint64_t)ri, ch);
				fpk_ds_eval_stats_init(&h.stats);
				if (o->use_gpu) {
					fpk_ds_gpu *dg = NULL;
					fpk_ds_eval_cfg gc = h.cfg;
					gc.ch = ch;
					if ((rc = fpk_ds_gpu_new(&gc, m->cfg.n_layers, r->precision == FPK_BF16 ? FPK_BF16 : FPK_F16, &dg)))
						goto done;
					fpk_gpu_attend_hook gh = {dg, fpk_ds_gpu_attend, fpk_ds_gpu_max_windows(dg)};
					rc = fpk_model_gpu_nll_hooked(m, ids, n, ctx, r->precision, &gh, &nll, &cnt, NULL, 0, NULL);
					if (!rc)
						rc = fpk_ds_gpu_stats(dg, &h.stats);
					double sec;
					uint64_t steps;
					fpk_ds_gpu_timing(dg, &sec, &steps);
					r->ds_seconds += sec;
					r->ds_steps += steps;
					fpk_ds_gpu_free(dg);
					if (rc)
						goto done;
				} else {
					fpk_model_hooks hooks = {.ud = &h, .attend = ds_attend};
					if ((rc = fpk_model_nll(m, ids, n, ctx, &hooks, &nll, &cnt)))
						goto done;
				}
				fpk_cheval_row *row = &r->rows[r->n_rows++];
				row->r = rs[ri];
				row->k_fixed = kf[ki];
				row->k_div = kd[ki];
				row->source = (fpk_ch_source)src;
				row->ppl = exp(nll);
				row->rel_ppl_increase = (row->ppl - r->ppl_dense) / r->ppl_dense;
				row->evaluated = h.stats.count;
				row->recall_mean = h.stats.count ? h.stats.recall_sum / (double)h.stats.count : 1.0;
				row->recall_min = h.stats.count ? h.stats.recall_min : 1.0;
				row->err_mean = h.stats.count ? h.stats.err_sum / (double)h.stats.count : 0.0;
				row->err_max = h.stats.err_max;
			}
		}
	}
	if (o->progress)
		o->progress(o->ud, "double sparsity", total, total);
	double bound = o->max_ppl_increase > 0 ? o->max_ppl_increase : 0.05;
	r->seconds = fpk_now_s() - t_start;
	/* a run where every position stayed dense (short context, k >= length) proves nothing: it fails */
	r->pass = r->n_rows > 0 && r->rows[0].source == FPK_SRC_CALIBRATED && r->rows[0].evaluated > 0 &&
		  r->rows[0].rel_ppl_increase <= bound && isfinite(r->rows[0].ppl);
done:
	free(ch);
	free(ids);
	fpk_channels_release(&cc);
	fpk_model_free(m);
	return rc;
}
