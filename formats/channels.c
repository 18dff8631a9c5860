/* channels.c: validating reader and writer of Double Sparsity channel configs. Rules C1-C9 (docs/calibrate.md),
 * one message each. Tested by tests/unit/test_channels.c (a corruption per rule) and tests/fuzz/fuzz_channels.c. */
#include "channels.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const fpk_ch_mode_names[FPK_CH_MODES] = {"q", "k", "qk"};

int fpk_channels_heads(const fpk_channels *c, int mode)
{
	return mode == FPK_CH_K ? c->n_kv_heads : c->n_heads;
}

const int *fpk_channels_row(const fpk_channels *c, int mode, int layer, int head)
{
	if (mode < 0 || mode >= FPK_CH_MODES || !c->rows[mode] || layer < 0 || layer >= c->n_layers || head < 0 ||
		head >= fpk_channels_heads(c, mode))
		return NULL;
	return c->rows[mode] + ((size_t)layer * (size_t)fpk_channels_heads(c, mode) + (size_t)head) * (size_t)c->head_dim;
}

void fpk_channels_release(fpk_channels *c)
{
	for (int m = 0; m < FPK_CH_MODES; m++)
		free(c->rows[m]);
	memset(c, 0, sizeof(*c));
}

#define MAX_LAYERS 100000

/* "model.layers.{i}.self_attn.{q,k,qk}_proj" -> layer, mode; -1 when the key is not of that form */
static int parse_key(const char *k, int *layer, int *mode)
{
	static const char pre[] = "model.layers.", mid[] = ".self_attn.";
	if (strncmp(k, pre, sizeof(pre) - 1))
		return -1;
	k += sizeof(pre) - 1;
	if (*k < '0' || *k > '9' || (k[0] == '0' && k[1] >= '0' && k[1] <= '9'))
		return -1;
	long v = 0;
	while (*k >= '0' && *k <= '9') {
		v = v * 10 + (*k++ - '0');
		if (v >= MAX_LAYERS)
			return -1;
	}
	if (strncmp(k, mid, sizeof(mid) - 1))
		return -1;
	k += sizeof(mid) - 1;
	for (int m = FPK_CH_MODES - 1; m >= 0; m--) { /* "qk" before "q" */
		size_t n = strlen(fpk_ch_mode_names[m]);
		if (!strncmp(k, fpk_ch_mode_names[m], n) && !strcmp(k + n, "_proj")) {
			*layer = (int)v;
			*mode = m;
			return 0;
		}
	}
	return -1;
}

/* rule C5/C6 on one row; returns 0 or a status with the message set */
static int check_row(const cJSON *row, int d, const char *name, const char *key, int r, int *dst, unsigned char *seen)
{
	if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != d)
		return fpk_error_set(FPK_EFORMAT,
			"channel config '%s': rule C5: key '%s' row %d is not an array of %d channel indices (head_dim)", name,
			key, r, d);
	memset(seen, 0, (size_t)d);
	int j = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, row)
	{
		if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || floor(e->valuedouble) != e->valuedouble)
			return fpk_error_set(FPK_EFORMAT, "channel config '%s': rule C5: key '%s' row %d entry %d is not an integer",
				name, key, r, j);
		double v = e->valuedouble;
		if (v < 0 || v >= d)
			return fpk_error_set(FPK_EFORMAT,
				"channel config '%s': rule C6: key '%s' row %d entry %d is %.0f, outside 0..%d (not a permutation)",
				name, key, r, j, v, d - 1);
		if (seen[(int)v]++)
			return fpk_error_set(FPK_EFORMAT,
				"channel config '%s': rule C6: key '%s' row %d repeats channel %d (not a permutation of 0..%d)", name,
				key, r, (int)v, d - 1);
		if (dst)
			dst[j] = (int)v;
		j++;
	}
	return 0;
}

int fpk_channels_parse(fpk_channels *out, const char *json, size_t len, const char *name, const fpk_channels_expect *exp)
{
	int rc = 0;
	fpk_channels c;
	unsigned char *seen = NULL, *present = NULL;
	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	cJSON *root = cJSON_ParseWithLength(json, len);
	if (!root || !cJSON_IsObject(root) || !root->child) {
		rc = fpk_error_set(FPK_EFORMAT, "channel config '%s': rule C1: not a JSON object with at least one key", name);
		goto done;
	}
	int H = exp && exp->n_heads > 0 ? exp->n_heads : 0, Hkv = exp && exp->n_kv_heads > 0 ? exp->n_kv_heads : 0;
	int d = exp && exp->head_dim > 0 ? exp->head_dim : 0, L = exp && exp->n_layers > 0 ? exp->n_layers : 0;
	int max_layer = -1;
	/* pass 1: keys, shapes, permutations; infer the dimensions the caller left open */
	const cJSON *it;
	cJSON_ArrayForEach(it, root)
	{
		int layer, mode;
		if (parse_key(it->string, &layer, &mode)) {
			rc = fpk_error_set(FPK_EFORMAT,
				"channel config '%s': rule C2: key '%.80s' is not 'model.layers.{i}.self_attn.{q,k,qk}_proj'", name,
				it->string);
			goto done;
		}
		if (L && layer >= L) {
			rc = fpk_error_set(FPK_EFORMAT, "channel config '%s': rule C3: key '%s' names layer %d, the model has %d",
				name, it->string, layer, L);
			goto done;
		}
		if (layer > max_layer)
			max_layer = layer;
		int *heads = mode == FPK_CH_K ? &Hkv : &H;
		int n = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : -1;
		if (n <= 0 || (*heads && n != *heads)) {
			if (*heads)
				rc = fpk_error_set(FPK_EFORMAT,
					"channel config '%s': rule C4: key '%s' must hold %d rows (one per %s head), found %d", name,
					it->string, *heads, mode == FPK_CH_K ? "key/value" : "query", n < 0 ? 0 : n);
			else
				rc = fpk_error_set(FPK_EFORMAT, "channel config '%s': rule C4: key '%s' is not a non-empty array of rows",
					name, it->string);
			goto done;
		}
		*heads = n;
		if (!d) {
			const cJSON *r0 = it->child;
			d = cJSON_IsArray(r0) ? cJSON_GetArraySize(r0) : 0;
			if (d <= 0 || d > 65536) {
				rc = fpk_error_set(FPK_EFORMAT, "channel config '%s': rule C5: key '%s' row 0 is not a non-empty array",
					name, it->string);
				goto done;
			}
		}
		if (!seen && !(seen = malloc((size_t)d))) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		int r = 0;
		const cJSON *row;
		cJSON_ArrayForEach(row, it)
		{
			if ((rc = check_row(row, d, name, it->string, r++, NULL, seen)))
				goto done;
		}
	}
	if (!L)
		L = max_layer + 1;
	if (H && Hkv && H % Hkv) {
		rc = fpk_error_set(FPK_EFORMAT,
			"channel config '%s': rule C9: %d query-head rows are not a multiple of %d key/value-head rows (GQA)", name,
			H, Hkv);
		goto done;
	}
	c.n_layers = L;
	c.n_heads = H;
	c.n_kv_heads = Hkv;
	c.head_dim = d;
	if (!(present = calloc((size_t)L * FPK_CH_MODES, 1))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	/* pass 2: duplicates, fill */
	cJSON_ArrayForEach(it, root)
	{
		int layer, mode;
		parse_key(it->string, &layer, &mode);
		if (present[(size_t)layer * FPK_CH_MODES + mode]++) {
			rc = fpk_error_set(FPK_EFORMAT, "channel config '%s': rule C7: key '%s' appears more than once", name,
				it->string);
			goto done;
		}
		if (!c.rows[mode]) {
			size_t cnt = (size_t)L * (size_t)fpk_channels_heads(&c, mode) * (size_t)d;
			if (!(c.rows[mode] = malloc(cnt * sizeof(int)))) {
				rc = fpk_error_set(FPK_EIO, "out of memory");
				goto done;
			}
			c.modes |= 1 << mode;
		}
		int r = 0;
		const cJSON *row;
		cJSON_ArrayForEach(row, it)
		{
			int *dst = c.rows[mode] + ((size_t)layer * (size_t)fpk_channels_heads(&c, mode) + (size_t)r) * (size_t)d;
			if ((rc = check_row(row, d, name, it->string, r++, dst, seen)))
				goto done;
		}
	}
	for (int m = 0; m < FPK_CH_MODES; m++) {
		if (!(c.modes >> m & 1))
			continue;
		for (int l = 0; l < L; l++)
			if (!present[(size_t)l * FPK_CH_MODES + m]) {
				rc = fpk_error_set(FPK_EFORMAT,
					"channel config '%s': rule C8: key 'model.layers.%d.self_attn.%s_proj' is missing (mode '%s' needs "
					"all %d layers)", name, l, fpk_ch_mode_names[m], fpk_ch_mode_names[m], L);
				goto done;
			}
	}
	*out = c;
	memset(&c, 0, sizeof(c));
done:
	fpk_channels_release(&c);
	free(seen);
	free(present);
	cJSON_Delete(root);
	return rc;
}

int fpk_channels_load(fpk_channels *out, const char *path, const fpk_channels_expect *exp)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = fpk_read_file(path, &buf, &len);
	memset(out, 0, sizeof(*out));
	if (!rc)
		rc = fpk_channels_parse(out, buf, len, path, exp);
	free(buf);
	return rc;
}

typedef struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
		va_end(ap);
		if (k < 0) {
			b->oom = 1;
			return;
		}
		if (b->p && b->n + (size_t)k < b->cap) {
			b->n += (size_t)k;
			return;
		}
		size_t nc = b->cap ? b->cap * 2 : 4096;
		while (nc < b->n + (size_t)k + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
}

int fpk_channels_to_json(const fpk_channels *c, char **text, size_t *len)
{
	sbuf b = {0};
	int first = 1;
	*text = NULL;
	sb_printf(&b, "{");
	for (int l = 0; l < c->n_layers; l++)
		for (int m = 0; m < FPK_CH_MODES; m++) {
			if (!c->rows[m])
				continue;
			sb_printf(&b, "%s\n  \"model.layers.%d.self_attn.%s_proj\": [", first ? "" : ",", l, fpk_ch_mode_names[m]);
			first = 0;
			for (int h = 0; h < fpk_channels_heads(c, m); h++) {
				const int *r = fpk_channels_row(c, m, l, h);
				sb_printf(&b, "%s[", h ? ", " : "");
				for (int j = 0; j < c->head_dim; j++)
					sb_printf(&b, j ? ", %d" : "%d", r[j]);
				sb_printf(&b, "]");
			}
			sb_printf(&b, "]");
		}
	sb_printf(&b, "\n}\n");
	if (b.oom) {
		free(b.p);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	*text = b.p;
	if (len)
		*len = b.n;
	return 0;
}
