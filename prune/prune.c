/* prune.c: `fpk_prune_run`: open the checkpoint, decide targets and sparsities, select exactly (magsel.c), and
 * stream every shard to a new output directory with the same layout. Semantics: docs/prune.md.
 * Tested by tests/unit/test_prune.c and tests/cli/prune_*.sh. */
#include "prune.h"

#include "magsel.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const fpk_prune_scope_names[3] = {"tensor", "row", "global"};

typedef struct run {
	const fpk_prune_opts *o;
	fpk_prune_report *rep;
	int threads;
	uint64_t *k;          /* per tensor: elements to select (tensor: whole tensor; row: per row) */
	int *primary;         /* per tensor: index of the tensor it is tied to, or -1 */
	uint64_t *g_budget;   /* global scope: the tie budget when the tensor starts */
	/* global scope */
	uint32_t g_T;
	int g_any;
	uint64_t g_budget_left;
} run;

static uint64_t round_count(double s, uint64_t n)
{
	double v = floor(s * (double)n + 0.5);
	if (v < 0)
		v = 0;
	if (v > (double)n)
		v = (double)n;
	return (uint64_t)v;
}

static int nonfinite_error(const fpk_st_tensor *t, uint64_t idx)
{
	float v = fpk_load_f32(t->data, t->dtype, (size_t)idx);
	return fpk_error_set(FPK_EFORMAT,
			     "tensor '%s': %s at flat index %llu (expected finite weights; --allow-nonfinite prunes anyway)",
			     t->name, isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"), (unsigned long long)idx);
}

/* drop the input pages of a tensor from our mapping (the page cache keeps them) so RSS stays near one tensor */
static void release_pages(const fpk_st_tensor *t)
{
	if (!t->data || !t->nbytes)
		return;
	long ps = sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)t->data & ~(uintptr_t)(ps - 1);
	uintptr_t b = ((uintptr_t)t->data + t->nbytes + (uintptr_t)ps - 1) & ~(uintptr_t)(ps - 1);
	/* do not touch the page holding the end of the file's mapping beyond its size: madvise only whole pages that
	 * lie inside [a, b); the mapping covers them because it is page-granular */
	madvise((void *)a, (size_t)(b - a), MADV_DONTNEED);
}

static uint64_t last_dim(const fpk_st_tensor *t)
{
	return t->ndim ? (uint64_t)t->shape[t->ndim - 1] : 1;
}

/* prune tensor i into out (NULL: count only) */
static int process(run *r, size_t i, void *out)
{
	fpk_prune_tensor *pt = &r->rep->tensors[i];
	const fpk_st_tensor *t = pt->t;
	const fpk_prune_opts *o = r->o;
	int kind, rc;
	uint64_t n = t->numel, zb = 0, za = 0, bad = UINT64_MAX;
	if (fpk_magsel_kind(t->dtype, o->scope == FPK_SCOPE_GLOBAL && !o->pattern_m, &kind))
		return fpk_error_set(FPK_EFORMAT, "tensor '%s': dtype %s cannot be pruned (expected F32, F16 or BF16)",
				     t->name, fpk_dtypes[t->dtype].name);
	if (o->pattern_m) {
		uint64_t cols = last_dim(t), rows = cols ? n / cols : 0;
		uint32_t tm;
		fpk_magsel_level none = {.pshift = 0, .pval = UINT32_MAX, .shift = 0, .mask = 0};
		uint64_t acc = 0;
		if ((rc = fpk_magsel_tensor_hist(t->data, kind, n, &none, r->threads, &acc, 1, &zb, &bad)))
			return rc;
		if (bad != UINT64_MAX && !o->allow_nonfinite)
			return nonfinite_error(t, bad);
		if ((rc = fpk_magsel_rows(t->data, kind, rows, cols, 0, o->pattern_n, o->pattern_m, r->threads, out, &tm,
					  &zb, &za)))
			return rc;
		pt->has_threshold = 0;
	} else if (o->scope == FPK_SCOPE_TENSOR) {
		fpk_magsel_result res;
		uint64_t k = r->k[i];
		if ((rc = fpk_magsel_select(t->data, kind, n, k, r->threads, &res, &zb, &bad)))
			return rc;
		if (bad != UINT64_MAX && !o->allow_nonfinite)
			return nonfinite_error(t, bad);
		uint64_t budget = res.n_eq_sel == res.n_eq ? UINT64_MAX : res.n_eq_sel;
		if ((rc = fpk_magsel_tensor_apply(t->data, kind, n, k > 0, res.key, &budget, r->threads, out, &za)))
			return rc;
		pt->has_threshold = k > 0;
		pt->threshold = k > 0 ? fpk_magsel_value(res.key, kind) : 0;
	} else if (o->scope == FPK_SCOPE_ROW) {
		uint64_t cols = last_dim(t), rows = cols ? n / cols : 0;
		uint32_t tm = 0;
		fpk_magsel_level none = {.pshift = 0, .pval = UINT32_MAX, .shift = 0, .mask = 0};
		uint64_t acc = 0;
		if ((rc = fpk_magsel_tensor_hist(t->data, kind, n, &none, r->threads, &acc, 1, &zb, &bad)))
			return rc;
		if (bad != UINT64_MAX && !o->allow_nonfinite)
			return nonfinite_error(t, bad);
		if ((rc = fpk_magsel_rows(t->data, kind, rows, cols, r->k[i], 0, 0, r->threads, out, &tm, &zb, &za)))
			return rc;
		pt->has_threshold = r->k[i] > 0 && rows > 0;
		pt->threshold = pt->has_threshold ? fpk_magsel_value(tm, kind) : 0;
	} else {
		/* global: the threshold and the tie budget were decided over every targeted tensor beforehand */
		uint64_t budget;
		int prim = r->primary[i];
		zb = prim >= 0 ? r->rep->tensors[prim].zeros_before : pt->zeros_before;
		budget = prim >= 0 ? r->g_budget[prim] : r->g_budget_left;
		r->g_budget[i] = budget;
		if ((rc = fpk_magsel_tensor_apply(t->data, kind, n, r->g_any, r->g_T, &budget, r->threads, out, &za)))
			return rc;
		if (prim < 0)
			r->g_budget_left = budget;
		pt->has_threshold = r->g_any;
		pt->threshold = r->g_any ? fpk_magsel_value(r->g_T, KEY_F32) : 0;
	}
	pt->zeros_before = zb;
	pt->zeros_after = za;
	return 0;
}

/* global scope: two histogram passes over the f32 keys of every targeted tensor (tied copies once) */
static int global_select(run *r)
{
	fpk_prune_report *rep = r->rep;
	fpk_magsel_level lv[2];
	fpk_magsel_levels(KEY_F32, lv);
	uint64_t *acc = calloc(65536, sizeof(uint64_t));
	uint64_t total = 0, k, below_total = 0;
	uint32_t prefix = 0;
	int rc = 0;
	if (!acc)
		return fpk_error_set(FPK_EIO, "out of memory");
	for (size_t i = 0; i < rep->n; i++)
		if (rep->tensors[i].targeted && r->primary[i] < 0)
			total += rep->tensors[i].elements;
	k = round_count(r->o->sparsity, total);
	for (int l = 0; l < 2; l++) {
		size_t bins = (size_t)lv[l].mask + 1;
		memset(acc, 0, bins * sizeof(uint64_t));
		if (l)
			lv[l].pval = prefix;
		for (size_t i = 0; i < rep->n; i++) {
			fpk_prune_tensor *pt = &rep->tensors[i];
			if (!pt->targeted || r->primary[i] >= 0)
				continue;
			int kind;
			uint64_t zb = 0, bad = UINT64_MAX;
			if (fpk_magsel_kind(pt->t->dtype, 1, &kind)) {
				rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': dtype %s cannot be pruned (expected F32, F16 or BF16)",
						   pt->name, fpk_dtypes[pt->t->dtype].name);
				goto done;
			}
			if ((rc = fpk_magsel_tensor_hist(pt->t->data, kind, pt->elements, &lv[l], r->threads, acc, bins,
							 l == 0 ? &zb : NULL, &bad)))
				goto done;
			if (l == 0) {
				if (bad != UINT64_MAX && !r->o->allow_nonfinite) {
					rc = nonfinite_error(pt->t, bad);
					goto done;
				}
				pt->zeros_before = zb;
			}
			release_pages(pt->t);
			if (r->o->progress)
				r->o->progress(r->o->progress_ud, l == 0 ? "global pass 1" : "global pass 2", i + 1, rep->n);
		}
		if (k == 0)
			break;
		uint64_t below;
		uint32_t b = fpk_magsel_find(acc, bins, k - below_total, &below);
		below_total += below;
		prefix = (prefix << (lv[l].pshift - lv[l].shift)) | b;
		if (l == 1) {
			r->g_T = prefix;
			uint64_t need = k - below_total;
			r->g_budget_left = need == acc[b] ? UINT64_MAX : need;
		}
	}
	r->g_any = k > 0;
	rep->has_threshold = k > 0;
	rep->global_threshold = k > 0 ? fpk_magsel_value(r->g_T, KEY_F32) : 0;
done:
	free(acc);
	return rc;
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

/* tie_word_embeddings from IN/config.json (OPT ties by default); 0 when there is no readable config */
static int config_tied(const fpk_prune_opts *o, const fpk_st_model *m)
{
	if (!fpk_is_dir(o->in))
		return 0;
	char *p = fpk_path_join(m->dir, "config.json"), *txt = NULL;
	int tied = 0;
	if (p && fpk_path_exists(p) && !fpk_read_file(p, &txt, NULL)) {
		cJSON *j = cJSON_Parse(txt);
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
		const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
		if (cJSON_IsBool(t))
			tied = cJSON_IsTrue(t);
		else if (cJSON_IsString(mt) && !strcmp(mt->valuestring, "opt"))
			tied = 1;
		cJSON_Delete(j);
	}
	fpk_error_clear();
	free(p);
	free(txt);
	return tied;
}

static int validate_opts(const fpk_prune_opts *o)
{
	if (!o->in)
		return fpk_error_set(FPK_EUSAGE, "no input given");
	if (o->pattern_m) {
		if (o->pattern_m < 2 || o->pattern_m > FPK_PRUNE_MAX_M || o->pattern_n < 1 || o->pattern_n >= o->pattern_m)
			return fpk_error_set(FPK_EUSAGE, "pattern %d:%d is not supported (expected N:M with 1 <= N < M <= %d, "
							 "e.g. 2:4)", o->pattern_n, o->pattern_m, FPK_PRUNE_MAX_M);
		if (o->scope != FPK_SCOPE_TENSOR)
			return fpk_error_set(FPK_EUSAGE, "--pattern cannot be combined with --scope %s",
					     fpk_prune_scope_names[o->scope]);
		if (o->n_rules)
			return fpk_error_set(FPK_EUSAGE, "--pattern cannot be combined with --sparsity-for");
	} else if (!(o->sparsity >= 0 && o->sparsity < 1)) {
		return fpk_error_set(FPK_EUSAGE, "sparsity %g is out of range (expected 0 <= S < 1)", o->sparsity);
	}
	if ((unsigned)o->scope > FPK_SCOPE_GLOBAL)
		return fpk_error_set(FPK_EUSAGE, "unknown scope");
	if (o->scope == FPK_SCOPE_GLOBAL && o->n_rules)
		return fpk_error_set(FPK_EUSAGE, "--sparsity-for cannot be combined with --scope global (one threshold "
						 "for all targeted tensors)");
	for (size_t i = 0; i < o->n_rules; i++)
		if (!(o->rules[i].sparsity >= 0 && o->rules[i].sparsity < 1))
			return fpk_error_set(FPK_EUSAGE, "--sparsity-for '%s': sparsity %g is out of range (expected 0 <= S < 1)",
					     o->rules[i].glob, o->rules[i].sparsity);
	if (!o->dry_run) {
		if (!o->out || !*o->out)
			return fpk_error_set(FPK_EUSAGE, "no output directory given (-o OUT)");
		if (fpk_path_is_within(o->out, o->in))
			return fpk_error_set(FPK_EUSAGE, "output '%s' is the input or inside it (expected a separate directory)",
					     o->out);
		if (fpk_path_is_within(o->in, o->out))
			return fpk_error_set(FPK_EUSAGE, "input '%s' is inside the output '%s' (replacing it would remove the input)",
					     o->in, o->out);
	}
	return 0;
}

/* decide targets, sparsities and tied copies */
static int plan(run *r)
{
	const fpk_prune_opts *o = r->o;
	fpk_prune_report *rep = r->rep;
	fpk_st_model *m = rep->model;
	size_t *rule_hits = calloc(o->n_rules + 1, sizeof(size_t));
	int rc = 0;
	if (!rule_hits)
		return fpk_error_set(FPK_EIO, "out of memory");
	for (size_t i = 0; i < m->n_tensors; i++) {
		const fpk_st_tensor *t = m->tensors[i];
		fpk_prune_tensor *pt = &rep->tensors[i];
		pt->t = t;
		pt->name = t->name;
		pt->elements = t->numel;
		pt->targeted = fpk_select_match(&o->select, t->name, t->ndim);
		pt->target = o->pattern_m ? (double)(o->pattern_m - o->pattern_n) / o->pattern_m : o->sparsity;
		r->primary[i] = -1;
	}
	/* tied embeddings: lm_head stored as an exact copy of embed_tokens under tie_word_embeddings */
	if (config_tied(o, m)) {
		int e = -1, h = -1;
		for (size_t i = 0; i < m->n_tensors; i++) {
			if (ends_with(m->tensors[i]->name, "embed_tokens.weight") && e < 0)
				e = (int)i;
			if (!strcmp(m->tensors[i]->name, "lm_head.weight"))
				h = (int)i;
		}
		if (e >= 0 && h >= 0) {
			const fpk_st_tensor *a = m->tensors[e], *b = m->tensors[h];
			int same = a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes &&
				   !memcmp(a->shape, b->shape, sizeof(a->shape[0]) * (size_t)a->ndim) &&
				   (!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
			if (same && (rep->tensors[e].targeted || rep->tensors[h].targeted)) {
				int p = e < h ? e : h, s = e < h ? h : e;
				rep->tensors[p].targeted = rep->tensors[s].targeted = 1;
				r->primary[s] = p;
				rep->tensors[s].tied_to = rep->tensors[p].name;
			}
		}
	}
	for (size_t i = 0; i < m->n_tensors; i++) {
		fpk_prune_tensor *pt = &rep->tensors[i];
		if (!pt->targeted)
			continue;
		for (size_t j = 0; j < o->n_rules; j++)
			if (fpk_glob_match(o->rules[j].glob, pt->name)) {
				pt->target = o->rules[j].sparsity;
				rule_hits[j]++;
			}
	}
	for (size_t i = 0; i < m->n_tensors; i++) {
		fpk_prune_tensor *pt = &rep->tensors[i];
		if (r->primary[i] >= 0)
			pt->target = rep->tensors[r->primary[i]].target;
		if (!pt->targeted)
			continue;
		int kind;
		if (fpk_magsel_kind(pt->t->dtype, 0, &kind)) {
			rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': dtype %s cannot be pruned (expected F32, F16 or BF16)",
					   pt->name, fpk_dtypes[pt->t->dtype].name);
			goto done;
		}
		uint64_t cols = last_dim(pt->t);
		if (o->pattern_m && cols % (uint64_t)o->pattern_m) {
			rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': last dimension %llu is not a multiple of %d (pattern %d:%d)",
					   pt->name, (unsigned long long)cols, o->pattern_m, o->pattern_n, o->pattern_m);
			goto done;
		}
		r->k[i] = round_count(pt->target, o->scope == FPK_SCOPE_ROW ? cols : pt->elements);
		rep->n_targeted++;
	}
	for (size_t j = 0; j < o->n_rules; j++)
		if (!rule_hits[j]) {
			rc = fpk_error_set(FPK_EUSAGE, "--sparsity-for '%s' matches no targeted tensor", o->rules[j].glob);
			goto done;
		}
	for (size_t j = 0; j < o->select.n_include; j++) {
		int hit = 0;
		for (size_t i = 0; i < m->n_tensors && !hit; i++)
			hit = fpk_glob_match(o->select.include[j], m->tensors[i]->name);
		if (!hit) {
			rc = fpk_error_set(FPK_EUSAGE, "--include '%s' matches no tensor", o->select.include[j]);
			goto done;
		}
	}
	for (size_t j = 0; j < o->select.n_exclude; j++) {
		int hit = 0;
		for (size_t i = 0; i < m->n_tensors && !hit; i++)
			hit = fpk_glob_match(o->select.exclude[j], m->tensors[i]->name);
		if (!hit) {
			rc = fpk_error_set(FPK_EUSAGE, "--exclude '%s' matches no tensor", o->select.exclude[j]);
			goto done;
		}
	}
	if (!rep->n_targeted)
		rc = fpk_error_set(FPK_EUSAGE, "no tensor of '%s' is targeted (the default targets are the 2-D linear "
					       "weights of transformer blocks; use --include GLOB)", o->in);
done:
	free(rule_hits);
	return rc;
}

/* copy every file and folder under root/rel into dst/rel except the relative paths in skip (the shards and the
 * index, which are written by us) */
static int copy_tree(const char *root, const char *dst, const char *rel, char *const *skip, size_t n_skip)
{
	char *src = rel ? fpk_path_join(root, rel) : strdup(root);
	DIR *d = src ? opendir(src) : NULL;
	struct dirent *e;
	int rc = 0;
	if (!d) {
		rc = fpk_error_set(FPK_EIO, "cannot open directory '%s'", src ? src : root);
		free(src);
		return rc;
	}
	while (!rc && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *r = rel ? fpk_path_join(rel, e->d_name) : strdup(e->d_name);
		char *s = r ? fpk_path_join(root, r) : NULL, *t = r ? fpk_path_join(dst, r) : NULL;
		struct stat st;
		int skipped = 0;
		for (size_t i = 0; r && i < n_skip && !skipped; i++)
			skipped = !strcmp(skip[i], r);
		if (!r || !s || !t)
			rc = fpk_error_set(FPK_EIO, "out of memory");
		else if (skipped || stat(s, &st) < 0)
			rc = 0; /* ours, or a dangling link: nothing to copy */
		else if (S_ISDIR(st.st_mode)) {
			rc = fpk_mkdir_p(t);
			if (!rc)
				rc = copy_tree(root, dst, r, skip, n_skip);
		} else if (S_ISREG(st.st_mode))
			rc = fpk_copy_file(s, t);
		free(r);
		free(s);
		free(t);
	}
	closedir(d);
	free(src);
	return rc;
}

/* ---- the output pipeline: the main thread prunes tensor i + 1 (with the worker threads) while a writer thread
 * writes tensor i, and starts the disk writeback of what it wrote, so the final fsync finds little left. Two
 * buffers of the largest targeted tensor: peak memory is about twice that tensor. ---- */
#define QCAP 64

typedef struct wjob {
	const void *data;
	size_t len;
	int buf;                 /* buffer index this job holds, -1 for a write straight from the input mapping */
	const fpk_st_tensor *src; /* input pages to release once written (untouched tensors) */
} wjob;

typedef struct wpipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	wjob q[QCAP];
	size_t head, tail;      /* jobs [head, tail) pending */
	int busy[2];            /* buffer in use by a pending or running job */
	int stop, idle;
	fpk_st_writer *w;       /* current shard's writer (changed only while idle) */
	int rc;
	char msg[512];
} wpipe;

static void *writer_main(void *arg)
{
	wpipe *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->head == p->tail && !p->stop) {
			p->idle = 1;
			pthread_cond_broadcast(&p->cv);
			pthread_cond_wait(&p->cv, &p->mu);
		}
		if (p->head == p->tail && p->stop)
			break;
		p->idle = 0;
		wjob j = p->q[p->head % QCAP];
		fpk_st_writer *w = p->w;
		int failed = p->rc != 0;
		pthread_mutex_unlock(&p->mu);
		int rc = 0;
		if (!failed && j.len) {
			rc = fpk_st_writer_write(w, j.data, j.len);
#if defined(SYNC_FILE_RANGE_WRITE) && !defined(FPK_NO_WRITEBACK_HINT)
			int fd = fpk_st_writer_fd(w);
			if (!rc && fd >= 0 && fpk_io_durable())
				sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* a hint: start writeback now */
#endif
		}
		if (j.src)
			release_pages(j.src);
		pthread_mutex_lock(&p->mu);
		if (rc && !p->rc) {
			p->rc = rc;
			snprintf(p->msg, sizeof(p->msg), "%s", fpk_error_msg());
		}
		if (j.buf >= 0)
			p->busy[j.buf] = 0;
		p->head++;
		pthread_cond_broadcast(&p->cv);
	}
	p->idle = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int pipe_error(wpipe *p)
{
	return fpk_error_set(p->rc, "%s", p->msg);
}

/* queue a write; returns the writer's error, if any, so far */
static int pipe_submit(wpipe *p, const void *data, size_t len, int buf, const fpk_st_tensor *src)
{
	pthread_mutex_lock(&p->mu);
	while (p->tail - p->head >= QCAP && !p->rc)
		pthread_cond_wait(&p->cv, &p->mu);
	int rc = p->rc;
	if (!rc) {
		p->q[p->tail % QCAP] = (wjob){data, len, buf, src};
		if (buf >= 0)
			p->busy[buf] = 1;
		p->tail++;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return rc ? pipe_error(p) : 0;
}

/* wait until buffer b is free (buf >= 0) or every job is done (buf < 0) */
static int pipe_wait(wpipe *p, int buf)
{
	pthread_mutex_lock(&p->mu);
	if (buf >= 0)
		while (p->busy[buf] && !p->rc)
			pthread_cond_wait(&p->cv, &p->mu);
	else
		while ((p->head != p->tail || !p->idle) && !p->rc)
			pthread_cond_wait(&p->cv, &p->mu);
	int rc = p->rc;
	pthread_mutex_unlock(&p->mu);
	return rc ? pipe_error(p) : 0;
}

static int write_outputs(run *r, const char *dir)
{
	const fpk_prune_opts *o = r->o;
	fpk_prune_report *rep = r->rep;
	fpk_st_model *m = rep->model;
	uint8_t *bufs[2] = {NULL, NULL};
	uint64_t cap = 0, done_bytes = 0, total = 0;
	int rc = 0, cur = 0, started = 0;
	fpk_st_writer *w = NULL;
	wpipe p;
	pthread_t th;
	memset(&p, 0, sizeof(p));
	for (size_t i = 0; i < rep->n; i++) {
		total += rep->tensors[i].t->nbytes;
		if (rep->tensors[i].targeted && rep->tensors[i].t->nbytes > cap)
			cap = rep->tensors[i].t->nbytes;
	}
	if (!o->dry_run && cap && (!(bufs[0] = malloc((size_t)cap)) || !(bufs[1] = malloc((size_t)cap)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory for two %llu-byte tensor buffers", (unsigned long long)cap);
		goto done;
	}
	if (!o->dry_run) {
		pthread_mutex_init(&p.mu, NULL);
		pthread_cond_init(&p.cv, NULL);
		if (pthread_create(&th, NULL, writer_main, &p)) {
			pthread_mutex_destroy(&p.mu);
			pthread_cond_destroy(&p.cv);
			rc = fpk_error_set(FPK_EIO, "cannot start the writer thread");
			goto done;
		}
		started = 1;
	}
	size_t ti = 0;
	for (size_t s = 0; s < m->n_shards; s++) {
		const fpk_st_file *f = m->shards[s];
		if (!o->dry_run) {
			/* a single-file input becomes OUT/model.safetensors, so OUT is a model directory */
			char *path = fpk_path_join(dir, fpk_is_dir(o->in) ? m->shard_names[s] : "model.safetensors");
			char *slash = path ? strrchr(path, '/') : NULL;
			if (!path) {
				rc = fpk_error_set(FPK_EIO, "out of memory");
				goto done;
			}
			if (slash && slash > path + strlen(dir)) {
				*slash = 0;
				rc = fpk_mkdir_p(path);
				*slash = '/';
			}
			if (!rc)
				rc = fpk_st_writer_new(&w, path);
			free(path);
			for (const cJSON *kv = f->metadata ? f->metadata->child : NULL; !rc && kv; kv = kv->next)
				if (cJSON_IsString(kv))
					rc = fpk_st_writer_meta(w, kv->string, kv->valuestring);
			for (size_t j = 0; !rc && j < f->n_tensors; j++) {
				const fpk_st_tensor *t = &f->tensors[j];
				rc = fpk_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape);
			}
			if (!rc)
				rc = fpk_st_writer_begin(w);
			if (rc)
				goto done;
			pthread_mutex_lock(&p.mu);
			p.w = w;
			pthread_mutex_unlock(&p.mu);
		}
		/* model->tensors lists this shard's tensors in file order, shard after shard */
		for (size_t j = 0; j < f->n_tensors; j++, ti++) {
			fpk_prune_tensor *pt = &rep->tensors[ti];
			const fpk_st_tensor *t = pt->t;
			if (pt->targeted) {
				if (!o->dry_run && (rc = pipe_wait(&p, cur)))
					goto done;
				if ((rc = process(r, ti, bufs[cur])))
					goto done;
				release_pages(t);
				if (!o->dry_run) {
					if ((rc = pipe_submit(&p, bufs[cur], (size_t)t->nbytes, cur, NULL)))
						goto done;
					cur ^= 1;
				}
			} else {
				pt->zeros_before = pt->zeros_after = 0; /* not counted for untouched tensors */
				if (!o->dry_run && (rc = pipe_submit(&p, t->data, (size_t)t->nbytes, -1, t)))
					goto done;
			}
			done_bytes += t->nbytes;
			if (o->progress)
				o->progress(o->progress_ud, "prune", done_bytes, total);
		}
		if (!o->dry_run) {
			if ((rc = pipe_wait(&p, -1)))
				goto done;
			pthread_mutex_lock(&p.mu);
			p.w = NULL;
			pthread_mutex_unlock(&p.mu);
			rc = fpk_st_writer_commit(w);
			w = NULL;
			if (rc)
				goto done;
		}
	}
	rep->bytes_out = o->dry_run ? 0 : total;
done:
	if (started) {
		pthread_mutex_lock(&p.mu);
		p.stop = 1;
		if (!p.rc && rc)
			p.rc = rc; /* let the writer skip what is left */
		pthread_cond_broadcast(&p.cv);
		pthread_mutex_unlock(&p.mu);
		pthread_join(th, NULL);
		pthread_mutex_destroy(&p.mu);
		pthread_cond_destroy(&p.cv);
	}
	fpk_st_writer_abort(w);
	free(bufs[0]);
	free(bufs[1]);
	return rc;
}

static int write_index(const fpk_st_model *m, const char *dir)
{
	if (!m->index)
		return 0;
	cJSON *idx = cJSON_Duplicate(m->index, 1);
	uint64_t total = 0;
	int rc;
	for (size_t i = 0; i < m->n_tensors; i++)
		total += m->tensors[i]->nbytes;
	cJSON *md = cJSON_GetObjectItemCaseSensitive(idx, "metadata");
	if (!md)
		md = cJSON_AddObjectToObject(idx, "metadata");
	if (cJSON_IsObject(md)) {
		cJSON_DeleteItemFromObjectCaseSensitive(md, "total_size");
		cJSON_AddNumberToObject(md, "total_size", (double)total);
	}
	char *txt = cJSON_Print(idx), *path = fpk_path_join(dir, m->index_name);
	if (!txt || !path)
		rc = fpk_error_set(FPK_EIO, "out of memory");
	else
		rc = fpk_write_file_atomic(path, txt, strlen(txt));
	free(txt);
	free(path);
	cJSON_Delete(idx);
	return rc;
}

cJSON *fpk_prune_report_json(const fpk_prune_opts *o, const fpk_prune_report *rep)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "tool", "flashllm-pack prune");
	cJSON_AddStringToObject(j, "version", FPK_VERSION);
	if (o->command_line)
		cJSON_AddStringToObject(j, "command", o->command_line);
	cJSON_AddStringToObject(j, "input", o->in ? o->in : "");
	if (o->out && !o->dry_run)
		cJSON_AddStringToObject(j, "output", o->out);
	cJSON_AddBoolToObject(j, "dry_run", o->dry_run);
	cJSON_AddStringToObject(j, "scope", o->pattern_m ? "pattern" : fpk_prune_scope_names[o->scope]);
	if (o->pattern_m) {
		char p[32];
		snprintf(p, sizeof(p), "%d:%d", o->pattern_n, o->pattern_m);
		cJSON_AddStringToObject(j, "pattern", p);
	} else {
		cJSON_AddNumberToObject(j, "sparsity", o->sparsity);
	}
	if (o->scope == FPK_SCOPE_GLOBAL && !o->pattern_m) {
		if (rep->has_threshold)
			cJSON_AddNumberToObject(j, "global_threshold", rep->global_threshold);
		else
			cJSON_AddNullToObject(j, "global_threshold");
	}
	cJSON *arr = cJSON_AddArrayToObject(j, "tensors");
	for (size_t i = 0; i < rep->n; i++) {
		const fpk_prune_tensor *pt = &rep->tensors[i];
		cJSON *t = cJSON_CreateObject();
		cJSON_AddStringToObject(t, "name", pt->name);
		cJSON_AddStringToObject(t, "dtype", fpk_dtypes[pt->t->dtype].name);
		cJSON *sh = cJSON_AddArrayToObject(t, "shape");
		for (int d = 0; d < pt->t->ndim; d++)
			cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)pt->t->shape[d]));
		cJSON_AddStringToObject(t, "shard", rep->model->shard_names[pt->t->shard]);
		cJSON_AddBoolToObject(t, "targeted", pt->targeted);
		cJSON_AddNumberToObject(t, "elements", (double)pt->elements);
		if (pt->targeted) {
			cJSON_AddNumberToObject(t, "target_sparsity", pt->target);
			cJSON_AddNumberToObject(t, "zeros_before", (double)pt->zeros_before);
			cJSON_AddNumberToObject(t, "zeros_after", (double)pt->zeros_after);
			cJSON_AddNumberToObject(t, "sparsity", pt->elements ? (double)pt->zeros_after / (double)pt->elements : 0);
			if (pt->has_threshold)
				cJSON_AddNumberToObject(t, "threshold", pt->threshold);
			else
				cJSON_AddNullToObject(t, "threshold");
			if (pt->tied_to)
				cJSON_AddStringToObject(t, "tied_to", pt->tied_to);
		}
		cJSON_AddItemToArray(arr, t);
	}
	cJSON *tot = cJSON_AddObjectToObject(j, "totals");
	cJSON_AddNumberToObject(tot, "tensors", (double)rep->n);
	cJSON_AddNumberToObject(tot, "targeted_tensors", (double)rep->n_targeted);
	cJSON_AddNumberToObject(tot, "elements", (double)rep->elements);
	cJSON_AddNumberToObject(tot, "targeted_elements", (double)rep->targeted_elements);
	cJSON_AddNumberToObject(tot, "zeros_before", (double)rep->zeros_before);
	cJSON_AddNumberToObject(tot, "zeros_after", (double)rep->zeros_after);
	cJSON_AddNumberToObject(tot, "sparsity", rep->targeted_elements ? (double)rep->zeros_after / (double)rep->targeted_elements : 0);
	cJSON_AddNumberToObject(tot, "bytes_in", (double)rep->bytes_in);
	cJSON_AddNumberToObject(tot, "bytes_out", (double)rep->bytes_out);
	cJSON_AddNumberToObject(tot, "seconds", rep->seconds);
	return j;
}

int fpk_prune_run(const fpk_prune_opts *o, fpk_prune_report *rep)
{
	run r = {.o = o, .rep = rep};
	fpk_outdir od = {0};
	int rc, od_open = 0;
	double t0 = fpk_now_s();
	memset(rep, 0, sizeof(*rep));
	fpk_magsel_init();
	r.threads = fpk_magsel_threads(o->threads);
	if ((rc = validate_opts(o)))
		return rc;
	if ((rc = fpk_st_model_open(&rep->model, o->in)))
		return rc;
	fpk_st_model *m = rep->model;
	rep->n = m->n_tensors;
	rep->tensors = calloc(m->n_tensors + 1, sizeof(*rep->tensors));
	r.k = calloc(m->n_tensors + 1, sizeof(*r.k));
	r.primary = calloc(m->n_tensors + 1, sizeof(*r.primary));
	r.g_budget = calloc(m->n_tensors + 1, sizeof(*r.g_budget));
	if (!rep->tensors || !r.k || !r.primary || !r.g_budget) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	if ((rc = plan(&r)))
		goto done;
	if (o->scope == FPK_SCOPE_GLOBAL && !o->pattern_m && (rc = global_select(&r)))
		goto done;
	if (!o->dry_run) {
		/* "out/" and "out" name the same directory: build it as "out.tmp.<pid>", not inside "out/" */
		char *out = strdup(o->out);
		if (!out) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		for (size_t l = strlen(out); l > 1 && out[l - 1] == '/'; l--)
			out[l - 1] = 0;
		rc = fpk_outdir_begin(&od, out, o->force);
		free(out);
		if (rc)
			goto done;
		od_open = 1;
	}
	if ((rc = write_outputs(&r, od_open ? od.tmp_path : NULL)))
		goto done;
	for (size_t i = 0; i < rep->n; i++) {
		fpk_prune_tensor *pt = &rep->tensors[i];
		rep->elements += pt->elements;
		rep->bytes_in += pt->t->nbytes;
		if (pt->targeted && r.primary[i] < 0) {
			rep->targeted_elements += pt->elements;
			rep->zeros_before += pt->zeros_before;
			rep->zeros_after += pt->zeros_after;
		}
	}
	rep->seconds = fpk_now_s() - t0;
	rep->peak_rss_kb = fpk_peak_rss_kb();
	if (od_open) {
		if (fpk_is_dir(o->in)) {
			size_t nskip = m->n_shards + 1;
			char **skip = calloc(nskip + 1, sizeof(char *));
			if (!skip) {
				rc = fpk_error_set(FPK_EIO, "out of memory");
				goto done;
			}
			for (size_t s = 0; s < m->n_shards; s++)
				skip[s] = m->shard_names[s];
			skip[m->n_shards] = m->index_name ? m->index_name : (char *)"model.safetensors.index.json";
			rc = copy_tree(m->dir, od.tmp_path, NULL, skip, nskip);
			free(skip);
			if (rc)
				goto done;
		}
		if ((rc = write_index(m, od.tmp_path)))
			goto done;
		cJSON *j = fpk_prune_report_json(o, rep);
		char *txt = j ? cJSON_Print(j) : NULL, *path = fpk_path_join(od.tmp_path, "prune_report.json");
		if (!txt || !path)
			rc = fpk_error_set(FPK_EIO, "out of memory");
		else
			rc = fpk_write_file_atomic(path, txt, strlen(txt));
		free(txt);
		free(path);
		cJSON_Delete(j);
		if (rc)
			goto done;
		rc = fpk_outdir_commit(&od);
		od_open = 0;
		if (rc)
			goto done;
	}
done:
	if (od_open)
		fpk_outdir_abort(&od);
	free(r.k);
	free(r.primary);
	free(r.g_budget);
	return rc;
}

void fpk_prune_report_release(fpk_prune_report *rep)
{
	if (!rep)
		return;
	free(rep->tensors);
	fpk_st_model_close(rep->model);
	memset(rep, 0, sizeof(*rep));
}
