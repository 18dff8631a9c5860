/* eval.c: perplexity of a pack and of its dense references with the same engine, plus the max logit difference
 * on the first window. CPU engine: the pack's encoded weights are decoded from Tiled-CSL by the loader. GPU engine:
 * the model is loaded lazily and the encoded weights run through the SpMM kernel straight from their arrays; every
 * model of one run is computed at the pack's weight precision. */
#include "eval.h"
#include "model.h"
#include "model_gpu.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fpk_eval_tokenize(const char *model_dir, const char *path, int **ids, size_t *n, size_t *docs)
{
	fpk_tokenizer *tok = NULL;
	char *text = NULL;
	size_t len = 0, cap = 0;
	int *all = NULL, rc;
	*ids = NULL;
	*n = *docs = 0;
	if ((rc = fpk_tokenizer_load(&tok, model_dir)) || (rc = fpk_read_file(path, &text, &len)))
		goto done;
	const size_t sl = strlen(FPK_EVAL_DOC_SEP);
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *q = strstr(p, FPK_EVAL_DOC_SEP);
		const char *e = q ? q : end;
		while (p < e && (*p == '\n' || *p == ' ' || *p == '\r'))
			p++;
		size_t dl = (size_t)(e - p);
		while (dl > 0 && (p[dl - 1] == '\n' || p[dl - 1] == ' ' || p[dl - 1] == '\r'))
			dl--;
		if (dl > 0) {
			int *d = NULL;
			size_t dn = 0;
			if ((rc = fpk_tokenizer_encode(tok, p, dl, 1, &d, &dn)))
				goto done;
			if (*n + dn > cap) {
				size_t nc = cap ? cap * 2 : 4096;
				while (nc < *n + dn)
					nc *= 2;
				int *na = realloc(all, nc * sizeof(*na));
				if (!na) {
					free(d);
					rc = fpk_error_set(FPK_EIO, "out of memory");
					goto done;
				}
				all = na;
				cap = nc;
			}
			memcpy(all + *n, d, dn * sizeof(*d));
			*n += dn;
			(*docs)++;
			free(d);
		}
		p = q ? q + sl : end;
	}
	if (*n < 2)
		rc = fpk_error_set(FPK_EFORMAT, "'%s': too little text to evaluate (%zu tokens)", path, *n);
done:
	fpk_tokenizer_free(tok);
	free(text);
	if (rc) {
		free(all);
		all = NULL;
		*n = 0;
	}
	*ids = all;
	return rc;
}

/* logits of the first window (n tokens) into a new array (n x vocab) */
static int window_logits(const fpk_model *m, const int *ids, int n, float **out)
{
	fpk_model_state *st = NULL;
	int rc = fpk_model_state_new(m, n, n, &st);
	*out = NULL;
	if (!rc)
		rc = fpk_model_forward(m, st, ids, n, 0, NULL, 1);
	if (!rc) {
		size_t sz = (size_t)n * (size_t)m->cfg.vocab;
		*out = malloc(sz * sizeof(float));
		if (!*out)
			rc = fpk_error_set(FPK_EIO, "out of memory");
		else
			memcpy(*out, st->logits, sz * sizeof(float));
	}
	fpk_model_state_free(st);
	return rc;
}

/* perplexity of the model at path (and, when logits, the first nlog tokens' logits). GPU: *prec is the precision
 * of the linear products; FPK_DTYPE_COUNT on the first call (the pack) sets it from the model's weights. */
static int eval_one(const char *path, const fpk_eval_opts *o, const int *ids, size_t n, int ctx, fpk_eval_result *r,
		    float **logits, int nlog, int *vocab, fpk_dtype *prec, fpk_eval_report *rep)
{
	fpk_model *m = NULL;
	double t0 = fpk_now_s();
	int rc = o->use_gpu ? fpk_model_load_lazy(&m, path, o->threads) : fpk_model_load(&m, path, o->threads);
	snprintf(r->path, sizeof(r->path), "%s", path);
	if (rc)
		return fpk_error_wrap(rc, "loading '%s': ", path);
	*vocab = m->cfg.vocab;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] < 0 || ids[i] >= *vocab) {
			fpk_model_free(m);
			return fpk_error_set(FPK_EFORMAT, "token %zu has id %d, outside the vocab of '%s' (%d)", i, ids[i], path,
					     *vocab);
		}
	}
	if (ctx > m->cfg.max_pos)
		rc = fpk_error_set(FPK_EUSAGE, "--context %d exceeds max_position_embeddings %d of '%s'", ctx, m->cfg.max_pos,
				   path);
	if (!rc && o->use_gpu) {
		fpk_gpu_eval_info gi;
		if (*prec == FPK_DTYPE_COUNT)
			*prec = fpk_model_weight_dtype(m);
		if (logits && !(*logits = malloc((size_t)nlog * (size_t)*vocab * sizeof(float))))
			rc = fpk_error_set(FPK_EIO, "out of memory");
		if (!rc)
			rc = fpk_model_gpu_nll(m, ids, n, ctx, *prec, &r->mean_nll, &r->predictions, logits ? *logits : NULL,
				logits ? nlog : 0, &gi);
		if (!rc) {
			r->engine_seconds = gi.seconds;
			r->upload_wait_s = gi.upload_wait_s;
			r->spmm_matrices = gi.spmm_matrices;
			r->dense_matrices = gi.dense_matrices;
			snprintf(rep->device, sizeof(rep->device), "%s", gi.device);
			rep->passes = gi.passes;
		}
	} else if (!rc) {
		double t1 = fpk_now_s();
		rc = fpk_model_nll(m, ids, n, ctx, NULL, &r->mean_nll, &r->predictions);
		if (!rc && logits)
			rc = window_logits(m, ids, nlog, logits);
		r->engine_seconds = fpk_now_s() - t1;
	}
	r->ppl = exp(r->mean_nll);
	r->seconds = fpk_now_s() - t0;
	fpk_model_free(m);
	return rc;
}

int fpk_eval_run(const fpk_eval_opts *o, fpk_eval_report *r)
{
	int *ids = NULL, rc;
	size_t n = 0;
	float *lp = NULL, *la = NULL;
	memset(r, 0, sizeof(*r));
	int ctx = o->context > 0 ? o->context : 512;
	if (o->n_against < 0 || o->n_against > FPK_EVAL_MAX_AGAINST)
		return fpk_error_set(FPK_EUSAGE, "at most %d --against checkpoints", FPK_EVAL_MAX_AGAINST);
	if (o->tokens_path) {
		rc = fpk_tokens_read(o->tokens_path, 0, &ids, &n);
		r->documents = 1;
	} else if (o->text_path) {
		rc = fpk_eval_tokenize(o->pack, o->text_path, &ids, &n, &r->documents);
	} else {
		return fpk_error_set(FPK_EUSAGE, "--eval needs a text file or --tokens");
	}
	if (rc)
		return rc;
	if (o->max_tokens && n > o->max_tokens)
		n = o->max_tokens;
	r->tokens = n;
	r->context = ctx;
	r->n_against = o->n_against;
	int nlog = (int)(n < (size_t)ctx ? n : (size_t)ctx);
	if (nlog > 128)
		nlog = 128;
	r->logit_tokens = o->n_against ? nlog : 0;
	uint64_t steps = 1 + (uint64_t)o->n_against;
	if (o->progress)
		o->progress(o->ud, "perplexity", 0, steps);
	int vocab[2] = {0, 0}, v;
	fpk_dtype prec = o->use_gpu ? FPK_DTYPE_COUNT : FPK_F32;
	r->gpu = o->use_gpu;
	snprintf(r->device, sizeof(r->device), "cpu");
	rc = eval_one(o->pack, o, ids, n, ctx, &r->pack, o->n_against ? &lp : NULL, nlog, &vocab[0], &prec, r);
	r->precision = prec;
	for (int i = 0; !rc && i < o->n_against; i++) {
		if (o->progress)
			o->progress(o->ud, "perplexity", 1 + (uint64_t)i, steps);
		rc = eval_one(o->against[i], o, ids, n, ctx, &r->against[i], i == 0 ? &la : NULL, nlog, &v, &prec, r);
		if (i == 0)
			vocab[1] = v;
	}
	if (o->progress)
		o->progress(o->ud, "perplexity", steps, steps);
	if (!rc && o->n_against) {
		double bound = o->max_rel_ppl_diff > 0 ? o->max_rel_ppl_diff : 0.005;
		r->rel_ppl_diff = fabs(r->pack.ppl - r->against[0].ppl) / r->against[0].ppl;
		if (vocab[0] != vocab[1])
			rc = fpk_error_set(FPK_EFORMAT, "'%s' has vocab %d but '%s' has %d", o->pack, vocab[0], o->against[0],
					   vocab[1]);
		double md = 0;
		for (size_t i = 0; !rc && i < (size_t)nlog * (size_t)vocab[0]; i++) {
			double d = fabs((double)lp[i] - (double)la[i]);
			if (!(d <= md)) /* NaN propagates as an infinite difference */
				md = isnan(d) ? INFINITY : d;
		}
		r->max_logit_diff = md;
		r->pass = r->rel_ppl_diff <= bound && isfinite(r->pack.ppl) && isfinite(md);
	} else if (!rc) {
		r->pass = isfinite(r->pack.ppl);
	}
	free(lp);
	free(la);
	free(ids);
	return rc;
}
