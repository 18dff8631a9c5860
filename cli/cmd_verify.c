/* cmd_verify.c: `flashllm-pack verify PACK`: structure (R1-R15), decode == --against, our SpMM vs a dense
 * reference per tensor and batch, optional speed. Exit 0 pass, 1 fail, 3 malformed pack, 5 GPU error.
 * Tested by tests/cli/verify_*.sh (CPU path) and tests/gpu/verify_stories.sh. */
#include "channels_eval.h"
#include "cli.h"
#include "eval.h"
#include "model_gpu.h"
#include "verify.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *device = "auto", *batch, *json_path, *eval_text, *eval_tokens;
static cli_strlist against;
static int require_gpu, bench, threads, seed = 1, context = 512, max_tokens;
static double rtol, max_ppl_diff = 0.005, max_ppl_increase = 0.05;
static const char *channels_path, *data_path, *heavy_channels, *heavy_tokens, *label_mode = "qk";
static int label_bits = 16, dense_below = 64;

/* one row per option; other stages add theirs here (e.g. --channels, --eval) with a matching field in
 * fpk_verify_opts */
static const cli_opt opts[] = {
	{"against", 0, CLI_LIST, &against, "DIR", "dense checkpoint: the first (the pruned one) must equal decode bit for bit "
						   "and match the pack's perplexity; all are evaluated with --eval"},
	{"eval", 0, CLI_STRING, &eval_text, "TEXT", "perplexity of the whole packed model on this text (and of each --against)"},
	{"tokens", 0, CLI_STRING, &eval_tokens, "FILE", "pre-tokenized ids for --eval instead of text"},
	{"context", 0, CLI_INT, &context, "N", "--eval window length (default 512)"},
	{"max-tokens", 0, CLI_INT, &max_tokens, "N", "--eval on the first N tokens only (default all)"},
	{"channels", 0, CLI_STRING, &channels_path, "FILE",
	 "verify a Double Sparsity channel config instead: the positional argument is then the MODEL directory"},
	{"data", 0, CLI_STRING, &data_path, "TEXT", "--channels: text to run (tokenized with MODEL's tokenizer.json)"},
	{"heavy-channels", 0, CLI_STRING, &heavy_channels, "r,...", "--channels: heavy channels per head (default d/8,d/4)"},
	{"heavy-tokens", 0, CLI_STRING, &heavy_tokens, "k|1/N,...", "--channels: selected tokens, a budget or a fraction (default 1/16)"},
	{"label-bits", 0, CLI_INT, &label_bits, "16|8|4", "--channels: label precision (default 16)"},
	{"label-mode", 0, CLI_STRING, &label_mode, "qk|q|k",
	 "--channels: rows that pick the channels: qk or q (per query head), k (per kv head, one top-k per group)"},
	{"dense-below", 0, CLI_INT, &dense_below, "N", "--channels: positions with fewer cached tokens stay dense (default 64)"},
	{"max-ppl-increase", 0, CLI_DOUBLE, &max_ppl_increase, "R",
	 "--channels pass bound on the perplexity increase of the first setting (default 0.05)"},
	{"max-ppl-diff", 0, CLI_DOUBLE, &max_ppl_diff, "R",
	 "--eval pass bound: |ppl(pack) - ppl(first --against)| / ppl(first --against) (default 0.005)"},
	{"device", 0, CLI_STRING, &device, "auto|gpu|cpu", "where the numerics run (default auto: GPU if any)"},
	{"require-gpu", 0, CLI_FLAG, &require_gpu, NULL, "fail (exit 5) instead of falling back to the CPU"},
	{"batch", 0, CLI_STRING, &batch, "N,N,...", "token counts to test (default 1,8,16,32)"},
	{"rtol", 0, CLI_DOUBLE, &rtol, "R", "max error relative to the output scale (default 2e-3 F16, 1e-2 BF16)"},
	{"json", 0, CLI_STRING, &json_path, "FILE", "write the report as JSON (- for stdout)"},
	{"bench", 0, CLI_FLAG, &bench, NULL, "time our kernel vs cuBLAS per tensor (GPU)"},
	{"seed", 0, CLI_INT, &seed, "N", "seed of the random inputs X (default 1)"},
	{"threads", 0, CLI_INT, &threads, "N", "CPU worker threads (default: all cores)"},
	{0},
};

static const cli_spec spec = {
	"verify", "PACK [--against PRUNED [--against DENSE]] [--device auto|gpu|cpu] [--batch 1,8,16,32] [--json FILE] "
		  "[--bench] [--eval TEXT|--tokens FILE [--context 512]]",
	"Proves a pack right by running it: every reader rule R1-R15 (docs/format.md), decode equal to --against bit "
	"for bit (+0/-0 alike), then for each encoded tensor and batch size, seeded random X through our Tiled-CSL "
	"SpMM against a dense reference of the decoded weights (GPU: our kernel vs cuBLAS with fp32 accumulation; "
	"CPU: kernels/spmm_ref.c, output rounded to the dtype, vs a dense fp64 product). Reports per tensor the max "
	"absolute error and the max error relative to the output scale (max |reference|). Exit 0 all pass, 1 a "
	"mismatch, 3 malformed pack, 5 GPU error. With --eval, the whole model runs from the pack (--device: on the GPU "
	"every encoded weight goes through our SpMM kernel, layer by layer, at the pack's 16-bit precision; on the CPU "
	"reference engine the weights are decoded to fp32), each --against with the same engine, and the pack's "
	"perplexity must match the first --against within --max-ppl-diff; the max logit difference over the first "
	"window is reported. With --channels CONFIG MODEL --data TEXT, the model runs over the text with Double "
	"Sparsity attention in place of dense attention at every position (--device: on the GPU our label, top-k and "
	"sparse-attention kernels inside the GPU engine; on the CPU their reference): perplexity vs dense, recall and "
	"output error per (r, k), against random and first-r channels; exit 1 when the perplexity increase of the "
	"first setting exceeds --max-ppl-increase, 3 for a bad or mismatched channel config.",
	opts, 1, 1,
};

/* "8,1/16,256" -> budgets (k_fixed) or fractions (k_div) */
static int parse_tokens_list(const char *sp, int *kf, int *kd, int max)
{
	int n = 0;
	while (*sp) {
		char *end;
		if (n >= max)
			return -1;
		if (sp[0] == '1' && sp[1] == '/') {
			long v = strtol(sp + 2, &end, 10);
			if (end == sp + 2 || v < 1 || v > 1 << 20)
				return -1;
			kf[n] = 0;
			kd[n++] = (int)v;
		} else {
			long v = strtol(sp, &end, 10);
			if (end == sp || v < 1 || v > 1 << 24)
				return -1;
			kf[n] = (int)v;
			kd[n++] = 0;
		}
		sp = end;
		if (*sp == ',')
			sp++;
		else if (*sp)
			return -1;
	}
	return n;
}

static int verify_channels(const char *model)
{
	fpk_cheval_opts o;
	fpk_cheval_report *r = calloc(1, sizeof(*r));
	int rc, code = 0;
	memset(&o, 0, sizeof(o));
	if (!r)
		return cli_fail("verify", fpk_error_set(FPK_EIO, "out of memory"));
	o.channels = channels_path;
	o.model = model;
	o.text_path = data_path ? data_path : eval_text;
	o.tokens_path = eval_tokens;
	o.mode = label_mode;
	o.label_bits = label_bits;
	o.context = context != 512 ? context : 0;
	o.dense_below = dense_below;
	o.max_tokens = (size_t)max_tokens;
	o.threads = threads;
	o.max_ppl_increase = max_ppl_increase;
	o.seed = (uint64_t)seed;
	o.progress = cli_quiet ? NULL : cli_progress;
	if (dense_below < 1) {
		code = cli_fail("verify", fpk_error_set(FPK_EUSAGE, "--dense-below %d: expected >= 1 (1: every position)",
							 dense_below));
		goto done;
	}
	if (heavy_channels && (o.n_r = cli_int_list(heavy_channels, o.r, FPK_CHEVAL_MAX)) < 1) {
		code = cli_fail("verify", fpk_error_set(FPK_EUSAGE, "--heavy-channels '%s': expected r,r,...", heavy_channels));
		goto done;
	}
	if (heavy_tokens && (o.n_k = parse_tokens_list(heavy_tokens, o.k_fixed, o.k_div, FPK_CHEVAL_MAX)) < 1) {
		code = cli_fail("verify", fpk_error_set(FPK_EUSAGE, "--heavy-tokens '%s': expected k or 1/N, comma-separated",
							 heavy_tokens));
		goto done;
	}
	if ((rc = fpk_device_pick(device, &o.use_gpu))) {
		code = cli_fail("verify", rc);
		goto done;
	}
	if (!o.use_gpu && require_gpu) {
		code = cli_fail("verify", fpk_error_set(FPK_EGPU, "--require-gpu: no usable GPU for --channels"));
		goto done;
	}
	if (!o.use_gpu && !strcmp(device, "auto"))
		cli_info("verify: no GPU: --channels runs on the CPU reference path\n");
	if ((rc = fpk_cheval_run(&o, r))) {
		code = cli_fail("verify", rc);
		goto done;
	}
	printf("verify --channels %s: config valid for %s (%d layers, %d/%d heads, head_dim %d)\n", channels_path, model,
	       r->n_layers, r->n_heads, r->n_kv_heads, r->head_dim);
	printf("%zu tokens (%zu documents), context %d, label mode %s, %d-bit labels, dense below %d keys\n", r->tokens,
	       r->documents, r->context, r->mode, r->label_bits, r->dense_below);
	if (r->gpu)
		printf("device: %s (engine at %s, our Double Sparsity kernels: %llu decode steps, %.2f s; %.1f s in all)\n",
		       r->device, fpk_dtypes[r->precision].name, (unsigned long long)r->ds_steps, r->ds_seconds, r->seconds);
	else
		printf("device: cpu (reference path, %.1f s)\n", r->seconds);
	printf("dense perplexity %.4f\n", r->ppl_dense);
	printf("%4s  %8s  %-10s  %10s  %9s  %11s  %10s  %9s  %8s\n", "r", "k", "channels", "ppl", "increase", "recall_mean",
	       "recall_min", "err_mean", "err_max");
	for (int i = 0; i < r->n_rows; i++) {
		const fpk_cheval_row *w = &r->rows[i];
		char k[16];
		if (w->k_fixed)
			snprintf(k, sizeof(k), "%d", w->k_fixed);
		else
			snprintf(k, sizeof(k), "1/%d", w->k_div);
		printf("%4d  %8s  %-10s  %10.4f  %8.2f%%  %11.4f  %10.4f  %9.4f  %8.4f\n", w->r, k, fpk_ch_source_names[w->source],
		       w->ppl, 100 * w->rel_ppl_increase, w->recall_mean, w->recall_min, w->err_mean, w->err_max);
	}
	if (r->rows[0].evaluated == 0)
		printf("FAIL: no position took Double Sparsity at the first setting: every position stayed dense (context %d, "
		       "--dense-below %d, or k >= the length)\n", r->context, r->dense_below);
	else
		printf("%s: perplexity increase %.2f%% with the calibrated channels at the first setting (bound %.2f%%)\n",
		       r->pass ? "PASS" : "FAIL", 100 * r->rows[0].rel_ppl_increase, 100 * max_ppl_increase);
	if (json_path) {
		cJSON *root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "channels", channels_path);
		cJSON_AddStringToObject(root, "model", model);
		cJSON_AddNumberToObject(root, "tokens", (double)r->tokens);
		cJSON_AddNumberToObject(root, "context", r->context);
		cJSON_AddStringToObject(root, "label_mode", r->mode);
		cJSON_AddNumberToObject(root, "label_bits", r->label_bits);
		cJSON_AddNumberToObject(root, "dense_below", r->dense_below);
		cJSON_AddNumberToObject(root, "ppl_dense", r->ppl_dense);
		cJSON_AddStringToObject(root, "device", r->gpu ? "gpu" : "cpu");
		cJSON_AddStringToObject(root, "device_name", r->device);
		cJSON_AddStringToObject(root, "precision", fpk_dtypes[r->precision].name);
		if (r->gpu) {
			cJSON_AddNumberToObject(root, "ds_decode_steps", (double)r->ds_steps);
			cJSON_AddNumberToObject(root, "ds_seconds", r->ds_seconds);
		}
		cJSON_AddNumberToObject(root, "seconds", r->seconds);
		cJSON *rows = cJSON_AddArrayToObject(root, "rows");
		for (int i = 0; i < r->n_rows; i++) {
			const fpk_cheval_row *w = &r->rows[i];
			cJSON *jo = cJSON_CreateObject();
			cJSON_AddNumberToObject(jo, "r", w->r);
			if (w->k_fixed)
				cJSON_AddNumberToObject(jo, "k", w->k_fixed);
			else
				cJSON_AddNumberToObject(jo, "k_fraction", 1.0 / w->k_div);
			cJSON_AddStringToObject(jo, "channels", fpk_ch_source_names[w->source]);
			cJSON_AddNumberToObject(jo, "ppl", w->ppl);
			cJSON_AddNumberToObject(jo, "rel_ppl_increase", w->rel_ppl_increase);
			cJSON_AddNumberToObject(jo, "recall_mean", w->recall_mean);
			cJSON_AddNumberToObject(jo, "recall_min", w->recall_min);
			cJSON_AddNumberToObject(jo, "err_mean", w->err_mean);
			cJSON_AddNumberToObject(jo, "err_max", w->err_max);
			cJSON_AddNumberToObject(jo, "evaluated", (double)w->evaluated);
			cJSON_AddItemToArray(rows, jo);
		}
		cJSON_AddBoolToObject(root, "pass", r->pass);
		char *js = cJSON_Print(root);
		cJSON_Delete(root);
		if (!js || (rc = cli_write_text(json_path, js))) {
			free(js);
			code = cli_fail("verify", rc ? rc : FPK_EIO);
			goto done;
		}
		free(js);
	}
	code = r->pass ? 0 : 1;
done:
	free(r);
	return code;
}

int cmd_verify(int argc, char **argv)
{
	char **pos = NULL;
	int npos = 0, rc, code = 0;
	fpk_verify_opts o;
	fpk_verify_report *r = NULL;
	fpk_eval_opts eo;
	fpk_eval_report er;
	int do_eval = 0;
	memset(&o, 0, sizeof(o));
	memset(&eo, 0, sizeof(eo));
	memset(&er, 0, sizeof(er));
	free(against.v);
	against.v = NULL;
	against.n = 0;
	if ((rc = cli_parse(&spec, argc, argv, &pos, &npos)))
		return rc < 0 ? 0 : rc;
	if (channels_path) {
		code = verify_channels(pos[0]);
		goto done;
	}
	o.pack = pos[0];
	o.against = against.n ? against.v[0] : NULL;
	do_eval = eval_text || eval_tokens;
	if (against.n > FPK_EVAL_MAX_AGAINST || (eval_text && eval_tokens) || context < 2 || max_tokens < 0) {
		fpk_error_set(FPK_EUSAGE, "--eval and --tokens exclude each other; at most %d --against; --context >= 2",
			      FPK_EVAL_MAX_AGAINST);
		code = cli_fail("verify", FPK_EUSAGE);
		goto done;
	}
	o.require_gpu = require_gpu;
	o.bench = bench;
	o.rtol = rtol;
	o.seed = (uint64_t)seed;
	o.threads = threads;
	if (!strcmp(device, "auto"))
		o.device = FPK_VERIFY_AUTO;
	else if (!strcmp(device, "gpu"))
		o.device = FPK_VERIFY_GPU;
	else if (!strcmp(device, "cpu"))
		o.device = FPK_VERIFY_CPU;
	else {
		fpk_error_set(FPK_EUSAGE, "--device '%s': expected auto, gpu or cpu", device);
		code = cli_fail("verify", FPK_EUSAGE);
		goto done;
	}
	if (batch && (o.n_batches = cli_int_list(batch, o.batches, FPK_VERIFY_MAX_BATCH)) < 1) {
		fpk_error_set(FPK_EUSAGE, "--batch '%s': expected up to %d comma-separated sizes", batch, FPK_VERIFY_MAX_BATCH);
		code = cli_fail("verify", FPK_EUSAGE);
		goto done;
	}
	if (!cli_quiet) {
		o.progress = cli_progress;
		o.progress_ud = NULL;
	}
	if ((rc = fpk_verify_run(&o, &r))) {
		code = cli_fail("verify", rc);
		goto done;
	}
	if (r->note)
		cli_info("verify: %s\n", r->note);
	{
		size_t w = 4;
		for (size_t i = 0; i < r->n_tensors; i++)
			if (strlen(r->t[i].name) > w)
				w = strlen(r->t[i].name);
		printf("verify %s: structure ok (rules R1-R15), %zu encoded tensors, numerics on %s\n", o.pack, r->n_tensors,
		       r->gpu ? r->device_name : "cpu (spmm_ref vs fp64 dense)");
		printf("%-*s  %-5s  %-14s  %5s  %11s  %11s  %8s  %s%s\n", (int)w, "name", "dtype", "shape", "N", "max_abs",
		       "max_rel", "rtol", "result", bench && r->gpu ? "  ours_us  cublas_us  x" : "");
		for (size_t i = 0; i < r->n_tensors; i++) {
			const fpk_verify_tensor *t = &r->t[i];
			char sh[48];
			snprintf(sh, sizeof(sh), "[%lld, %lld]", (long long)t->m, (long long)t->k);
			if (t->mismatch)
				printf("%-*s  %-5s  %-14s  against: %s  FAIL\n", (int)w, t->name, fpk_dtypes[t->dtype].name, sh,
				       t->mismatch);
			for (int b = 0; b < t->n_batches; b++) {
				const fpk_verify_batch *v = &t->b[b];
				printf("%-*s  %-5s  %-14s  %5d  %11.3e  %11.3e  %8.1e  %s", (int)w, t->name, fpk_dtypes[t->dtype].name,
				       sh, v->n, v->max_abs, v->max_rel, t->tol, v->pass ? "ok" : "FAIL");
				if (bench && r->gpu)
					printf("  %7.1f  %9.1f  %.2f", v->us_ours, v->us_dense, v->us_ours > 0 ? v->us_dense / v->us_ours : 0);
				printf("\n");
			}
		}
		printf("%s: %zu of %zu tensors failed\n", r->pass ? "PASS" : "FAIL", r->n_failed, r->n_tensors);
	}
	if (do_eval) {
		int use_gpu = 0;
		if ((rc = fpk_device_pick(device, &use_gpu))) {
			code = cli_fail("verify", rc);
			goto done;
		}
		if (!use_gpu && require_gpu) {
			code = cli_fail("verify", fpk_error_set(FPK_EGPU, "--require-gpu: no usable GPU for --eval"));
			goto done;
		}
		if (!use_gpu && !strcmp(device, "auto"))
			cli_info("verify: no GPU: --eval runs on the CPU reference engine\n");
		eo.use_gpu = use_gpu;
		eo.pack = o.pack;
		for (size_t i = 0; i < against.n; i++)
			eo.against[i] = against.v[i];
		eo.n_against = (int)against.n;
		eo.text_path = eval_text;
		eo.tokens_path = eval_tokens;
		eo.context = context;
		eo.max_tokens = (size_t)max_tokens;
		eo.threads = threads;
		eo.max_rel_ppl_diff = max_ppl_diff;
		eo.progress = cli_quiet ? NULL : cli_progress;
		if ((rc = fpk_eval_run(&eo, &er))) {
			code = cli_fail("verify", rc);
			goto done;
		}
		printf("\neval: %zu tokens (%zu documents), context %d, ", er.tokens, er.documents, er.context);
		if (er.gpu)
			printf("GPU engine on %s: %s linear products with fp32 accumulation, layer-streamed (%d pass%s); pack: "
			       "%d matrices through the Tiled-CSL SpMM kernel, %d through cuBLAS\n", er.device,
			       fpk_dtypes[er.precision].name, er.passes, er.passes == 1 ? "" : "es", er.pack.spmm_matrices,
			       er.pack.dense_matrices);
		else
			printf("CPU reference engine (fp32, encoded weights decoded)\n");
		printf("%-10s  %10s  %10s  %8s  %s\n", "model", "mean_nll", "ppl", "seconds", "path");
		printf("%-10s  %10.5f  %10.4f  %8.2f  %s\n", "pack", er.pack.mean_nll, er.pack.ppl, er.pack.seconds,
		       er.pack.path);
		for (int i = 0; i < er.n_against; i++)
			printf("%-10s  %10.5f  %10.4f  %8.2f  %s\n", i == 0 ? "against" : "against+", er.against[i].mean_nll,
			       er.against[i].ppl, er.against[i].seconds, er.against[i].path);
		if (er.n_against)
			printf("eval %s: relative perplexity difference %.3e (bound %.1e), max logit difference %.3e over %d "
			       "tokens\n", er.pass ? "PASS" : "FAIL", er.rel_ppl_diff, max_ppl_diff, er.max_logit_diff,
			       er.logit_tokens);
	}
	if (json_path) {
		char *js = fpk_verify_report_json(r, &o);
		if (js && do_eval) {
			cJSON *root = cJSON_Parse(js), *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "tokens", (double)er.tokens);
			cJSON_AddNumberToObject(e, "documents", (double)er.documents);
			cJSON_AddNumberToObject(e, "context", er.context);
			cJSON_AddStringToObject(e, "device", er.gpu ? "gpu" : "cpu");
			cJSON_AddStringToObject(e, "engine", er.gpu ? "gpu-spmm" : "cpu-reference");
			cJSON_AddStringToObject(e, "device_name", er.device);
			cJSON_AddStringToObject(e, "precision", fpk_dtypes[er.precision].name);
			if (er.gpu)
				cJSON_AddNumberToObject(e, "passes", er.passes);
			const fpk_eval_result *res[1 + FPK_EVAL_MAX_AGAINST];
			res[0] = &er.pack;
			for (int i = 0; i < er.n_against; i++)
				res[1 + i] = &er.against[i];
			cJSON *models = cJSON_AddArrayToObject(e, "models");
			for (int i = 0; i <= er.n_against; i++) {
				cJSON *mo = cJSON_CreateObject();
				cJSON_AddStringToObject(mo, "role", i == 0 ? "pack" : i == 1 ? "against" : "reference");
				cJSON_AddStringToObject(mo, "path", res[i]->path);
				cJSON_AddNumberToObject(mo, "mean_nll", res[i]->mean_nll);
				cJSON_AddNumberToObject(mo, "ppl", res[i]->ppl);
				cJSON_AddNumberToObject(mo, "predictions", (double)res[i]->predictions);
				cJSON_AddNumberToObject(mo, "seconds", res[i]->seconds);
				cJSON_AddNumberToObject(mo, "engine_seconds", res[i]->engine_seconds);
				if (er.gpu) {
					cJSON_AddNumberToObject(mo, "spmm_matrices", res[i]->spmm_matrices);
					cJSON_AddNumberToObject(mo, "dense_matrices", res[i]->dense_matrices);
					cJSON_AddNumberToObject(mo, "upload_wait_s", res[i]->upload_wait_s);
				}
				cJSON_AddItemToArray(models, mo);
			}
			cJSON_AddNumberToObject(e, "rel_ppl_diff", er.rel_ppl_diff);
			cJSON_AddNumberToObject(e, "max_rel_ppl_diff", max_ppl_diff);
			cJSON_AddNumberToObject(e, "max_logit_diff", isfinite(er.max_logit_diff) ? er.max_logit_diff : -1);
			cJSON_AddBoolToObject(e, "pass", er.pass);
			if (root) {
				cJSON_AddItemToObject(root, "eval", e);
				free(js);
				js = cJSON_Print(root);
			} else {
				cJSON_Delete(e);
			}
			cJSON_Delete(root);
		}
		if (!js || (rc = cli_write_text(json_path, js))) {
			free(js);
			code = cli_fail("verify", rc ? rc : FPK_EFAIL);
			goto done;
		}
		free(js);
	}
	code = r->pass && (!do_eval || er.pass) ? 0 : 1;
	if (do_eval && !er.pass)
		fprintf(stderr, "flashllm-pack verify: error: the pack's perplexity differs from '%s' by %.3e (bound %.1e)\n",
			er.n_against ? er.against[0].path : "?", er.rel_ppl_diff, max_ppl_diff);
	if (!r->pass)
		fprintf(stderr, "flashllm-pack verify: error: %zu tensor(s) failed verification%s\n", r->n_failed,
			r->n_tensors ? "" : " (no encoded tensor)");
done:
	fpk_verify_report_free(r);
	free(pos);
	return code;
}
