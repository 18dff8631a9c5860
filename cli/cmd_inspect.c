/* cmd_inspect.c: `flashllm-pack inspect PATH`: per tensor name, dtype, shape, bytes and fraction of exact zeros.
 * Tested by tests/cli/inspect.sh. */
#include "cli.h"
#include "inspect.h"
#include "pack.h"

#include <stdlib.h>
#include <string.h>

static int json_out, threads;

static const cli_opt opts[] = {
	{"json", 0, CLI_FLAG, &json_out, NULL, "print the table as JSON on stdout"},
	{"threads", 0, CLI_INT, &threads, "N", "worker threads (default: all cores)"},
	{0},
};

static const cli_spec spec = {
	"inspect", "PATH [--json]",
	"PATH is a .safetensors file or a model directory (single file or sharded with "
	"model.safetensors.index.json), or a packed-model directory from `encode` (then validated, rules R1-R15, and "
	"its encoded tensors listed). Every file is validated strictly (docs/format.md).",
	opts, 1, 1,
};

/* a packed-model directory: one row per encoded tensor (validated by fpk_pack_open) */
static cJSON *pack_json(const fpk_pack *p)
{
	cJSON *o = cJSON_CreateObject(), *arr;
	cJSON_AddStringToObject(o, "format", FPK_PACK_FORMAT);
	cJSON_AddNumberToObject(o, "version", p->version);
	arr = cJSON_AddArrayToObject(o, "encoded");
	for (size_t i = 0; i < p->n_encoded; i++) {
		const fpk_pack_tensor *e = &p->encoded[i];
		const fpk_tcsl *t = &e->tcsl;
		cJSON *x = cJSON_CreateObject(), *sh;
		cJSON_AddStringToObject(x, "name", e->name);
		cJSON_AddStringToObject(x, "dtype", fpk_dtypes[t->dtype].name);
		sh = cJSON_AddArrayToObject(x, "shape");
		cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->m));
		cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->k));
		sh = cJSON_AddArrayToObject(x, "padded_shape");
		cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->m_pad));
		cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->k_pad));
		cJSON_AddBoolToObject(x, "reorder", t->reordered);
		cJSON_AddNumberToObject(x, "nnz", (double)t->nnz);
		cJSON_AddNumberToObject(x, "sparsity", 1.0 - (double)t->nnz / (double)(t->m * t->k));
		cJSON_AddNumberToObject(x, "stored_bytes", (double)(e->values_t->nbytes + e->offsets_t->nbytes));
		cJSON_AddNumberToObject(x, "dense_bytes", (double)(t->m * t->k * 2));
		cJSON_AddItemToArray(arr, x);
	}
	return o;
}

static void pack_print(const fpk_pack *p)
{
	size_t w = 4;
	uint64_t st = 0, de = 0;
	for (size_t i = 0; i < p->n_encoded; i++)
		if (strlen(p->encoded[i].name) > w)
			w = strlen(p->encoded[i].name);
	printf("\npack: %s version %d, %zu encoded tensors\n", FPK_PACK_FORMAT, p->version, p->n_encoded);
	printf("%-*s  %-5s  %-14s  %10s  %8s  %12s  %12s\n", (int)w, "name", "dtype", "shape", "nnz", "sparsity", "stored",
	       "dense");
	for (size_t i = 0; i < p->n_encoded; i++) {
		const fpk_pack_tensor *e = &p->encoded[i];
		const fpk_tcsl *t = &e->tcsl;
		char sh[64];
		uint64_t sb = e->values_t->nbytes + e->offsets_t->nbytes, db = (uint64_t)(t->m * t->k) * 2;
		snprintf(sh, sizeof(sh), "[%lld, %lld]", (long long)t->m, (long long)t->k);
		printf("%-*s  %-5s  %-14s  %10llu  %7.2f%%  %12llu  %12llu\n", (int)w, e->name, fpk_dtypes[t->dtype].name, sh,
		       (unsigned long long)t->nnz, 100.0 * (1.0 - (double)t->nnz / (double)(t->m * t->k)),
		       (unsigned long long)sb, (unsigned long long)db);
		st += sb;
		de += db;
	}
	char b1[32], b2[32];
	printf("encoded total: %s stored, %s as dense 16-bit (%.2fx)\n", cli_bytes(st, b1, sizeof(b1)),
	       cli_bytes(de, b2, sizeof(b2)), st ? (double)de / (double)st : 0.0);
}

static void shape_str(const fpk_st_tensor *t, char *buf, size_t len)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, len - o, "[");
	for (int d = 0; d < t->ndim && o < len; d++)
		o += (size_t)snprintf(buf + o, len - o, d ? ", %lld" : "%lld", (long long)t->shape[d]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
}

int cmd_inspect(int argc, char **argv)
{
	char **pos = NULL;
	int npos, rc, ex = 0;
	fpk_st_model *m = NULL;
	fpk_inspect_row *rows = NULL;
	fpk_pack *pack = NULL;
	json_out = 0;
	threads = 0;
	if ((rc = cli_parse(&spec, argc, argv, &pos, &npos)))
		return rc < 0 ? 0 : rc;
	if ((rc = fpk_st_model_open(&m, pos[0])) || (rc = fpk_inspect_model(m, threads, &rows, cli_progress, NULL))) {
		ex = cli_fail("inspect", rc);
		goto done;
	}
	if (fpk_pack_detect(m) && (rc = fpk_pack_open(&pack, pos[0], threads))) {
		ex = cli_fail("inspect", rc);
		goto done;
	}
	uint64_t tot_el = 0, tot_z = 0, tot_b = 0;
	for (size_t i = 0; i < m->n_tensors; i++) {
		tot_el += rows[i].t->numel;
		tot_z += rows[i].zeros;
		tot_b += rows[i].t->nbytes;
	}
	if (json_out) {
		cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "tensors");
		cJSON_AddStringToObject(root, "path", pos[0]);
		cJSON *shards = cJSON_AddArrayToObject(root, "shards");
		for (size_t s = 0; s < m->n_shards; s++)
			cJSON_AddItemToArray(shards, cJSON_CreateString(m->shard_names[s]));
		for (size_t i = 0; i < m->n_tensors; i++) {
			const fpk_st_tensor *t = rows[i].t;
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "name", t->name);
			cJSON_AddStringToObject(o, "dtype", fpk_dtypes[t->dtype].name);
			cJSON *sh = cJSON_AddArrayToObject(o, "shape");
			for (int d = 0; d < t->ndim; d++)
				cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
			cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
			cJSON_AddNumberToObject(o, "elements", (double)t->numel);
			cJSON_AddNumberToObject(o, "zeros", (double)rows[i].zeros);
			cJSON_AddNumberToObject(o, "zero_fraction", t->numel ? (double)rows[i].zeros / (double)t->numel : 0.0);
			cJSON_AddStringToObject(o, "shard", m->shard_names[t->shard]);
			cJSON_AddItemToArray(arr, o);
		}
		cJSON *tot = cJSON_AddObjectToObject(root, "totals");
		cJSON_AddNumberToObject(tot, "tensors", (double)m->n_tensors);
		cJSON_AddNumberToObject(tot, "elements", (double)tot_el);
		cJSON_AddNumberToObject(tot, "bytes", (double)tot_b);
		cJSON_AddNumberToObject(tot, "zeros", (double)tot_z);
		cJSON_AddNumberToObject(tot, "zero_fraction", tot_el ? (double)tot_z / (double)tot_el : 0.0);
		if (pack)
			cJSON_AddItemToObject(root, "pack", pack_json(pack));
		char *s = cJSON_Print(root);
		printf("%s\n", s);
		free(s);
		cJSON_Delete(root);
	} else {
		size_t w = 4;
		for (size_t i = 0; i < m->n_tensors; i++)
			if (strlen(rows[i].t->name) > w)
				w = strlen(rows[i].t->name);
		printf("%-*s  %-7s  %-18s  %12s  %7s\n", (int)w, "name", "dtype", "shape", "bytes", "zeros");
		for (size_t i = 0; i < m->n_tensors; i++) {
			const fpk_st_tensor *t = rows[i].t;
			char sh[128];
			shape_str(t, sh, sizeof(sh));
			printf("%-*s  %-7s  %-18s  %12llu  %6.2f%%\n", (int)w, t->name, fpk_dtypes[t->dtype].name, sh,
			       (unsigned long long)t->nbytes, t->numel ? 100.0 * (double)rows[i].zeros / (double)t->numel : 0.0);
		}
		char b1[32];
		printf("total: %zu tensors in %zu file%s, %llu elements, %s, %.2f%% zeros\n", m->n_tensors, m->n_shards,
		       m->n_shards == 1 ? "" : "s", (unsigned long long)tot_el, cli_bytes(tot_b, b1, sizeof(b1)),
		       tot_el ? 100.0 * (double)tot_z / (double)tot_el : 0.0);
		if (pack)
			pack_print(pack);
	}
done:
	fpk_pack_close(pack);
	free(rows);
	fpk_st_model_close(m);
	free(pos);
	return ex;
}
