/* pack.c: packed-model directory reader (rules R1-R15 of docs/format.md section 3) and writer helpers.
 * Tested by tests/unit/test_pack.c (one corruption test per rule) and tests/cli/encode_*.sh. */
#include "pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n > m && !strcmp(s + n - m, suf);
}

int fpk_pack_is_array_name(const char *name)
{
	return ends_with(name, FPK_PACK_SUFFIX_VALUES) || ends_with(name, FPK_PACK_SUFFIX_OFFSETS);
}

char *fpk_pack_array_name(const char *name, const char *suffix)
{
	size_t n = strlen(name), m = strlen(suffix);
	char *s = malloc(n + m + 1);
	if (s) {
		memcpy(s, name, n);
		memcpy(s + n, suffix, m + 1);
	}
	return s;
}

char *fpk_pack_tensor_meta(const fpk_tcsl *t, uint32_t crc_values, uint32_t crc_offsets)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "{\"shape\":[%lld,%lld],\"padded_shape\":[%lld,%lld],\"dtype\":\"%s\",\"tile\":[%d,%d],"
			 "\"reorder\":%s,\"nnz\":%llu,\"n_entries\":%llu,\"crc32_values\":\"%08x\",\"crc32_offsets\":\"%08x\"}",
			 (long long)t->m, (long long)t->k, (long long)t->m_pad, (long long)t->k_pad, fpk_dtypes[t->dtype].name,
			 FPK_TCSL_TILE_M, FPK_TCSL_TILE_K, t->reordered ? "true" : "false", (unsigned long long)t->nnz,
			 (unsigned long long)t->n_entries, crc_values, crc_offsets);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return NULL;
	return strdup(buf);
}

int fpk_pack_detect(const fpk_st_model *m)
{
	for (size_t s = 0; s < m->n_shards; s++)
		if (fpk_st_meta(m->shards[s], FPK_PACK_KEY_FORMAT))
			return 1;
	return 0;
}

const fpk_pack_tensor *fpk_pack_find(const fpk_pack *p, const char *name)
{
	for (size_t i = 0; i < p->n_encoded; i++)
		if (!strcmp(p->encoded[i].name, name))
			return &p->encoded[i];
	return NULL;
}

void fpk_pack_close(fpk_pack *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_encoded; i++) {
		free(p->encoded[i].name);
		free(p->encoded[i].copy);
	}
	free(p->encoded);
	fpk_st_model_close(p->model);
	free(p);
}

int fpk_pack_decode_tensor(const fpk_pack_tensor *t, uint16_t *w)
{
	int rc = fpk_tcsl_decode(&t->tcsl, w);
	if (rc)
		return fpk_error_wrap(rc, "tensor '%s': ", t->name);
	return 0;
}

/* ---- metadata parsing (R2-R4) ---- */
static int json_u64(const cJSON *o, const char *key, uint64_t *v)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 9007199254740992.0 ||
	    x->valuedouble != (double)(uint64_t)x->valuedouble)
		return 0;
	*v = (uint64_t)x->valuedouble;
	return 1;
}

static int json_pair(const cJSON *o, const char *key, int64_t v[2])
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2)
		return 0;
	for (int i = 0; i < 2; i++) {
		const cJSON *x = cJSON_GetArrayItem(a, i);
		if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 4294967296.0 ||
		    x->valuedouble != (double)(int64_t)x->valuedouble)
			return 0;
		v[i] = (int64_t)x->valuedouble;
	}
	return 1;
}

static int json_crc(const cJSON *o, const char *key, uint32_t *v)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(x) || strlen(x->valuestring) != 8)
		return 0;
	uint32_t r = 0;
	for (int i = 0; i < 8; i++) {
		char c = x->valuestring[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 99;
		if (d > 15)
			return 0;
		r = r << 4 | d;
	}
	*v = r;
	return 1;
}

#define R2(field) fpk_error_set(FPK_EFORMAT, "tensor '%s': metadata field '%s' is missing or malformed (rule R2)", name, field)

static int parse_tensor_meta(fpk_pack_tensor *pt, const char *name, const char *json)
{
	int rc = 0;
	cJSON *o = cJSON_Parse(json);
	fpk_tcsl *t = &pt->tcsl;
	if (!cJSON_IsObject(o)) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': metadata '%s%s' is not a JSON object (rule R2)", name,
				   FPK_PACK_KEY_TENSOR, name);
		goto done;
	}
	int64_t shape[2], padded[2], tile[2];
	uint64_t nnz, n_entries;
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(o, "dtype");
	const cJSON *ro = cJSON_GetObjectItemCaseSensitive(o, "reorder");
	if (!json_pair(o, "shape", shape)) { rc = R2("shape"); goto done; }
	if (!json_pair(o, "padded_shape", padded)) { rc = R2("padded_shape"); goto done; }
	if (!json_pair(o, "tile", tile)) { rc = R2("tile"); goto done; }
	if (!cJSON_IsString(dt)) { rc = R2("dtype"); goto done; }
	if (!cJSON_IsBool(ro)) { rc = R2("reorder"); goto done; }
	if (!json_u64(o, "nnz", &nnz)) { rc = R2("nnz"); goto done; }
	if (!json_u64(o, "n_entries", &n_entries)) { rc = R2("n_entries"); goto done; }
	if (!json_crc(o, "crc32_values", &pt->crc_values)) { rc = R2("crc32_values"); goto done; }
	if (!json_crc(o, "crc32_offsets", &pt->crc_offsets)) { rc = R2("crc32_offsets"); goto done; }
	if (fpk_dtype_from_name(dt->valuestring, &t->dtype) || (t->dtype != FPK_F16 && t->dtype != FPK_BF16)) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': dtype '%s', expected F16 or BF16 (rule R3)", name, dt->valuestring);
		goto done;
	}
	if (tile[0] != FPK_TCSL_TILE_M || tile[1] != FPK_TCSL_TILE_K) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': tile [%lld, %lld], expected [128, 64] (rule R4)", name,
				   (long long)tile[0], (long long)tile[1]);
		goto done;
	}
	if (shape[0] < 1 || shape[1] < 1) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': shape [%lld, %lld], expected both dims >= 1 (rule R4)", name,
				   (long long)shape[0], (long long)shape[1]);
		goto done;
	}
	t->m = shape[0];
	t->k = shape[1];
	t->tiles_m = (t->m + FPK_TCSL_TILE_M - 1) / FPK_TCSL_TILE_M;
	t->tiles_k = (t->k + FPK_TCSL_TILE_K - 1) / FPK_TCSL_TILE_K;
	t->m_pad = t->tiles_m * FPK_TCSL_TILE_M;
	t->k_pad = t->tiles_k * FPK_TCSL_TILE_K;
	if (padded[0] != t->m_pad || padded[1] != t->k_pad) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': padded_shape [%lld, %lld], expected [%lld, %lld] (rule R4)", name,
				   (long long)padded[0], (long long)padded[1], (long long)t->m_pad, (long long)t->k_pad);
		goto done;
	}
	if (nnz > (uint64_t)t->m * (uint64_t)t->k || n_entries % 4 || n_entries < nnz || n_entries > nnz + 3 * (uint64_t)(t->tiles_m * t->tiles_k)) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': nnz %llu and n_entries %llu do not fit shape [%lld, %lld] (rule R4)",
				   name, (unsigned long long)nnz, (unsigned long long)n_entries, (long long)t->m, (long long)t->k);
		goto done;
	}
	t->reordered = cJSON_IsTrue(ro);
	t->nnz = nnz;
	t->n_entries = n_entries;
done:
	cJSON_Delete(o);
	return rc;
}

/* ---- arrays (R5) ---- */
static int bind_arrays(fpk_pack_tensor *pt, const fpk_st_model *m, const fpk_st_file *f)
{
	const char *name = pt->name;
	char *vn = fpk_pack_array_name(name, FPK_PACK_SUFFIX_VALUES), *on = fpk_pack_array_name(name, FPK_PACK_SUFFIX_OFFSETS);
	int rc = 0;
	int64_t T = pt->tcsl.tiles_m * pt->tcsl.tiles_k;
	if (!vn || !on) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	const fpk_st_tensor *v = fpk_st_find(f, vn), *o = fpk_st_find(f, on);
	if (!v || !o) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': array '%s' is missing from '%s' (rule R5)", name, v ? on : vn, f->path);
		goto done;
	}
	if (v->dtype != FPK_U32 || v->ndim != 1 || (uint64_t)v->shape[0] != pt->tcsl.n_entries) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': array '%s' is %s with %d dims, expected U32 [%llu] (rule R5)", name,
				   vn, fpk_dtypes[v->dtype].name, v->ndim, (unsigned long long)pt->tcsl.n_entries);
		goto done;
	}
	if (o->dtype != FPK_I32 || o->ndim != 1 || o->shape[0] != T + 2) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s': array '%s' is %s with %d dims, expected I32 [%lld] (rule R5)", name,
				   on, fpk_dtypes[o->dtype].name, o->ndim, (long long)(T + 2));
		goto done;
	}
	if (fpk_st_model_find(m, name)) {
		rc = fpk_error_set(FPK_EFORMAT, "tensor '%s' is stored both dense and encoded (rule R5)", name);
		goto done;
	}
	pt->values_t = v;
	pt->offsets_t = o;
	if (((uintptr_t)v->data & 3u) || ((uintptr_t)o->data & 3u)) {
		pt->copy = malloc(v->nbytes + o->nbytes + 4);
		if (!pt->copy) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		if (o->nbytes)
			memcpy(pt->copy, o->data, o->nbytes);
		if (v->nbytes)
			memcpy((uint8_t *)pt->copy + o->nbytes, v->data, v->nbytes);
		pt->tcsl.offsets = pt->copy;
		pt->tcsl.values = (uint32_t *)((uint8_t *)pt->copy + o->nbytes);
	} else {
		/* the mapping is read-only; fpk_tcsl has non-const pointers because encode fills them */
		pt->tcsl.offsets = (int32_t *)(uintptr_t)o->data;
		pt->tcsl.values = (uint32_t *)(uintptr_t)v->data;
	}
done:
	free(vn);
	free(on);
	return rc;
}

/* ---- content (R6-R15), in parallel over tensors ---- */
static int check_tensor(void *ctx, size_t i, int tid)
{
	(void)tid;
	fpk_pack *p = ctx;
	const fpk_pack_tensor *pt = &p->encoded[i];
	uint32_t cv = fpk_crc32(0, pt->values_t->data, pt->values_t->nbytes);
	uint32_t co = fpk_crc32(0, pt->offsets_t->data, pt->offsets_t->nbytes);
	if (cv != pt->crc_values)
		return fpk_error_set(FPK_EFORMAT, "tensor '%s': crc32 of tcsl_values is %08x, metadata says %08x (rule R6)",
				     pt->name, cv, pt->crc_values);
	if (co != pt->crc_offsets)
		return fpk_error_set(FPK_EFORMAT, "tensor '%s': crc32 of tcsl_offsets is %08x, metadata says %08x (rule R6)",
				     pt->name, co, pt->crc_offsets);
	return fpk_tcsl_validate(&pt->tcsl, pt->name, pt->tcsl.nnz);
}

static int check_version(const fpk_st_file *f, int *version)
{
	const char *fmt = fpk_st_meta(f, FPK_PACK_KEY_FORMAT), *ver = fpk_st_meta(f, FPK_PACK_KEY_VERSION);
	if (!fmt)
		return fpk_error_set(FPK_EFORMAT, "file '%s': metadata '%s' is missing, not a pack (rule R1)", f->path,
				     FPK_PACK_KEY_FORMAT);
	if (strcmp(fmt, FPK_PACK_FORMAT))
		return fpk_error_set(FPK_EFORMAT, "file '%s': metadata '%s' is '%s', expected '%s' (rule R1)", f->path,
				     FPK_PACK_KEY_FORMAT, fmt, FPK_PACK_FORMAT);
	if (!ver)
		return fpk_error_set(FPK_EFORMAT, "file '%s': metadata '%s' is missing (rule R1)", f->path, FPK_PACK_KEY_VERSION);
	char want[16];
	snprintf(want, sizeof(want), "%d", FPK_PACK_VERSION);
	if (strcmp(ver, want))
		return fpk_error_set(FPK_EFORMAT, "file '%s': unsupported pack version '%s', expected '%s' (rule R1)", f->path,
				     ver, want);
	*version = FPK_PACK_VERSION;
	return 0;
}

/* rules R1-R15 over p->model */
static int pack_check(fpk_pack *p, int threads)
{
	int rc = 0;
	fpk_st_model *m = p->model;
	size_t cap = 0;
	for (size_t s = 0; s < m->n_shards; s++) {
		const fpk_st_file *f = m->shards[s];
		if ((rc = check_version(f, &p->version)))
			return rc;
		size_t plen = strlen(FPK_PACK_KEY_TENSOR);
		for (const cJSON *kv = f->metadata ? f->metadata->child : NULL; kv; kv = kv->next) {
			if (!kv->string || strncmp(kv->string, FPK_PACK_KEY_TENSOR, plen))
				continue;
			const char *name = kv->string + plen;
			if (!cJSON_IsString(kv))
				return fpk_error_set(FPK_EFORMAT, "tensor '%s': metadata is not a string (rule R2)", name);
			if (fpk_pack_find(p, name))
				return fpk_error_set(FPK_EFORMAT, "tensor '%s': described twice in the metadata (rule R5)", name);
			if (p->n_encoded == cap) {
				size_t nc = cap ? 2 * cap : 16;
				fpk_pack_tensor *ne = realloc(p->encoded, nc * sizeof(*ne));
				if (!ne)
					return fpk_error_set(FPK_EIO, "out of memory");
				p->encoded = ne;
				cap = nc;
			}
			fpk_pack_tensor *pt = &p->encoded[p->n_encoded];
			memset(pt, 0, sizeof(*pt));
			if (!(pt->name = strdup(name)))
				return fpk_error_set(FPK_EIO, "out of memory");
			p->n_encoded++;
			if ((rc = parse_tensor_meta(pt, name, kv->valuestring)) || (rc = bind_arrays(pt, m, f)))
				return rc;
		}
	}
	/* every tcsl array belongs to a described tensor */
	for (size_t i = 0; i < m->n_tensors; i++) {
		const char *n = m->tensors[i]->name;
		if (!fpk_pack_is_array_name(n))
			continue;
		int owned = 0;
		for (size_t e = 0; e < p->n_encoded && !owned; e++)
			owned = p->encoded[e].values_t == m->tensors[i] || p->encoded[e].offsets_t == m->tensors[i];
		if (!owned)
			return fpk_error_set(FPK_EFORMAT, "array '%s' has no '%s...' metadata entry in its file (rule R5)", n,
					     FPK_PACK_KEY_TENSOR);
	}
	return fpk_parallel_for(p->n_encoded, threads, check_tensor, p);
}

int fpk_pack_open(fpk_pack **out, const char *path, int threads)
{
	int rc = 0;
	fpk_pack *p = calloc(1, sizeof(*p));
	*out = NULL;
	if (!p)
		return fpk_error_set(FPK_EIO, "out of memory");
	if ((rc = fpk_st_model_open(&p->model, path)) || (rc = pack_check(p, threads))) {
		fpk_pack_close(p);
		return rc;
	}
	*out = p;
	return 0;
}

int fpk_pack_open_memory(fpk_pack **out, const uint8_t *buf, size_t len, const char *name, int threads)
{
	int rc = 0;
	fpk_pack *p = calloc(1, sizeof(*p));
	fpk_st_model *m = calloc(1, sizeof(*m));
	*out = NULL;
	if (!p || !m) {
		free(p);
		free(m);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	p->model = m;
	m->shards = calloc(1, sizeof(*m->shards));
	m->shard_names = calloc(1, sizeof(*m->shard_names));
	m->dir = strdup(".");
	if (!m->shards || !m->shard_names || !m->dir || !(m->shard_names[0] = strdup(name))) {
		m->n_shards = m->shard_names ? 1 : 0;
		fpk_pack_close(p);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	m->n_shards = 1;
	if ((rc = fpk_st_open_memory(&m->shards[0], buf, len, name)))
		goto done;
	fpk_st_file *f = m->shards[0];
	m->n_tensors = f->n_tensors;
	if (!(m->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof(*m->tensors)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < f->n_tensors; i++)
		m->tensors[i] = &f->tensors[i];
	rc = pack_check(p, threads);
done:
	if (rc) {
		fpk_pack_close(p);
		return rc;
	}
	*out = p;
	return 0;
}
