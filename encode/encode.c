/* encode.c: checkpoint -> packed-model directory (fpk_encode_run) and back (fpk_decode_run), one tensor at a time:
 * pass 1 encodes each target to learn sizes and CRCs for the header, pass 2 re-encodes and streams the bytes.
 * Tested by tests/cli/encode_*.sh; format in docs/format.md section 3. */
#include "encode.h"
#include "pack.h"
#include "safetensors.h"
#include "tcsl.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void fpk_encode_opts_init(fpk_encode_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->min_sparsity = 0.5;
	o->reorder = 1;
	o->dtype = -1;
}

void fpk_encode_report_release(fpk_encode_report *r)
{
	if (r) {
		cJSON_Delete(r->json);
		r->json = NULL;
	}
}

/* ---- files beside the tensors ---- */
static int is_shard_or_index(const fpk_st_model *m, const char *name)
{
	for (size_t s = 0; s < m->n_shards; s++)
		if (!strcmp(m->shard_names[s], name))
			return 1;
	return (m->index_name && !strcmp(m->index_name, name)) || !strcmp(name, "model.safetensors.index.json");
}

static int is_model_file(const char *n)
{
	static const char *const prefixes[] = {"tokenizer", "special_tokens_map", "generation_config", "vocab", "merges",
					       "added_tokens"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(n, prefixes[i], strlen(prefixes[i])))
			return 1;
	size_t l = strlen(n);
	return l > 6 && !strcmp(n + l - 6, ".model");
}

/* Copy the regular top-level files of the model's directory that are not tensors, its index, config.json or a
 * name in skip. For a single-file input only tokenizer-like files are copied (the directory may hold anything). */
static int copy_aux_files(const fpk_st_model *m, int dir_input, const char *dst, const char *skip)
{
	int rc = 0;
	DIR *d = opendir(m->dir);
	if (!d)
		return fpk_error_set(FPK_EIO, "cannot list '%s'", m->dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		if (nm[0] == '.' || is_shard_or_index(m, nm) || !strcmp(nm, "config.json") || (skip && !strcmp(nm, skip)))
			continue;
		size_t l = strlen(nm);
		if (l > 12 && !strcmp(nm + l - 12, ".safetensors"))
			continue;
		if (!dir_input && !is_model_file(nm))
			continue;
		char *p = fpk_path_join(m->dir, nm);
		struct stat st;
		int reg = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
		free(p);
		if (!reg)
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*nn));
		if (!nn || !(nn[n] = strdup(nm))) {
			free(nn ? nn : names);
			names = NULL;
			n = 0;
			rc = fpk_error_set(FPK_EIO, "out of memory");
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	for (size_t i = 0; i < n && !rc; i++) {
		char *src = fpk_path_join(m->dir, names[i]), *to = fpk_path_join(dst, names[i]);
		rc = src && to ? fpk_copy_file(src, to) : fpk_error_set(FPK_EIO, "out of memory");
		free(src);
		free(to);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* config.json from the model directory with the pack section set (section != NULL, taken over) or removed */
static int write_config(const fpk_st_model *m, const char *dst, cJSON *section)
{
	char *src = fpk_path_join(m->dir, "config.json"), *to = fpk_path_join(dst, "config.json"), *buf = NULL, *txt = NULL;
	cJSON *root = NULL;
	size_t len;
	int rc = 0;
	if (!src || !to) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	if (!fpk_path_exists(src))
		goto done;
	if ((rc = fpk_read_file(src, &buf, &len)))
		goto done;
	root = cJSON_Parse(buf);
	if (!cJSON_IsObject(root)) {
		rc = fpk_error_set(FPK_EFORMAT, "file '%s': not a JSON object", src);
		goto done;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(root, FPK_PACK_CONFIG_SECTION);
	if (section) {
		cJSON_AddItemToObject(root, FPK_PACK_CONFIG_SECTION, section);
		section = NULL;
	}
	txt = cJSON_Print(root);
	if (!txt) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	size_t tl = strlen(txt);
	txt[tl] = '\n';
	rc = fpk_write_file_atomic(to, txt, tl + 1);
done:
	cJSON_Delete(section);
	cJSON_Delete(root);
	free(txt);
	free(buf);
	free(src);
	free(to);
	return rc;
}

/* ---- per-tensor plan ---- */
enum { ACT_COPY, ACT_ENCODE };

typedef struct round_stats {
	double max_abs, max_rel;
	uint64_t changed, flushed, overflowed;
} round_stats;

typedef struct plan {
	const fpk_st_tensor *t;
	int act;
	int targeted;
	char reason[160];
	fpk_dtype enc_dtype;
	uint64_t zeros;
	fpk_tcsl shape; /* sizes, nnz, n_entries; no arrays */
	uint32_t crc_v, crc_o;
	round_stats rs;
	int rounded;
	double enc_s; /* seconds in the encoder, pass 1 */
} plan;

/* 16-bit view of a tensor; converts F32 into *buf (allocated) or copies unaligned F16/BF16 */
typedef struct conv_ctx {
	const uint8_t *src;
	uint16_t *dst;
	uint64_t n;
	fpk_dtype to;
	round_stats *parts;
} conv_ctx;

#define CONV_CHUNK (1u << 20)

static int conv_item(void *ctx, size_t item, int tid)
{
	(void)tid;
	conv_ctx *c = ctx;
	uint64_t a = (uint64_t)item * CONV_CHUNK, b = a + CONV_CHUNK;
	if (b > c->n)
		b = c->n;
	round_stats rs = {0};
	for (uint64_t i = a; i < b; i++) {
		float x;
		memcpy(&x, c->src + 4 * i, 4);
		uint16_t h = c->to == FPK_BF16 ? fpk_f32_to_bf16(x) : fpk_f32_to_f16(x);
		c->dst[i] = h;
		if (c->parts) {
			float y = c->to == FPK_BF16 ? fpk_bf16_to_f32(h) : fpk_f16_to_f32(h);
			if (isnan(x))
				continue;
			if (y != x || (y == 0 && x == 0 && signbit(x) != signbit(y))) {
				rs.changed++;
				if (isinf(y) && !isinf(x)) {
					rs.overflowed++;
					continue;
				}
				double ae = fabs((double)y - (double)x);
				if (ae > rs.max_abs)
					rs.max_abs = ae;
				if (x != 0) {
					double re = ae / fabs((double)x);
					if (re > rs.max_rel)
						rs.max_rel = re;
				}
				if (y == 0 && x != 0)
					rs.flushed++;
			}
		}
	}
	if (c->parts)
		c->parts[item] = rs;
	return 0;
}

static int get16(const plan *p, int threads, const uint16_t **w, uint16_t **buf, round_stats *rs)
{
	const fpk_st_tensor *t = p->t;
	*buf = NULL;
	if (t->dtype == p->enc_dtype && !((uintptr_t)t->data & 1u)) {
		*w = (const uint16_t *)(const void *)t->data;
		return 0;
	}
	*buf = malloc(t->numel * 2 + 2);
	if (!*buf)
		return fpk_error_set(FPK_EIO, "out of memory for tensor '%s'", t->name);
	if (t->dtype == p->enc_dtype) {
		memcpy(*buf, t->data, t->numel * 2);
	} else {
		size_t items = (size_t)((t->numel + CONV_CHUNK - 1) / CONV_CHUNK);
		conv_ctx c = {t->data, *buf, t->numel, p->enc_dtype, NULL};
		if (rs && !(c.parts = calloc(items ? items : 1, sizeof(*c.parts)))) {
			free(*buf);
			*buf = NULL;
			return fpk_error_set(FPK_EIO, "out of memory");
		}
		fpk_parallel_for(items, threads, conv_item, &c);
		if (rs) {
			memset(rs, 0, sizeof(*rs));
			for (size_t i = 0; i < items; i++) {
				rs->max_abs = fmax(rs->max_abs, c.parts[i].max_abs);
				rs->max_rel = fmax(rs->max_rel, c.parts[i].max_rel);
				rs->changed += c.parts[i].changed;
				rs->flushed += c.parts[i].flushed;
				rs->overflowed += c.parts[i].overflowed;
			}
			free(c.parts);
		}
	}
	*w = *buf;
	return 0;
}

static uint64_t count_zero16(const uint16_t *w, uint64_t n)
{
	uint64_t z = 0;
	for (uint64_t i = 0; i < n; i++)
		z += (w[i] & 0x7fffu) == 0;
	return z;
}

static const char *dtype_opt_name(int d)
{
	return d == FPK_F16 ? "f16" : d == FPK_BF16 ? "bf16" : NULL;
}

/* decide what happens to t; FPK_EUSAGE when an include glob picks a tensor that cannot be encoded */
static int plan_tensor(plan *p, const fpk_encode_opts *o)
{
	const fpk_st_tensor *t = p->t;
	p->act = ACT_COPY;
	p->targeted = fpk_select_match(&o->select, t->name, t->ndim);
	if (!p->targeted) {
		snprintf(p->reason, sizeof(p->reason), "not a target (%s)",
			 o->select.n_include ? "no --include matched or --exclude" : "default rule: 2-D linear weights");
		return 0;
	}
	int is16 = t->dtype == FPK_F16 || t->dtype == FPK_BF16;
	if (t->ndim != 2 || !(is16 || t->dtype == FPK_F32)) {
		if (!o->select.n_include) {
			snprintf(p->reason, sizeof(p->reason), "not 2-D F16/BF16/F32");
			return 0;
		}
		return fpk_error_set(FPK_EUSAGE,
				     "tensor '%s' matched by --include is %d-D %s, only 2-D F16, BF16 or F32 weights can be "
				     "encoded (narrow --include or add --exclude)",
				     t->name, t->ndim, fpk_dtypes[t->dtype].name);
	}
	if (t->numel == 0) {
		snprintf(p->reason, sizeof(p->reason), "empty tensor");
		return 0;
	}
	if (t->dtype == FPK_F32 && o->dtype < 0) {
		snprintf(p->reason, sizeof(p->reason), "F32: pass --dtype f16 or --dtype bf16 to encode it");
		return 0;
	}
	p->enc_dtype = is16 ? t->dtype : (fpk_dtype)o->dtype;
	p->act = ACT_ENCODE;
	return 0;
}

typedef struct enc_state {
	const fpk_encode_opts *o;
	fpk_st_model *m;
	plan *plans; /* m->n_tensors, model order */
	int threads;
	double enc_s;
	size_t *small, n_small; /* plans of small targets, measured in parallel over tensors */
} enc_state;

#define SMALL_TENSOR (1u << 22) /* elements: below this a tensor is encoded by one worker */

/* pass 1 for one target: convert, count zeros, decide by sparsity, encode, keep sizes and CRCs */
static int measure(enc_state *s, plan *p, int threads)
{
	const uint16_t *w;
	uint16_t *buf = NULL;
	fpk_tcsl tc;
	memset(&tc, 0, sizeof(tc));
	int rc = get16(p, threads, &w, &buf, &p->rs);
	if (rc)
		return rc;
	p->rounded = p->t->dtype == FPK_F32;
	p->zeros = count_zero16(w, p->t->numel);
	double sp = (double)p->zeros / (double)p->t->numel;
	if (sp < s->o->min_sparsity) {
		p->act = ACT_COPY;
		snprintf(p->reason, sizeof(p->reason), "sparsity %.4f is below --min-sparsity %.4f", sp, s->o->min_sparsity);
		goto done;
	}
	double t0 = fpk_now_s();
	rc = fpk_tcsl_encode(&tc, w, p->t->shape[0], p->t->shape[1], p->enc_dtype, s->o->reorder, s->o->allow_nan,
			     threads);
	p->enc_s = fpk_now_s() - t0;
	if (rc) {
		rc = fpk_error_wrap(rc, "tensor '%s': ", p->t->name);
		goto done;
	}
	p->crc_v = fpk_crc32(0, tc.values, tc.n_entries * 4);
	p->crc_o = fpk_crc32(0, tc.offsets, (size_t)(tc.tiles_m * tc.tiles_k + 2) * 4);
	p->shape = tc;
	p->shape.values = NULL;
	p->shape.offsets = NULL;
done:
	fpk_tcsl_release(&tc);
	free(buf);
	return rc;
}

static int measure_small(void *ctx, size_t i, int tid)
{
	(void)tid;
	enc_state *s = ctx;
	return measure(s, &s->plans[s->small[i]], 1);
}

static cJSON *shape_json(int64_t a, int64_t b)
{
	cJSON *s = cJSON_CreateArray();
	cJSON_AddItemToArray(s, cJSON_CreateNumber((double)a));
	cJSON_AddItemToArray(s, cJSON_CreateNumber((double)b));
	return s;
}

static cJSON *globs_json(const char *const *g, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(g[i]));
	return a;
}

static cJSON *build_report(enc_state *s, fpk_encode_report *r)
{
	const fpk_encode_opts *o = s->o;
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "format", FPK_PACK_FORMAT);
	cJSON_AddNumberToObject(root, "version", FPK_PACK_VERSION);
	cJSON_AddStringToObject(root, "tool", "flashllm-pack " FPK_VERSION);
	cJSON *op = cJSON_AddObjectToObject(root, "options");
	cJSON_AddNumberToObject(op, "min_sparsity", o->min_sparsity);
	cJSON_AddBoolToObject(op, "reorder", o->reorder);
	if (dtype_opt_name(o->dtype))
		cJSON_AddStringToObject(op, "dtype", dtype_opt_name(o->dtype));
	else
		cJSON_AddNullToObject(op, "dtype");
	cJSON_AddItemToObject(op, "include", globs_json(o->select.include, o->select.n_include));
	cJSON_AddItemToObject(op, "exclude", globs_json(o->select.exclude, o->select.n_exclude));
	cJSON_AddBoolToObject(op, "allow_nan", o->allow_nan);
	cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
	for (size_t i = 0; i < s->m->n_tensors; i++) {
		const plan *p = &s->plans[i];
		const fpk_st_tensor *t = p->t;
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "name", t->name);
		cJSON_AddStringToObject(x, "action", p->act == ACT_ENCODE ? "encoded" : "dense");
		cJSON_AddStringToObject(x, "dtype", fpk_dtypes[t->dtype].name);
		cJSON *sh = cJSON_AddArrayToObject(x, "shape");
		for (int d = 0; d < t->ndim; d++)
			cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
		cJSON_AddStringToObject(x, "shard", s->m->shard_names[t->shard]);
		r->bytes_in += t->nbytes;
		if (p->act == ACT_ENCODE) {
			const fpk_tcsl *tc = &p->shape;
			uint64_t stored = tc->n_entries * 4 + (uint64_t)(tc->tiles_m * tc->tiles_k + 2) * 4;
			cJSON_AddStringToObject(x, "stored_dtype", fpk_dtypes[tc->dtype].name);
			cJSON_AddItemToObject(x, "padded_shape", shape_json(tc->m_pad, tc->k_pad));
			cJSON_AddNumberToObject(x, "nnz", (double)tc->nnz);
			cJSON_AddNumberToObject(x, "sparsity", 1.0 - (double)tc->nnz / (double)t->numel);
			cJSON_AddNumberToObject(x, "n_entries", (double)tc->n_entries);
			cJSON_AddNumberToObject(x, "dense_bytes", (double)(t->numel * 2));
			cJSON_AddNumberToObject(x, "stored_bytes", (double)stored);
			r->encoded_dense_bytes += t->numel * 2;
			r->encoded_stored_bytes += stored;
			r->bytes_out += stored;
			r->n_encoded++;
			if (p->rounded) {
				cJSON *rd = cJSON_AddObjectToObject(x, "rounding");
				cJSON_AddStringToObject(rd, "from", "F32");
				cJSON_AddStringToObject(rd, "to", fpk_dtypes[tc->dtype].name);
				cJSON_AddNumberToObject(rd, "max_abs_error", p->rs.max_abs);
				cJSON_AddNumberToObject(rd, "max_rel_error", p->rs.max_rel);
				cJSON_AddNumberToObject(rd, "changed", (double)p->rs.changed);
				cJSON_AddNumberToObject(rd, "flushed_to_zero", (double)p->rs.flushed);
				cJSON_AddNumberToObject(rd, "overflowed_to_inf", (double)p->rs.overflowed);
			}
		} else {
			cJSON_AddStringToObject(x, "reason", p->reason);
			if (p->targeted && p->zeros)
				cJSON_AddNumberToObject(x, "sparsity", (double)p->zeros / (double)t->numel);
			cJSON_AddNumberToObject(x, "stored_bytes", (double)t->nbytes);
			r->bytes_out += t->nbytes;
			r->n_dense++;
		}
		cJSON_AddItemToArray(arr, x);
	}
	r->n_tensors = s->m->n_tensors;
	cJSON *tot = cJSON_AddObjectToObject(root, "totals");
	cJSON_AddNumberToObject(tot, "tensors", (double)r->n_tensors);
	cJSON_AddNumberToObject(tot, "encoded", (double)r->n_encoded);
	cJSON_AddNumberToObject(tot, "dense", (double)r->n_dense);
	cJSON_AddNumberToObject(tot, "input_bytes", (double)r->bytes_in);
	cJSON_AddNumberToObject(tot, "output_bytes", (double)r->bytes_out);
	cJSON_AddNumberToObject(tot, "encoded_dense_bytes", (double)r->encoded_dense_bytes);
	cJSON_AddNumberToObject(tot, "encoded_stored_bytes", (double)r->encoded_stored_bytes);
	return root;
}

/* copy the input shard's metadata, minus our keys (a re-encode starts clean) */
static int copy_meta(fpk_st_writer *w, const fpk_st_file *f)
{
	for (const cJSON *kv = f->metadata ? f->metadata->child : NULL; kv; kv = kv->next) {
		if (!kv->string || !cJSON_IsString(kv) || !strncmp(kv->string, "flashllm_pack.", 14))
			continue;
		int rc = fpk_st_writer_meta(w, kv->string, kv->valuestring);
		if (rc)
			return rc;
	}
	return 0;
}

/* index.json for a sharded output: the input's index with weight_map rebuilt from (name, shard) pairs */
static int write_index(const fpk_st_model *m, const char *dst, char **names, const int *shard, size_t n, uint64_t total)
{
	if (!m->index_name)
		return 0;
	cJSON *idx = cJSON_Duplicate(m->index, 1);
	int rc = 0;
	char *txt = NULL, *to = fpk_path_join(dst, m->index_name);
	if (!idx || !to) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(idx, "weight_map");
	cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
	for (size_t i = 0; i < n; i++)
		cJSON_AddStringToObject(wm, names[i], m->shard_names[shard[i]]);
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(idx, "metadata");
	if (cJSON_IsObject(meta)) {
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "total_size");
		cJSON_AddNumberToObject(meta, "total_size", (double)total);
	}
	txt = cJSON_Print(idx);
	rc = txt ? fpk_write_file_atomic(to, txt, strlen(txt)) : fpk_error_set(FPK_EIO, "out of memory");
done:
	cJSON_Delete(idx);
	free(txt);
	free(to);
	return rc;
}

typedef struct namelist {
	char **v;
	int *shard;
	size_t n, cap;
	uint64_t bytes;
} namelist;

static int nl_add(namelist *l, const char *name, int shard, uint64_t bytes)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 64;
		char **nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv)
			return fpk_error_set(FPK_EIO, "out of memory");
		l->v = nv;
		int *ns = realloc(l->shard, nc * sizeof(*ns));
		if (!ns)
			return fpk_error_set(FPK_EIO, "out of memory");
		l->shard = ns;
		l->cap = nc;
	}
	if (!(l->v[l->n] = strdup(name)))
		return fpk_error_set(FPK_EIO, "out of memory");
	l->shard[l->n++] = shard;
	l->bytes += bytes;
	return 0;
}

static void nl_free(namelist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->shard);
}

/* pass 2 for one shard: declare, then stream every tensor */
static int write_shard(enc_state *s, size_t sh, const char *dir, size_t *ti, namelist *names, uint64_t *done_b,
		       uint64_t total_b)
{
	const fpk_st_file *f = s->m->shards[sh];
	fpk_st_writer *w = NULL;
	/* a single-file input (any name) becomes the pack's model.safetensors; shards keep their names */
	const char *fname = s->m->index_name ? s->m->shard_names[sh] : "model.safetensors";
	char *path = fpk_path_join(dir, fname), *vn = NULL, *on = NULL, *meta = NULL;
	int rc = 0;
	size_t first = *ti;
	char key[1024];
	if (!path)
		return fpk_error_set(FPK_EIO, "out of memory");
	if ((rc = fpk_st_writer_new(&w, path)) || (rc = copy_meta(w, f)) ||
	    (rc = fpk_st_writer_meta(w, FPK_PACK_KEY_FORMAT, FPK_PACK_FORMAT)))
		goto done;
	snprintf(key, sizeof(key), "%d", FPK_PACK_VERSION);
	if ((rc = fpk_st_writer_meta(w, FPK_PACK_KEY_VERSION, key)))
		goto done;
	for (size_t i = 0; i < f->n_tensors; i++) {
		plan *p = &s->plans[first + i];
		if (p->act != ACT_ENCODE)
			continue;
		snprintf(key, sizeof(key), "%s%s", FPK_PACK_KEY_TENSOR, p->t->name);
		if (!(meta = fpk_pack_tensor_meta(&p->shape, p->crc_v, p->crc_o))) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		if ((rc = fpk_st_writer_meta(w, key, meta)))
			goto done;
		free(meta);
		meta = NULL;
	}
	for (size_t i = 0; i < f->n_tensors; i++) {
		plan *p = &s->plans[first + i];
		const fpk_st_tensor *t = p->t;
		if (p->act == ACT_COPY) {
			if ((rc = fpk_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape)) ||
			    (rc = nl_add(names, t->name, (int)sh, t->nbytes)))
				goto done;
			continue;
		}
		int64_t ne = (int64_t)p->shape.n_entries, no = p->shape.tiles_m * p->shape.tiles_k + 2;
		free(vn);
		free(on);
		vn = fpk_pack_array_name(t->name, FPK_PACK_SUFFIX_VALUES);
		on = fpk_pack_array_name(t->name, FPK_PACK_SUFFIX_OFFSETS);
		if (!vn || !on) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		if ((rc = fpk_st_writer_add(w, vn, FPK_U32, 1, &ne)) || (rc = fpk_st_writer_add(w, on, FPK_I32, 1, &no)) ||
		    (rc = nl_add(names, vn, (int)sh, (uint64_t)ne * 4)) || (rc = nl_add(names, on, (int)sh, (uint64_t)no * 4)))
			goto done;
	}
	if ((rc = fpk_st_writer_begin(w)))
		goto done;
	for (size_t i = 0; i < f->n_tensors; i++) {
		plan *p = &s->plans[first + i];
		const fpk_st_tensor *t = p->t;
		if (p->act == ACT_COPY) {
			if (t->nbytes && (rc = fpk_st_writer_write(w, t->data, t->nbytes)))
				goto done;
		} else {
			const uint16_t *w16;
			uint16_t *buf = NULL;
			fpk_tcsl tc;
			if ((rc = get16(p, s->threads, &w16, &buf, NULL)))
				goto done;
			double t0 = fpk_now_s();
			rc = fpk_tcsl_encode(&tc, w16, t->shape[0], t->shape[1], p->enc_dtype, s->o->reorder, s->o->allow_nan,
					     s->threads);
			s->enc_s += fpk_now_s() - t0;
			free(buf);
			if (rc) {
				rc = fpk_error_wrap(rc, "tensor '%s': ", t->name);
				goto done;
			}
			size_t ob = (size_t)(tc.tiles_m * tc.tiles_k + 2) * 4;
			if (tc.n_entries != p->shape.n_entries || fpk_crc32(0, tc.values, tc.n_entries * 4) != p->crc_v ||
			    fpk_crc32(0, tc.offsets, ob) != p->crc_o)
				rc = fpk_error_set(FPK_EFAIL, "tensor '%s': the second encoding differs from the first", t->name);
			if (!rc && tc.n_entries)
				rc = fpk_st_writer_write(w, tc.values, tc.n_entries * 4);
			if (!rc)
				rc = fpk_st_writer_write(w, tc.offsets, ob);
			fpk_tcsl_release(&tc);
			if (rc)
				goto done;
		}
		*done_b += t->nbytes;
		if (s->o->progress)
			s->o->progress(s->o->progress_ud, "encode", *done_b, total_b);
	}
	rc = fpk_st_writer_commit(w);
	w = NULL;
done:
	fpk_st_writer_abort(w);
	*ti = first + f->n_tensors;
	free(path);
	free(vn);
	free(on);
	free(meta);
	return rc;
}

static int check_io_paths(const char *in, const char *out, int dir_input)
{
	if (!out || !*out)
		return fpk_error_set(FPK_EUSAGE, "missing output directory (-o PACK)");
	if (dir_input ? fpk_path_is_within(out, in) : fpk_path_is_within(out, in) || fpk_path_is_within(in, out))
		return fpk_error_set(FPK_EUSAGE, "output '%s' overlaps input '%s'", out, in);
	return 0;
}

int fpk_encode_run(const fpk_encode_opts *o, fpk_encode_report *report)
{
	int rc = 0;
	double t0 = fpk_now_s();
	enc_state s;
	fpk_outdir od = {0};
	namelist names = {0};
	fpk_encode_report rep;
	memset(&s, 0, sizeof(s));
	memset(&rep, 0, sizeof(rep));
	s.o = o;
	s.threads = o->threads < 1 ? fpk_default_threads() : o->threads;
	if (report)
		memset(report, 0, sizeof(*report));
	if (o->min_sparsity < 0 || o->min_sparsity > 1 || isnan(o->min_sparsity))
		return fpk_error_set(FPK_EUSAGE, "--min-sparsity %g is out of range, expected 0..1", o->min_sparsity);
	if (o->dtype != -1 && o->dtype != FPK_F16 && o->dtype != FPK_BF16)
		return fpk_error_set(FPK_EUSAGE, "--dtype must be f16 or bf16");
	if (!o->in || !fpk_path_exists(o->in))
		return fpk_error_set(FPK_EIO, "input '%s' does not exist", o->in ? o->in : "");
	int dir_input = fpk_is_dir(o->in);
	if ((rc = check_io_paths(o->in, o->out, dir_input)))
		return rc;
	if ((rc = fpk_st_model_open(&s.m, o->in)))
		goto done;
	if (fpk_pack_detect(s.m)) {
		rc = fpk_error_set(FPK_EUSAGE, "input '%s' is already a pack (decode it first)", o->in);
		goto done;
	}
	if (!(s.plans = calloc(s.m->n_tensors ? s.m->n_tensors : 1, sizeof(*s.plans)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	uint64_t total_b = 0, done_b = 0;
	for (size_t i = 0; i < s.m->n_tensors; i++) {
		s.plans[i].t = s.m->tensors[i];
		total_b += s.m->tensors[i]->nbytes;
		if ((rc = plan_tensor(&s.plans[i], o)))
			goto done;
	}
	/* pass 1: sizes and CRCs of every encoded tensor, before any output exists. Small tensors in parallel, one
	 * worker each; large ones one at a time with every worker on their tiles. */
	if (!(s.small = malloc(s.m->n_tensors * sizeof(*s.small) + 1))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < s.m->n_tensors; i++)
		if (s.plans[i].act == ACT_ENCODE && s.plans[i].t->numel < SMALL_TENSOR)
			s.small[s.n_small++] = i;
	if ((rc = fpk_parallel_for(s.n_small, s.threads, measure_small, &s)))
		goto done;
	for (size_t i = 0; i < s.m->n_tensors; i++) {
		if (s.plans[i].act == ACT_ENCODE && s.plans[i].t->numel >= SMALL_TENSOR &&
		    (rc = measure(&s, &s.plans[i], s.threads)))
			goto done;
	}
	if ((rc = fpk_outdir_begin(&od, o->out, o->force)))
		goto done;
	size_t ti = 0;
	for (size_t sh = 0; sh < s.m->n_shards; sh++)
		if ((rc = write_shard(&s, sh, od.tmp_path, &ti, &names, &done_b, total_b)))
			goto done;
	if ((rc = write_index(s.m, od.tmp_path, names.v, names.shard, names.n, names.bytes)))
		goto done;
	if ((rc = copy_aux_files(s.m, dir_input, od.tmp_path, FPK_PACK_REPORT)))
		goto done;
	rep.json = build_report(&s, &rep);
	cJSON *sec = cJSON_CreateObject();
	cJSON_AddStringToObject(sec, "format", FPK_PACK_FORMAT);
	cJSON_AddNumberToObject(sec, "version", FPK_PACK_VERSION);
	cJSON_AddStringToObject(sec, "tool", "flashllm-pack " FPK_VERSION);
	cJSON *tile = cJSON_AddArrayToObject(sec, "tile");
	cJSON_AddItemToArray(tile, cJSON_CreateNumber(FPK_TCSL_TILE_M));
	cJSON_AddItemToArray(tile, cJSON_CreateNumber(FPK_TCSL_TILE_K));
	cJSON_AddBoolToObject(sec, "reorder", o->reorder);
	cJSON_AddNumberToObject(sec, "min_sparsity", o->min_sparsity);
	cJSON_AddNumberToObject(sec, "encoded_tensors", (double)rep.n_encoded);
	cJSON_AddStringToObject(sec, "values_suffix", FPK_PACK_SUFFIX_VALUES);
	cJSON_AddStringToObject(sec, "offsets_suffix", FPK_PACK_SUFFIX_OFFSETS);
	cJSON_AddStringToObject(sec, "report", FPK_PACK_REPORT);
	if ((rc = write_config(s.m, od.tmp_path, sec)))
		goto done;
	char *txt = cJSON_Print(rep.json);
	char *rp = fpk_path_join(od.tmp_path, FPK_PACK_REPORT);
	rc = txt && rp ? fpk_write_file_atomic(rp, txt, strlen(txt)) : fpk_error_set(FPK_EIO, "out of memory");
	free(txt);
	free(rp);
	if (rc)
		goto done;
	rc = fpk_outdir_commit(&od);
done:
	if (rc)
		fpk_outdir_abort(&od);
	rep.seconds = fpk_now_s() - t0;
	for (size_t i = 0; s.plans && i < s.m->n_tensors; i++)
		s.enc_s += s.plans[i].enc_s;
	rep.encode_seconds = s.enc_s;
	if (report && !rc)
		*report = rep;
	else
		fpk_encode_report_release(&rep);
	nl_free(&names);
	free(s.small);
	free(s.plans);
	fpk_st_model_close(s.m);
	return rc;
}

/* ---- decode ---- */
int fpk_decode_run(const char *in, const char *out, int force, int threads, fpk_progress_fn progress, void *ud)
{
	int rc = 0;
	fpk_pack *p = NULL;
	fpk_outdir od = {0};
	fpk_st_writer *w = NULL;
	namelist names = {0};
	uint16_t *buf = NULL;
	if (!in || !fpk_path_exists(in))
		return fpk_error_set(FPK_EIO, "input '%s' does not exist", in ? in : "");
	int dir_input = fpk_is_dir(in);
	if ((rc = check_io_paths(in, out, dir_input)))
		return rc;
	if ((rc = fpk_pack_open(&p, in, threads)))
		goto done;
	fpk_st_model *m = p->model;
	if ((rc = fpk_outdir_begin(&od, out, force)))
		goto done;
	uint64_t total = 0, done_b = 0;
	for (size_t i = 0; i < m->n_tensors; i++)
		total += m->tensors[i]->nbytes;
	size_t ti = 0;
	for (size_t sh = 0; sh < m->n_shards; sh++) {
		const fpk_st_file *f = m->shards[sh];
		char *path = fpk_path_join(od.tmp_path, m->shard_names[sh]);
		if (!path) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		rc = fpk_st_writer_new(&w, path);
		free(path);
		if (rc)
			goto done;
		for (const cJSON *kv = f->metadata ? f->metadata->child : NULL; kv; kv = kv->next)
			if (kv->string && cJSON_IsString(kv) && strncmp(kv->string, "flashllm_pack.", 14) &&
			    (rc = fpk_st_writer_meta(w, kv->string, kv->valuestring)))
				goto done;
		/* declare: each encoded tensor at the place of its values array, offsets arrays dropped */
		for (size_t i = 0; i < f->n_tensors; i++) {
			const fpk_st_tensor *t = &f->tensors[i];
			const fpk_pack_tensor *pt = NULL;
			for (size_t e = 0; e < p->n_encoded && !pt; e++)
				if (p->encoded[e].values_t == t)
					pt = &p->encoded[e];
			if (pt) {
				int64_t shp[2] = {pt->tcsl.m, pt->tcsl.k};
				if ((rc = fpk_st_writer_add(w, pt->name, pt->tcsl.dtype, 2, shp)) ||
				    (rc = nl_add(&names, pt->name, (int)sh, (uint64_t)(shp[0] * shp[1]) * 2)))
					goto done;
			} else if (!fpk_pack_is_array_name(t->name)) {
				if ((rc = fpk_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape)) ||
				    (rc = nl_add(&names, t->name, (int)sh, t->nbytes)))
					goto done;
			}
		}
		if ((rc = fpk_st_writer_begin(w)))
			goto done;
		for (size_t i = 0; i < f->n_tensors; i++, ti++) {
			const fpk_st_tensor *t = &f->tensors[i];
			const fpk_pack_tensor *pt = NULL;
			for (size_t e = 0; e < p->n_encoded && !pt; e++)
				if (p->encoded[e].values_t == t)
					pt = &p->encoded[e];
			if (pt) {
				size_t nb = (size_t)(pt->tcsl.m * pt->tcsl.k) * 2;
				if (!(buf = malloc(nb ? nb : 2))) {
					rc = fpk_error_set(FPK_EIO, "out of memory");
					goto done;
				}
				if ((rc = fpk_pack_decode_tensor(pt, buf)) || (rc = fpk_st_writer_write(w, buf, nb)))
					goto done;
				free(buf);
				buf = NULL;
			} else if (!fpk_pack_is_array_name(t->name) && t->nbytes) {
				if ((rc = fpk_st_writer_write(w, t->data, t->nbytes)))
					goto done;
			}
			done_b += t->nbytes;
			if (progress)
				progress(ud, "decode", done_b, total);
		}
		rc = fpk_st_writer_commit(w);
		w = NULL;
		if (rc)
			goto done;
	}
	if ((rc = write_index(m, od.tmp_path, names.v, names.shard, names.n, names.bytes)) ||
	    (rc = copy_aux_files(m, dir_input, od.tmp_path, FPK_PACK_REPORT)) || (rc = write_config(m, od.tmp_path, NULL)))
		goto done;
	rc = fpk_outdir_commit(&od);
done:
	fpk_st_writer_abort(w);
	if (rc)
		fpk_outdir_abort(&od);
	free(buf);
	nl_free(&names);
	fpk_pack_close(p);
	return rc;
}
