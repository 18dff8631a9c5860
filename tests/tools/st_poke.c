/* st_poke.c: copy a .safetensors file while changing chosen tensors (test inputs for NaN/Inf, ties, all-equal
 * tensors, unsupported dtypes). Run: st_poke IN OUT [set NAME INDEX VALUE]... [fill NAME VALUE]...
 * [retype NAME F64|F32|F16|BF16|I32]...; VALUE is a number, nan, inf, -inf, -0, or 0xBITS (raw element bits). */
#include "fpk_common.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct edit {
	const char *op, *name, *index, *value;
} edit;

static void die(const char *m)
{
	fprintf(stderr, "st_poke: %s\n", m);
	exit(2);
}

/* store v (or raw bits) at element i of a buffer of dtype dt */
static void put(uint8_t *d, fpk_dtype dt, uint64_t i, const char *value)
{
	if (!strncmp(value, "0x", 2)) {
		uint64_t b = strtoull(value, NULL, 16);
		memcpy(d + i * fpk_dtypes[dt].size, &b, fpk_dtypes[dt].size); /* little-endian */
		return;
	}
	double v = !strcasecmp(value, "nan") ? NAN : !strcasecmp(value, "inf") ? INFINITY
		   : !strcasecmp(value, "-inf")                                 ? -INFINITY
										: strtod(value, NULL);
	float f = (float)v;
	uint16_t h;
	int32_t iv = (int32_t)v;
	switch (dt) {
	case FPK_F64: memcpy(d + 8 * i, &v, 8); break;
	case FPK_F32: memcpy(d + 4 * i, &f, 4); break;
	case FPK_F16: h = fpk_f32_to_f16(f); memcpy(d + 2 * i, &h, 2); break;
	case FPK_BF16: h = fpk_f32_to_bf16(f); memcpy(d + 2 * i, &h, 2); break;
	case FPK_I32: memcpy(d + 4 * i, &iv, 4); break;
	default: die("unsupported dtype for a value");
	}
}

int main(int argc, char **argv)
{
	if (argc < 3)
		die("usage: st_poke IN OUT [set NAME INDEX VALUE]... [fill NAME VALUE]... [retype NAME DTYPE]...");
	edit ed[64];
	int ne = 0;
	for (int i = 3; i < argc && ne < 64;) {
		edit e = {argv[i], NULL, NULL, NULL};
		if (!strcmp(argv[i], "set") && i + 3 < argc) {
			e.name = argv[i + 1], e.index = argv[i + 2], e.value = argv[i + 3];
			i += 4;
		} else if ((!strcmp(argv[i], "fill") || !strcmp(argv[i], "retype")) && i + 2 < argc) {
			e.name = argv[i + 1], e.value = argv[i + 2];
			i += 3;
		} else {
			die("bad edit (set NAME INDEX VALUE | fill NAME VALUE | retype NAME DTYPE)");
		}
		ed[ne++] = e;
	}
	fpk_st_file *f = NULL;
	fpk_st_writer *w = NULL;
	if (fpk_st_open(&f, argv[1]) || fpk_st_writer_new(&w, argv[2]))
		die(fpk_error_msg());
	for (const cJSON *kv = f->metadata ? f->metadata->child : NULL; kv; kv = kv->next)
		if (cJSON_IsString(kv))
			fpk_st_writer_meta(w, kv->string, kv->valuestring);
	fpk_dtype *dts = calloc(f->n_tensors, sizeof(*dts));
	for (size_t t = 0; t < f->n_tensors; t++) {
		dts[t] = f->tensors[t].dtype;
		for (int e = 0; e < ne; e++)
			if (!strcmp(ed[e].op, "retype") && !strcmp(ed[e].name, f->tensors[t].name) &&
			    fpk_dtype_from_name(ed[e].value, &dts[t]))
				die("unknown dtype");
		if (fpk_st_writer_add(w, f->tensors[t].name, dts[t], f->tensors[t].ndim, f->tensors[t].shape))
			die(fpk_error_msg());
	}
	if (fpk_st_writer_begin(w))
		die(fpk_error_msg());
	for (size_t t = 0; t < f->n_tensors; t++) {
		const fpk_st_tensor *x = &f->tensors[t];
		size_t nb = (size_t)(x->numel * fpk_dtypes[dts[t]].size);
		uint8_t *buf = malloc(nb + 8);
		if (!buf)
			die("out of memory");
		if (dts[t] == x->dtype) {
			memcpy(buf, x->data, nb);
		} else {
			for (uint64_t i = 0; i < x->numel; i++) {
				char tmp[64];
				snprintf(tmp, sizeof(tmp), "%.9g", (double)fpk_load_f32(x->data, x->dtype, (size_t)i));
				put(buf, dts[t], i, tmp);
			}
		}
		for (int e = 0; e < ne; e++) {
			if (strcmp(ed[e].name, x->name))
				continue;
			if (!strcmp(ed[e].op, "set")) {
				uint64_t i = strtoull(ed[e].index, NULL, 10);
				if (i >= x->numel)
					die("index out of range");
				put(buf, dts[t], i, ed[e].value);
			} else if (!strcmp(ed[e].op, "fill")) {
				for (uint64_t i = 0; i < x->numel; i++)
					put(buf, dts[t], i, ed[e].value);
			}
		}
		if (fpk_st_writer_write(w, buf, nb))
			die(fpk_error_msg());
		free(buf);
	}
	if (fpk_st_writer_commit(w))
		die(fpk_error_msg());
	free(dts);
	fpk_st_close(f);
	return 0;
}
