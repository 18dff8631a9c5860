/* cmd_calibrate.c: `flashllm-pack calibrate --channels MODEL --data TEXT|--tokens FILE -o channels.json [...]`:
 * Double Sparsity channel calibration, the channel config plus a <out>.meta.json sidecar. Tested by
 * tests/cli/calibrate_*.sh. */
#include "calibrate.h"
#include "cli.h"
#include "model_gpu.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int channels, blocks, block_len, report, threads, force;
static const char *data_path, *tokens_path, *out_path, *mode_str, *device, *precision;

static const cli_opt opts[] = {
	{"channels", 0, CLI_FLAG, &channels, NULL, "calibrate Double Sparsity heavy channels (the only kind so far)"},
	{"data", 0, CLI_STRING, &data_path, "TEXT", "calibration text file (UTF-8), tokenized with MODEL's tokenizer.json"},
	{"tokens", 0, CLI_STRING, &tokens_path, "FILE",
		"pre-tokenized ids instead: whitespace-separated decimal, or little-endian uint32 when FILE ends in .bin/.u32"},
	{"output", 'o', CLI_STRING, &out_path, "OUT", "channel config to write (plus OUT.meta.json)"},
	{"mode", 0, CLI_STRING, &mode_str, "qk,q,k", "statistics to compute (default all three, in one pass)"},
	{"blocks", 0, CLI_INT, &blocks, "N", "blocks of calibration tokens (default 256)"},
	{"block-len", 0, CLI_INT, &block_len, "N", "tokens per block (default 512)"},
	{"device", 0, CLI_STRING, &device, "auto|gpu|cpu", "where to run (default auto: the GPU when there is one)"},
	{"precision", 0, CLI_STRING, &precision, "fp32|mixed",
		"GPU arithmetic: fp32 (default, exact) or mixed (fp16 weights and products with fp32 accumulation, fused "
		"tensor-core attention: about 2x faster on large models, statistics within ~1e-3 relative)"},
	{"report", 0, CLI_FLAG, &report, NULL,
		"print, per layer and head, the share of the statistic held by the top d/16, d/8, d/4 channels"},
	{"threads", 0, CLI_INT, &threads, "N", "CPU worker threads (default: all cores)"},
	{"force", 0, CLI_FLAG, &force, NULL, "replace an existing OUT"},
	{0},
};

static const cli_spec spec = {
	"calibrate", "--channels MODEL --data TEXT|--tokens FILE -o OUT [--mode qk,q,k] [--blocks N] [--block-len N]",
	"Runs the text through the model in non-overlapping blocks (each at positions 0..N-1, no BOS inserted) and "
	"ranks each head's channels: q and k by mean |.| before RoPE, qk by mean |q*k| after RoPE with keys expanded "
	"over their GQA group. Writes the channel config (keys model.layers.{i}.self_attn.{q,k,qk}_proj, rows = "
	"permutations, most important first) and OUT.meta.json (model, data digest, tokens used). Text shorter than "
	"one block is used as one shorter block, with a warning. See docs/calibrate.md.",
	opts, 1, 1,
};

static int parse_modes(const char *s, int *modes)
{
	*modes = 0;
	if (!s)
		return 0;
	const char *p = s;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		int found = -1;
		for (int m = 0; m < FPK_CH_MODES; m++)
			if (strlen(fpk_ch_mode_names[m]) == n && !strncmp(p, fpk_ch_mode_names[m], n))
				found = m;
		if (found < 0)
			return fpk_error_set(FPK_EUSAGE, "--mode '%s': each entry must be q, k or qk", s);
		*modes |= 1 << found;
		p += n + (e ? 1 : 0);
	}
	return *modes ? 0 : fpk_error_set(FPK_EUSAGE, "--mode is empty");
}

static int ceil_div(int a, int b)
{
	int r = (a + b - 1) / b;
	return r < 1 ? 1 : r;
}

int cmd_calibrate(int argc, char **argv)
{
	char **pos = NULL, *text = NULL, *json = NULL, *meta_path = NULL, *meta_text = NULL, *cfg_text = NULL;
	int npos, rc, ex = 0, *ids = NULL, modes = 0, use_gpu = 0, mixed = 0;
	size_t nids = 0, tlen = 0, jlen = 0, cfg_len = 0;
	fpk_model *m = NULL;
	fpk_tokenizer *tok = NULL;
	fpk_calibration cal;
	fpk_atomic_file fo = {0}, fm = {0};
	int fo_open = 0, fm_open = 0;
	memset(&cal, 0, sizeof(cal));
	channels = report = threads = force = 0;
	blocks = 256;
	block_len = 512;
	data_path = tokens_path = out_path = mode_str = NULL;
	device = "auto";
	precision = "fp32";
	if ((rc = cli_parse(&spec, argc, argv, &pos, &npos)))
		return rc < 0 ? 0 : rc;
#define FAIL(code)                                                                                                   \
	do {                                                                                                             \
		ex = cli_fail("calibrate", (code));                                                                          \
		goto done;                                                                                                   \
	} while (0)
	if (!channels)
		FAIL(fpk_error_set(FPK_EUSAGE, "say what to calibrate: --channels (the only kind so far)"));
	if (!out_path)
		FAIL(fpk_error_set(FPK_EUSAGE, "-o OUT is required"));
	if (!data_path == !tokens_path)
		FAIL(fpk_error_set(FPK_EUSAGE, "give exactly one of --data TEXT and --tokens FILE"));
	if (blocks < 1 || block_len < 2)
		FAIL(fpk_error_set(FPK_EUSAGE, "--blocks must be >= 1 and --block-len >= 2 (got %d, %d)", blocks, block_len));
	if ((rc = parse_modes(mode_str, &modes)) || (rc = fpk_device_pick(device, &use_gpu)))
		FAIL(rc);
	if (strcmp(precision, "fp32") && strcmp(precision, "mixed"))
		FAIL(fpk_error_set(FPK_EUSAGE, "--precision '%s': expected fp32 or mixed", precision));
	mixed = !strcmp(precision, "mixed");
	if (mixed && !use_gpu) {
		cli_warn("calibrate", "--precision mixed applies to the GPU path only; the CPU path computes in fp32");
		mixed = 0;
	}
	if (fpk_path_exists(out_path) && !force)
		FAIL(fpk_error_set(FPK_EUSAGE, "output '%s' exists (use --force to replace it)", out_path));
	if (!(meta_path = malloc(strlen(out_path) + 16)))
		FAIL(fpk_error_set(FPK_EIO, "out of memory"));
	sprintf(meta_path, "%s.meta.json", out_path);
	/* open both outputs now: an unwritable path fails before the work, and nothing appears until commit */
	if ((rc = fpk_atomic_open(&fo, out_path)))
		FAIL(rc);
	fo_open = 1;
	if ((rc = fpk_atomic_open(&fm, meta_path)))
		FAIL(rc);
	fm_open = 1;
	/* the GPU path streams the large matrices from the mapped files layer by layer (nothing converted up front);
	 * the CPU path (and a pack, which cannot be loaded lazily) loads everything as fp32 */
	if (!use_gpu || fpk_model_load_lazy(&m, pos[0], threads))
		if ((rc = fpk_model_load(&m, pos[0], threads)))
			FAIL(rc);
	if (tokens_path) {
		if ((rc = fpk_tokens_read(tokens_path, m->cfg.vocab, &ids, &nids)))
			FAIL(rc);
	} else {
		if ((rc = fpk_tokenizer_load(&tok, pos[0])) || (rc = fpk_read_file(data_path, &text, &tlen)) ||
			(rc = fpk_tokenizer_encode(tok, text, tlen, 1, &ids, &nids)))
			FAIL(rc);
		if (fpk_tokenizer_vocab_size(tok) > m->cfg.vocab)
			FAIL(fpk_error_set(FPK_EFORMAT, "tokenizer.json has %d tokens, the model's vocab_size is %d",
				fpk_tokenizer_vocab_size(tok), m->cfg.vocab));
		if (text && nids <= 1)
			nids = 0; /* BOS alone is no text */
	}
	if (nids == 0)
		FAIL(fpk_error_set(FPK_EUSAGE, "calibration data '%s' holds no tokens", tokens_path ? tokens_path : data_path));
	fpk_calibrate_opts co = {ids, nids, modes, blocks, block_len, use_gpu, cli_progress, NULL, mixed};
	if ((rc = fpk_calibrate_channels(m, &co, &cal)))
		FAIL(rc);
	if (cal.flags & FPK_CAL_PARTIAL_BLOCK)
		cli_warn("calibrate", "the data holds %zu tokens, less than one block of %d: calibrated on one block of %d",
			nids, block_len, cal.block_len);
	else if (cal.flags & FPK_CAL_SHORT_BLOCKS)
		cli_warn("calibrate", "the data holds %zu tokens: %d whole blocks of %d instead of %d", nids, cal.blocks,
			cal.block_len, blocks);
	/* the channel config */
	if ((rc = fpk_channels_to_json(&cal.order, &json, &jlen)))
		FAIL(rc);
	/* sidecar */
	{
		char hex[16];
		uint32_t crc = 0;
		for (size_t i = 0; i < cal.tokens_used; i++) {
			uint8_t le[4] = {(uint8_t)ids[i], (uint8_t)(ids[i] >> 8), (uint8_t)(ids[i] >> 16), (uint8_t)(ids[i] >> 24)};
			crc = fpk_crc32(crc, le, 4);
		}
		char *cfgp = fpk_path_join(pos[0], "config.json");
		if (!cfgp || (rc = fpk_read_file(fpk_is_dir(pos[0]) ? cfgp : pos[0], &cfg_text, &cfg_len))) {
			free(cfgp);
			FAIL(rc ? rc : fpk_error_set(FPK_EIO, "out of memory"));
		}
		free(cfgp);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "tool", "flashllm-pack calibrate --channels");
		cJSON_AddStringToObject(o, "version", FPK_VERSION);
		cJSON_AddStringToObject(o, "model", pos[0]);
		cJSON_AddStringToObject(o, "architecture", fpk_archs[m->cfg.arch].architecture);
		snprintf(hex, sizeof(hex), "%08x", fpk_crc32(0, cfg_text, cfg_len));
		cJSON_AddStringToObject(o, "config_crc32", hex);
		cJSON_AddStringToObject(o, "data", tokens_path ? tokens_path : data_path);
		cJSON_AddStringToObject(o, "data_kind", tokens_path ? "tokens" : "text");
		snprintf(hex, sizeof(hex), "%08x", crc);
		cJSON_AddStringToObject(o, "tokens_crc32", hex);
		cJSON_AddStringToObject(o, "tokens_crc32_of", "the used token ids as little-endian uint32");
		cJSON_AddNumberToObject(o, "tokens_total", (double)nids);
		cJSON_AddNumberToObject(o, "tokens_used", (double)cal.tokens_used);
		cJSON_AddNumberToObject(o, "blocks", cal.blocks);
		cJSON_AddNumberToObject(o, "blocks_requested", blocks);
		cJSON_AddNumberToObject(o, "block_len", cal.block_len);
		cJSON_AddBoolToObject(o, "bos_per_block", 0);
		cJSON *ma = cJSON_AddArrayToObject(o, "modes");
		for (int k = 0; k < FPK_CH_MODES; k++)
			if (modes == 0 || (modes >> k & 1))
				cJSON_AddItemToArray(ma, cJSON_CreateString(fpk_ch_mode_names[k]));
		cJSON_AddStringToObject(o, "device", use_gpu ? "gpu" : "cpu");
		cJSON_AddStringToObject(o, "precision", mixed ? "mixed" : "fp32");
		cJSON_AddNumberToObject(o, "n_layers", cal.n_layers);
		cJSON_AddNumberToObject(o, "n_heads", cal.n_heads);
		cJSON_AddNumberToObject(o, "n_kv_heads", cal.n_kv_heads);
		cJSON_AddNumberToObject(o, "head_dim", cal.head_dim);
		meta_text = cJSON_Print(o);
		cJSON_Delete(o);
		if (!meta_text)
			FAIL(fpk_error_set(FPK_EIO, "out of memory"));
	}
	if ((rc = fpk_atomic_write(&fo, json, jlen)) || (rc = fpk_atomic_write(&fm, meta_text, strlen(meta_text))) ||
		(rc = fpk_atomic_write(&fm, "\n", 1)))
		FAIL(rc);
	fm_open = 0;
	if ((rc = fpk_atomic_commit(&fm)))
		FAIL(rc);
	fo_open = 0;
	if ((rc = fpk_atomic_commit(&fo))) {
		remove(meta_path);
		FAIL(rc);
	}
	if (report) {
		int d = cal.head_dim, r1 = ceil_div(d, 16), r2 = ceil_div(d, 8), r3 = ceil_div(d, 4);
		printf("share of the statistic held by the top r channels: r = %d, %d, %d (d/16, d/8, d/4 of d = %d)\n", r1,
			r2, r3, d);
		printf("%-5s  %-4s  %-4s  %8s  %8s  %8s\n", "layer", "mode", "head", "top r1", "top r2", "top r3");
		for (int l = 0; l < cal.n_layers; l++)
			for (int k = 0; k < FPK_CH_MODES; k++) {
				if (!cal.stat[k])
					continue;
				int nh = fpk_channels_heads(&cal.order, k);
				for (int h = 0; h < nh; h++) {
					const double *s = cal.stat[k] + ((size_t)l * nh + h) * d;
					const int *o = fpk_channels_row(&cal.order, k, l, h);
					printf("%-5d  %-4s  %-4d  %8.4f  %8.4f  %8.4f\n", l, fpk_ch_mode_names[k], h,
						fpk_channel_share(s, o, d, r1), fpk_channel_share(s, o, d, r2), fpk_channel_share(s, o, d, r3));
				}
			}
	}
	cli_info("calibrated %d layers on %d blocks x %d tokens (%s) in %.2f s: wrote '%s' and '%s'", cal.n_layers,
		cal.blocks, cal.block_len, use_gpu ? "gpu" : "cpu", cal.seconds, out_path, meta_path);
#undef FAIL
done:
	if (fo_open)
		fpk_atomic_abort(&fo);
	if (fm_open)
		fpk_atomic_abort(&fm);
	fpk_calibration_release(&cal);
	free(json);
	free(meta_text);
	free(meta_path);
	free(cfg_text);
	free(text);
	free(ids);
	fpk_tokenizer_free(tok);
	fpk_model_free(m);
	free(pos);
	return ex;
}
