/* safetensors.c: strict validating reader (mmap) and streaming atomic writer for safetensors files and model
 * directories. Each rule of docs/format.md section 1 has its own message and a corruption test
 * (tests/unit/test_safetensors.c, tests/cli/corrupt_corpus.sh); the parser is fuzzed by tests/fuzz/. */
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------ reader */

static int utf8_valid(const uint8_t *s, size_t n, size_t *bad)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			*bad = i;
			return 0;
		}
		if (i + len > n) {
			*bad = i;
			return 0;
		}
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80) {
				*bad = i;
				return 0;
			}
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			*bad = i;
			return 0;
		}
		i += len;
	}
	return 1;
}

/* a JSON number that is a non-negative integer representable exactly */
static int json_uint(const cJSON *v, uint64_t *out)
{
	if (!cJSON_IsNumber(v))
		return 0;
	double d = v->valuedouble;
	if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d)
		return 0;
	*out = (uint64_t)d;
	return 1;
}

static int cmp_begin(const void *a, const void *b)
{
	const fpk_st_tensor *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_entry(const char *fname, const cJSON *e, fpk_st_tensor *t)
{
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
	if (!cJSON_IsObject(e))
		return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': entry is not a JSON object", fname, t->name);
	if (!cJSON_IsString(dt))
		return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': missing or non-string \"dtype\"", fname, t->name);
	if (fpk_dtype_from_name(dt->valuestring, &t->dtype))
		return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': unknown dtype '%s'", fname, t->name, dt->valuestring);
	if (!cJSON_IsArray(sh))
		return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': missing or non-array \"shape\"", fname, t->name);
	int nd = cJSON_GetArraySize(sh);
	if (nd > FPK_MAX_DIMS)
		return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': %d dimensions, at most %d supported", fname, t->name, nd,
				     FPK_MAX_DIMS);
	t->ndim = nd;
	uint64_t numel = 1;
	int overflow = 0;
	for (int i = 0; i < nd; i++) {
		uint64_t d;
		if (!json_uint(cJSON_GetArrayItem(sh, i), &d))
			return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': shape[%d] is not a non-negative integer", fname,
					     t->name, i);
		t->shape[i] = (int64_t)d;
		if (d != 0 && numel > UINT64_MAX / d)
			overflow = 1;
		numel *= d;
	}
	if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
		return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': \"data_offsets\" must be an array of 2 integers", fname,
				     t->name);
	if (!json_uint(cJSON_GetArrayItem(off, 0), &t->begin) || !json_uint(cJSON_GetArrayItem(off, 1), &t->end))
		return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': data_offsets are not non-negative integers", fname,
				     t->name);
	if (t->end < t->begin)
		return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': data_offsets end %llu before begin %llu", fname, t->name,
				     (unsigned long long)t->end, (unsigned long long)t->begin);
	unsigned es = fpk_dtypes[t->dtype].size;
	if (overflow || (numel != 0 && numel > UINT64_MAX / es))
		return fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s': shape is too large", fname, t->name);
	t->numel = numel;
	t->nbytes = t->end - t->begin;
	if (numel * es != t->nbytes)
		return fpk_error_set(FPK_EFORMAT,
				     "'%s': tensor '%s': shape/size mismatch: %llu elements of %s need %llu bytes, data_offsets "
				     "span %llu",
				     fname, t->name, (unsigned long long)numel, fpk_dtypes[t->dtype].name,
				     (unsigned long long)(numel * es), (unsigned long long)t->nbytes);
	return 0;
}

static int st_parse(fpk_st_file *f, const char *name)
{
	int rc = 0;
	cJSON *root = NULL;
	char **names = NULL;
	const uint8_t *b = f->bytes;

	if (f->size < 8)
		return fpk_error_set(FPK_EFORMAT, "'%s': truncated: %llu bytes, need at least 8 for the header length", name,
				     (unsigned long long)f->size);
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = (hl << 8) | b[i];
	f->header_len = hl;
	if (hl > FPK_ST_MAX_HEADER)
		return fpk_error_set(FPK_EFORMAT, "'%s': header length %llu exceeds the maximum of %u bytes", name,
				     (unsigned long long)hl, FPK_ST_MAX_HEADER);
	if (hl > f->size - 8)
		return fpk_error_set(FPK_EFORMAT, "'%s': header length %llu runs past the end of the file (%llu bytes)", name,
				     (unsigned long long)hl, (unsigned long long)f->size);
	if (hl < 2)
		return fpk_error_set(FPK_EFORMAT, "'%s': header length %llu is too small for a JSON object", name,
				     (unsigned long long)hl);
	f->data_offset = 8 + hl;
	const uint8_t *h = b + 8;
	size_t bad = 0;
	if (!utf8_valid(h, (size_t)hl, &bad))
		return fpk_error_set(FPK_EFORMAT, "'%s': header is not valid UTF-8 (byte %llu of the file)", name,
				     (unsigned long long)(8 + bad));
	if (memchr(h, 0, (size_t)hl))
		return fpk_error_set(FPK_EFORMAT, "'%s': header contains a NUL byte", name);
	if (h[0] != '{')
		return fpk_error_set(FPK_EFORMAT, "'%s': header does not start with '{' (not a JSON object)", name);
	const char *end = NULL;
	root = cJSON_ParseWithLengthOpts((const char *)h, (size_t)hl, &end, 0);
	if (!root) {
		const char *ep = cJSON_GetErrorPtr();
		long at = ep ? (long)(ep - (const char *)h) : -1;
		if (at < 0 || at > (long)hl)
			at = 0;
		return fpk_error_set(FPK_EFORMAT, "'%s': header is not valid JSON (near header byte %ld)", name, at);
	}
	for (const char *p = end; p && p < (const char *)h + hl; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			rc = fpk_error_set(FPK_EFORMAT, "'%s': header has bytes after the JSON object (header byte %ld)", name,
					   (long)(p - (const char *)h));
			goto done;
		}
	}
	if (!cJSON_IsObject(root)) {
		rc = fpk_error_set(FPK_EFORMAT, "'%s': header is not a JSON object", name);
		goto done;
	}
	size_t n = 0;
	for (cJSON *e = root->child; e; e = e->next)
		if (strcmp(e->string, "__metadata__"))
			n++;
	f->tensors = calloc(n ? n : 1, sizeof(*f->tensors));
	names = calloc(n ? n : 1, sizeof(*names));
	if (!f->tensors || !names) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	int seen_meta = 0;
	size_t i = 0;
	for (cJSON *e = root->child; e; e = e->next) {
		if (!strcmp(e->string, "__metadata__")) {
			if (seen_meta++) {
				rc = fpk_error_set(FPK_EFORMAT, "'%s': duplicate \"__metadata__\" in header", name);
				goto done;
			}
			if (!cJSON_IsObject(e)) {
				rc = fpk_error_set(FPK_EFORMAT, "'%s': \"__metadata__\" is not an object", name);
				goto done;
			}
			for (cJSON *kv = e->child; kv; kv = kv->next) {
				if (!cJSON_IsString(kv)) {
					rc = fpk_error_set(FPK_EFORMAT, "'%s': \"__metadata__\" value for '%s' is not a string", name,
							   kv->string);
					goto done;
				}
			}
			f->metadata = cJSON_Duplicate(e, 1);
			continue;
		}
		fpk_st_tensor *t = &f->tensors[i];
		t->name = strdup(e->string);
		if (!t->name) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		names[i] = t->name;
		f->n_tensors = ++i;
		if ((rc = parse_entry(name, e, t)))
			goto done;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t k = 1; k < n; k++) {
		if (!strcmp(names[k - 1], names[k])) {
			rc = fpk_error_set(FPK_EFORMAT, "'%s': duplicate tensor name '%s' in header", name, names[k]);
			goto done;
		}
	}
	uint64_t data_size = f->size - f->data_offset;
	for (size_t k = 0; k < n; k++) {
		fpk_st_tensor *t = &f->tensors[k];
		if (t->end > data_size) {
			rc = fpk_error_set(FPK_EFORMAT,
					   "'%s': tensor '%s': data_offsets [%llu, %llu) run past the end of the data region "
					   "(%llu bytes)",
					   name, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
					   (unsigned long long)data_size);
			goto done;
		}
	}
	qsort(f->tensors, n, sizeof(*f->tensors), cmp_begin);
	uint64_t pos = 0;
	for (size_t k = 0; k < n; k++) {
		fpk_st_tensor *t = &f->tensors[k];
		if (t->begin < pos) {
			rc = fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s' at [%llu, %llu) overlaps tensor '%s' ending at %llu",
					   name, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
					   f->tensors[k - 1].name, (unsigned long long)pos);
			goto done;
		}
		if (t->begin > pos) {
			rc = fpk_error_set(FPK_EFORMAT, "'%s': data region has a gap of %llu bytes at offset %llu before tensor '%s'",
					   name, (unsigned long long)(t->begin - pos), (unsigned long long)pos, t->name);
			goto done;
		}
		pos = t->end;
		t->data = t->nbytes ? b + f->data_offset + t->begin : NULL;
	}
	if (pos != data_size) {
		rc = fpk_error_set(FPK_EFORMAT,
				   "'%s': data region not fully covered: tensors end at %llu, data region has %llu bytes", name,
				   (unsigned long long)pos, (unsigned long long)data_size);
		goto done;
	}
done:
	free(names);
	cJSON_Delete(root);
	return rc;
}

static int st_new(fpk_st_file **out, const char *name)
{
	fpk_st_file *f = calloc(1, sizeof(*f));
	*out = NULL;
	if (!f || !(f->path = strdup(name))) {
		free(f);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	*out = f;
	return 0;
}

int fpk_st_open_memory(fpk_st_file **out, const uint8_t *buf, size_t len, const char *name)
{
	fpk_st_file *f;
	int rc = st_new(&f, name);
	if (rc)
		return rc;
	f->bytes = buf;
	f->size = len;
	if ((rc = st_parse(f, name))) {
		fpk_st_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

int fpk_st_open(fpk_st_file **out, const char *path)
{
	fpk_st_file *f;
	int rc = st_new(&f, path);
	if (rc)
		return rc;
	if ((rc = fpk_map_file(&f->map, path))) {
		fpk_st_close(f);
		return rc;
	}
	f->bytes = f->map.data;
	f->size = f->map.size;
	if ((rc = st_parse(f, path))) {
		fpk_st_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

void fpk_st_close(fpk_st_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_tensors; i++)
		free(f->tensors[i].name);
	free(f->tensors);
	cJSON_Delete(f->metadata);
	fpk_map_release(&f->map);
	free(f->path);
	free(f);
}

const fpk_st_tensor *fpk_st_find(const fpk_st_file *f, const char *name)
{
	for (size_t i = 0; i < f->n_tensors; i++)
		if (!strcmp(f->tensors[i].name, name))
			return &f->tensors[i];
	return NULL;
}

const char *fpk_st_meta(const fpk_st_file *f, const char *key)
{
	const cJSON *v = f->metadata ? cJSON_GetObjectItemCaseSensitive(f->metadata, key) : NULL;
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ------------------------------------------------------------------------------------------------ model */

#define INDEX_NAME "model.safetensors.index.json"

static int model_add_shard(fpk_st_model *m, const char *fname)
{
	for (size_t i = 0; i < m->n_shards; i++)
		if (!strcmp(m->shard_names[i], fname))
			return 0;
	char **nn = realloc(m->shard_names, (m->n_shards + 1) * sizeof(*nn));
	if (!nn)
		return fpk_error_set(FPK_EIO, "out of memory");
	m->shard_names = nn;
	fpk_st_file **ns = realloc(m->shards, (m->n_shards + 1) * sizeof(*ns));
	if (!ns)
		return fpk_error_set(FPK_EIO, "out of memory");
	m->shards = ns;
	m->shard_names[m->n_shards] = strdup(fname);
	m->shards[m->n_shards] = NULL;
	if (!m->shard_names[m->n_shards])
		return fpk_error_set(FPK_EIO, "out of memory");
	m->n_shards++;
	return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
	const fpk_st_tensor *x = *(const fpk_st_tensor *const *)a, *y = *(const fpk_st_tensor *const *)b;
	return strcmp(x->name, y->name);
}

int fpk_st_model_open(fpk_st_model **out, const char *path)
{
	int rc = 0;
	char *ipath = NULL, *itext = NULL;
	const fpk_st_tensor **sorted = NULL;
	fpk_st_model *m = calloc(1, sizeof(*m));
	*out = NULL;
	if (!m)
		return fpk_error_set(FPK_EIO, "out of memory");

	if (!fpk_path_exists(path)) {
		rc = fpk_error_set(FPK_EIO, "'%s' does not exist", path);
		goto done;
	}
	if (fpk_is_dir(path)) {
		m->dir = strdup(path);
		ipath = fpk_path_join(path, INDEX_NAME);
		if (!m->dir || !ipath) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		if (fpk_path_exists(ipath)) {
			if ((rc = fpk_read_file(ipath, &itext, NULL)))
				goto done;
			m->index = cJSON_Parse(itext);
			m->index_name = strdup(INDEX_NAME);
			if (!m->index) {
				rc = fpk_error_set(FPK_EFORMAT, "'%s': not valid JSON", ipath);
				goto done;
			}
			const cJSON *wm = cJSON_GetObjectItemCaseSensitive(m->index, "weight_map");
			if (!cJSON_IsObject(wm)) {
				rc = fpk_error_set(FPK_EFORMAT, "'%s': missing \"weight_map\" object", ipath);
				goto done;
			}
			for (const cJSON *e = wm->child; e; e = e->next) {
				if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/')) {
					rc = fpk_error_set(FPK_EFORMAT, "'%s': weight_map entry '%s' is not a shard file name", ipath,
							   e->string);
					goto done;
				}
				if ((rc = model_add_shard(m, e->valuestring)))
					goto done;
			}
			if (m->n_shards == 0) {
				rc = fpk_error_set(FPK_EFORMAT, "'%s': weight_map is empty", ipath);
				goto done;
			}
		} else {
			char *single = fpk_path_join(path, "model.safetensors");
			int ok = single && fpk_path_exists(single);
			free(single);
			if (!ok) {
				rc = fpk_error_set(FPK_EIO, "'%s': no model.safetensors or %s in this directory", path, INDEX_NAME);
				goto done;
			}
			if ((rc = model_add_shard(m, "model.safetensors")))
				goto done;
		}
	} else {
		const char *slash = strrchr(path, '/');
		m->dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup(".");
		if (!m->dir || (rc = model_add_shard(m, slash ? slash + 1 : path)))
			goto done;
		if (!rc && !m->dir)
			rc = fpk_error_set(FPK_EIO, "out of memory");
		if (rc)
			goto done;
	}

	size_t total = 0;
	for (size_t s = 0; s < m->n_shards; s++) {
		char *sp = fpk_path_join(m->dir, m->shard_names[s]);
		if (!sp) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		if (m->index && !fpk_path_exists(sp)) {
			rc = fpk_error_set(FPK_EFORMAT, "'%s': shard '%s' listed in the index does not exist", ipath,
					   m->shard_names[s]);
			free(sp);
			goto done;
		}
		rc = fpk_st_open(&m->shards[s], sp);
		free(sp);
		if (rc)
			goto done;
		total += m->shards[s]->n_tensors;
	}
	m->tensors = calloc(total ? total : 1, sizeof(*m->tensors));
	sorted = calloc(total ? total : 1, sizeof(*sorted));
	if (!m->tensors || !sorted) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	for (size_t s = 0; s < m->n_shards; s++) {
		for (size_t i = 0; i < m->shards[s]->n_tensors; i++) {
			fpk_st_tensor *t = &m->shards[s]->tensors[i];
			t->shard = (int)s;
			m->tensors[m->n_tensors++] = t;
		}
	}
	memcpy(sorted, m->tensors, total * sizeof(*sorted));
	qsort(sorted, total, sizeof(*sorted), cmp_tensor_name);
	for (size_t i = 1; i < total; i++) {
		if (!strcmp(sorted[i - 1]->name, sorted[i]->name)) {
			rc = fpk_error_set(FPK_EFORMAT, "tensor '%s' appears in both shard '%s' and shard '%s'", sorted[i]->name,
					   m->shard_names[sorted[i - 1]->shard], m->shard_names[sorted[i]->shard]);
			goto done;
		}
	}
	if (m->index) {
		const cJSON *wm = cJSON_GetObjectItemCaseSensitive(m->index, "weight_map");
		size_t listed = 0;
		for (const cJSON *e = wm->child; e; e = e->next, listed++) {
			const fpk_st_tensor *t = fpk_st_model_find(m, e->string);
			if (!t) {
				rc = fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s' is listed for shard '%s' but no shard holds it",
						   ipath, e->string, e->valuestring);
				goto done;
			}
			if (strcmp(m->shard_names[t->shard], e->valuestring)) {
				rc = fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s' is listed for shard '%s' but is in shard '%s'",
						   ipath, e->string, e->valuestring, m->shard_names[t->shard]);
				goto done;
			}
		}
		if (listed != total) {
			for (size_t i = 0; i < total; i++) {
				if (!cJSON_GetObjectItemCaseSensitive(wm, m->tensors[i]->name)) {
					rc = fpk_error_set(FPK_EFORMAT, "'%s': tensor '%s' of shard '%s' is not listed in the index",
							   ipath, m->tensors[i]->name, m->shard_names[m->tensors[i]->shard]);
					goto done;
				}
			}
			rc = fpk_error_set(FPK_EFORMAT, "'%s': weight_map lists a tensor twice", ipath);
			goto done;
		}
	}
done:
	free(ipath);
	free(itext);
	free(sorted);
	if (rc) {
		fpk_st_model_close(m);
		return rc;
	}
	*out = m;
	return 0;
}

void fpk_st_model_close(fpk_st_model *m)
{
	if (!m)
		return;
	for (size_t s = 0; s < m->n_shards; s++) {
		fpk_st_close(m->shards ? m->shards[s] : NULL);
		free(m->shard_names[s]);
	}
	free(m->shards);
	free(m->shard_names);
	free(m->tensors);
	cJSON_Delete(m->index);
	free(m->index_name);
	free(m->dir);
	free(m);
}

const fpk_st_tensor *fpk_st_model_find(const fpk_st_model *m, const char *name)
{
	for (size_t i = 0; i < m->n_tensors; i++)
		if (!strcmp(m->tensors[i]->name, name))
			return m->tensors[i];
	return NULL;
}

/* ------------------------------------------------------------------------------------------------ writer */

typedef struct wtensor {
	char *name;
	fpk_dtype dtype;
	int ndim;
	int64_t shape[FPK_MAX_DIMS];
	uint64_t nbytes;
} wtensor;

struct fpk_st_writer {
	char *path;
	fpk_atomic_file file;
	int open;
	size_t n, cap;
	wtensor *t;
	size_t n_meta;
	char **meta; /* key, value, key, value ... */
	uint64_t header_len, data_len, written;
};

int fpk_st_writer_new(fpk_st_writer **out, const char *path)
{
	fpk_st_writer *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (!w || !(w->path = strdup(path))) {
		free(w);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	w->file.fd = -1;
	*out = w;
	return 0;
}

int fpk_st_writer_meta(fpk_st_writer *w, const char *key, const char *value)
{
	char **nm = realloc(w->meta, (w->n_meta + 1) * 2 * sizeof(*nm));
	if (!nm)
		return fpk_error_set(FPK_EIO, "out of memory");
	w->meta = nm;
	w->meta[2 * w->n_meta] = strdup(key);
	w->meta[2 * w->n_meta + 1] = strdup(value);
	w->n_meta++;
	if (!w->meta[2 * w->n_meta - 2] || !w->meta[2 * w->n_meta - 1])
		return fpk_error_set(FPK_EIO, "out of memory");
	return 0;
}

int fpk_st_writer_add(fpk_st_writer *w, const char *name, fpk_dtype dtype, int ndim, const int64_t *shape)
{
	if (ndim < 0 || ndim > FPK_MAX_DIMS)
		return fpk_error_set(FPK_EUSAGE, "tensor '%s': %d dimensions, at most %d supported", name, ndim, FPK_MAX_DIMS);
	if (w->n == w->cap) {
		size_t nc = w->cap ? 2 * w->cap : 64;
		wtensor *nt = realloc(w->t, nc * sizeof(*nt));
		if (!nt)
			return fpk_error_set(FPK_EIO, "out of memory");
		w->t = nt;
		w->cap = nc;
	}
	wtensor *t = &w->t[w->n];
	memset(t, 0, sizeof(*t));
	if (!(t->name = strdup(name)))
		return fpk_error_set(FPK_EIO, "out of memory");
	t->dtype = dtype;
	t->ndim = ndim;
	uint64_t numel = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0) {
			free(t->name);
			return fpk_error_set(FPK_EUSAGE, "tensor '%s': negative dimension", name);
		}
		t->shape[i] = shape[i];
		numel *= (uint64_t)shape[i];
	}
	t->nbytes = numel * fpk_dtypes[dtype].size;
	w->n++;
	w->data_len += t->nbytes;
	return 0;
}

/* append s to the growable buffer, JSON-escaped when esc */
typedef struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 4096;
		while (nc < b->n + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s)
{
	sb_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[8];
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			sb_put(b, tmp, 2);
		} else if (c < 0x20) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", c);
			sb_put(b, tmp, 6);
		} else {
			sb_put(b, (const char *)&c, 1);
		}
	}
	sb_put(b, "\"", 1);
}

static void sb_fmt(sbuf *b, const char *fmt, unsigned long long v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), fmt, v);
	sb_put(b, tmp, (size_t)n);
}

int fpk_st_writer_begin(fpk_st_writer *w)
{
	sbuf b = {0};
	int rc;
	sb_put(&b, "{", 1);
	int first = 1;
	if (w->n_meta) {
		sb_put(&b, "\"__metadata__\":{", 16);
		for (size_t i = 0; i < w->n_meta; i++) {
			if (i)
				sb_put(&b, ",", 1);
			sb_str(&b, w->meta[2 * i]);
			sb_put(&b, ":", 1);
			sb_str(&b, w->meta[2 * i + 1]);
		}
		sb_put(&b, "}", 1);
		first = 0;
	}
	uint64_t off = 0;
	for (size_t i = 0; i < w->n; i++) {
		wtensor *t = &w->t[i];
		if (!first)
			sb_put(&b, ",", 1);
		first = 0;
		sb_str(&b, t->name);
		sb_put(&b, ":{\"dtype\":\"", 11);
		sb_put(&b, fpk_dtypes[t->dtype].name, strlen(fpk_dtypes[t->dtype].name));
		sb_put(&b, "\",\"shape\":[", 11);
		for (int d = 0; d < t->ndim; d++)
			sb_fmt(&b, d ? ",%llu" : "%llu", (unsigned long long)t->shape[d]);
		sb_fmt(&b, "],\"data_offsets\":[%llu", (unsigned long long)off);
		off += t->nbytes;
		sb_fmt(&b, ",%llu]}", (unsigned long long)off);
	}
	sb_put(&b, "}", 1);
	while (!b.oom && b.n % 8)
		sb_put(&b, " ", 1);
	if (b.oom) {
		free(b.p);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	w->header_len = b.n;
	uint8_t len8[8];
	for (int i = 0; i < 8; i++)
		len8[i] = (uint8_t)(w->header_len >> (8 * i));
	if ((rc = fpk_atomic_open(&w->file, w->path))) {
		free(b.p);
		return rc;
	}
	w->open = 1;
	rc = fpk_atomic_write(&w->file, len8, 8);
	if (!rc)
		rc = fpk_atomic_write(&w->file, b.p, b.n);
	free(b.p);
	return rc;
}

int fpk_st_writer_write(fpk_st_writer *w, const void *data, size_t len)
{
	if (!w->open)
		return fpk_error_set(FPK_EUSAGE, "'%s': write before begin", w->path);
	if (w->written + len > w->data_len)
		return fpk_error_set(FPK_EUSAGE, "'%s': %llu bytes written, more than the %llu declared", w->path,
				     (unsigned long long)(w->written + len), (unsigned long long)w->data_len);
	w->written += len;
	return fpk_atomic_write(&w->file, data, len);
}

int fpk_st_writer_fd(const fpk_st_writer *w)
{
	return w && w->open ? w->file.fd : -1;
}

uint64_t fpk_st_writer_size(const fpk_st_writer *w)
{
	/* header length is known only after begin; before it, estimate is not needed by callers */
	return 8 + w->header_len + w->data_len;
}

static void writer_free(fpk_st_writer *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->t[i].name);
	for (size_t i = 0; i < 2 * w->n_meta; i++)
		free(w->meta[i]);
	free(w->meta);
	free(w->t);
	free(w->path);
	free(w);
}

int fpk_st_writer_commit(fpk_st_writer *w)
{
	int rc = 0;
	if (!w->open)
		rc = fpk_st_writer_begin(w);
	if (!rc && w->written != w->data_len)
		rc = fpk_error_set(FPK_EUSAGE, "'%s': %llu data bytes written, %llu declared", w->path,
				   (unsigned long long)w->written, (unsigned long long)w->data_len);
	if (rc) {
		fpk_st_writer_abort(w);
		return rc;
	}
	rc = fpk_atomic_commit(&w->file);
	w->open = 0;
	writer_free(w);
	return rc;
}

void fpk_st_writer_abort(fpk_st_writer *w)
{
	if (!w)
		return;
	if (w->open)
		fpk_atomic_abort(&w->file);
	writer_free(w);
}
