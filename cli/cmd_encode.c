/* cmd_encode.c: `flashllm-pack encode IN -o PACK`: targeted sparse weights to Tiled-CSL in a packed-model directory
 * (docs/format.md section 3). Tested by tests/cli/encode_*.sh. */
#include "cli.h"
#include "encode.h"
#include "pack.h"

#include <stdlib.h>
#include <string.h>

int cmd_encode(int argc, char **argv)
{
	static const char *out;
	static const char *dtype;
	static double min_sparsity;
	static int no_reorder, threads, json_out, force, allow_nan, no_sync;
	static cli_strlist include, exclude;
	out = dtype = NULL;
	min_sparsity = 0.5;
	no_reorder = threads = json_out = force = allow_nan = no_sync = 0;
	memset(&include, 0, sizeof(include));
	memset(&exclude, 0, sizeof(exclude));
	const cli_opt opts[] = {
		{"output", 'o', CLI_STRING, &out, "PACK", "packed-model directory to create"},
		{"min-sparsity", 0, CLI_DOUBLE, &min_sparsity, "S", "encode a target only when this fraction is zero (default 0.5)"},
		{"no-reorder", 0, CLI_FLAG, &no_reorder, NULL, "keep row-major entry order (no bank-conflict reordering)"},
		{"dtype", 0, CLI_STRING, &dtype, "f16|bf16", "round F32 targets to this type and encode them (reported)"},
		{"include", 0, CLI_LIST, &include, "GLOB", "target tensors matching GLOB instead of the default rule"},
		{"exclude", 0, CLI_LIST, &exclude, "GLOB", "never target tensors matching GLOB"},
		{"threads", 0, CLI_INT, &threads, "N", "worker threads (default: all cores; output does not depend on it)"},
		{"json", 0, CLI_FLAG, &json_out, NULL, "print the pack report and timings as JSON on stdout"},
		{"force", 0, CLI_FLAG, &force, NULL, "replace PACK if it exists"},
		{"allow-nan", 0, CLI_FLAG, &allow_nan, NULL, "store NaN weights instead of failing"},
		{"no-sync", 0, CLI_FLAG, &no_sync, NULL, "do not fsync outputs (still renamed only when complete; like cp)"},
		{0},
	};
	const cli_spec spec = {
		"encode", "IN -o PACK [options]",
		"IN is a checkpoint (.safetensors file or model directory). Every targeted 2-D weight (default: the linear "
		"layers of transformer blocks) with at least --min-sparsity exact zeros is stored as Tiled-CSL "
		"(W.tcsl_values U32 + W.tcsl_offsets I32); every other tensor is copied unchanged. F16 and BF16 weights are "
		"encoded as they are; F32 weights only with --dtype. config.json gets a \"flashllm_pack\" section, "
		"tokenizer files are copied and pack_report.json says what happened to each tensor (docs/format.md 3).",
		opts, 1, 1,
	};
	char **pos = NULL;
	int npos, rc, ex = 0;
	fpk_encode_report rep = {0};
	if ((rc = cli_parse(&spec, argc, argv, &pos, &npos)))
		return rc < 0 ? 0 : rc;
	fpk_encode_opts o;
	fpk_encode_opts_init(&o);
	o.in = pos[0];
	o.out = out;
	o.min_sparsity = min_sparsity;
	o.reorder = !no_reorder;
	o.threads = threads;
	o.force = force;
	fpk_io_set_durable(!no_sync);
	o.allow_nan = allow_nan;
	o.select.include = include.v;
	o.select.n_include = include.n;
	o.select.exclude = exclude.v;
	o.select.n_exclude = exclude.n;
	o.progress = cli_progress;
	if (!out) {
		fpk_error_set(FPK_EUSAGE, "missing -o PACK");
		ex = cli_fail("encode", FPK_EUSAGE);
		goto done;
	}
	if (dtype) {
		if (!strcmp(dtype, "f16") || !strcmp(dtype, "fp16") || !strcmp(dtype, "F16"))
			o.dtype = FPK_F16;
		else if (!strcmp(dtype, "bf16") || !strcmp(dtype, "BF16"))
			o.dtype = FPK_BF16;
		else {
			fpk_error_set(FPK_EUSAGE, "--dtype '%s', expected f16 or bf16", dtype);
			ex = cli_fail("encode", FPK_EUSAGE);
			goto done;
		}
	}
	if (threads < 0) {
		fpk_error_set(FPK_EUSAGE, "--threads %d, expected >= 0", threads);
		ex = cli_fail("encode", FPK_EUSAGE);
		goto done;
	}
	if ((rc = fpk_encode_run(&o, &rep))) {
		ex = cli_fail("encode", rc);
		goto done;
	}
	if (json_out) {
		cJSON *t = cJSON_AddObjectToObject(rep.json, "timing");
		cJSON_AddNumberToObject(t, "seconds", rep.seconds);
		cJSON_AddNumberToObject(t, "encode_seconds", rep.encode_seconds);
		cJSON_AddNumberToObject(t, "threads", threads ? threads : fpk_default_threads());
		cJSON_AddStringToObject(rep.json, "output", out);
		char *s = cJSON_Print(rep.json);
		printf("%s\n", s);
		free(s);
	} else if (!cli_quiet) {
		char b1[32], b2[32];
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(rep.json, "tensors");
		for (const cJSON *x = arr ? arr->child : NULL; x && cli_verbose; x = x->next) {
			const cJSON *r = cJSON_GetObjectItemCaseSensitive(x, "reason");
			printf("%-8s %s%s%s\n", cJSON_GetObjectItemCaseSensitive(x, "action")->valuestring,
			       cJSON_GetObjectItemCaseSensitive(x, "name")->valuestring, r ? ": " : "", r ? r->valuestring : "");
		}
		printf("encoded %zu of %zu tensors (%zu dense): %s as dense 16-bit -> %s as Tiled-CSL; %.2f s\n", rep.n_encoded,
		       rep.n_tensors, rep.n_dense, cli_bytes(rep.encoded_dense_bytes, b1, sizeof(b1)),
		       cli_bytes(rep.encoded_stored_bytes, b2, sizeof(b2)), rep.seconds);
		printf("wrote %s (report: %s/%s)\n", out, out, FPK_PACK_REPORT);
	}
done:
	fpk_encode_report_release(&rep);
	free(pos);
	return ex;
}
