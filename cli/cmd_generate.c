/* cmd_generate.c: `flashllm-pack generate MODEL [--steps N] [--prompt TEXT|--tokens FILE] [--device D] [--json]`:
 * greedy decoding with our engine (llama2.c semantics). Tested by tests/cli/generate_*.sh. */
#include "cli.h"
#include "model.h"
#include "model_gpu.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int steps, json_out, threads;
static const char *prompt, *tokens_path, *device;

static const cli_opt opts[] = {
	{"steps", 'n', CLI_INT, &steps, "N", "positions to run, prompt included (default 200; llama2.c's -n)"},
	{"prompt", 'p', CLI_STRING, &prompt, "TEXT", "prompt text (tokenized with the model's tokenizer.json, BOS added)"},
	{"tokens", 0, CLI_STRING, &tokens_path, "FILE",
		"prompt as token ids: whitespace-separated decimal, or little-endian uint32 when FILE ends in .bin/.u32"},
	{"device", 0, CLI_STRING, &device, "auto|gpu|cpu", "where to run (default auto: the GPU when there is one)"},
	{"json", 0, CLI_FLAG, &json_out, NULL, "print {ids, text, device, seconds, tokens_per_s} as JSON"},
	{"threads", 0, CLI_INT, &threads, "N", "CPU worker threads (default: all cores)"},
	{0},
};

static const cli_spec spec = {
	"generate", "MODEL [--steps N] [--prompt TEXT | --tokens FILE] [--device auto|gpu|cpu] [--json]",
	"Greedy (temperature 0) decoding from BOS or a prompt, printed as text. Stops after N positions, or early when "
	"the model emits BOS or EOS. Proves the engine: on stories260K from BOS with 200 steps it reproduces "
	"llama2.c's output exactly.",
	opts, 1, 1,
};

/* llama2.c's safe_printf: skip single non-printable bytes */
static void append_piece(char **buf, size_t *len, size_t *cap, const char *p, int n)
{
	if (n == 1 && !(isprint((unsigned char)p[0]) || isspace((unsigned char)p[0])))
		return;
	while (*len + (size_t)n + 1 > *cap) {
		*cap = *cap ? 2 * *cap : 256;
		*buf = realloc(*buf, *cap);
		if (!*buf)
			return;
	}
	memcpy(*buf + *len, p, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = 0;
}

int cmd_generate(int argc, char **argv)
{
	char **pos = NULL;
	int npos, rc, ex = 0, *pids = NULL, *out = NULL, nout = 0;
	size_t np = 0, tlen = 0, tcap = 0;
	char *text = NULL;
	fpk_model *m = NULL;
	fpk_tokenizer *tok = NULL;
	steps = 200;
	json_out = threads = 0;
	prompt = tokens_path = NULL;
	device = "auto";
	if ((rc = cli_parse(&spec, argc, argv, &pos, &npos)))
		return rc < 0 ? 0 : rc;
	int use_gpu = 0;
	if ((rc = fpk_device_pick(device, &use_gpu))) {
		ex = cli_fail("generate", rc);
		goto done;
	}
	if (prompt && tokens_path) {
		fpk_error_set(FPK_EUSAGE, "give --prompt or --tokens, not both");
		ex = cli_fail("generate", FPK_EUSAGE);
		goto done;
	}
	if (steps < 1) {
		fpk_error_set(FPK_EUSAGE, "--steps must be at least 1 (got %d)", steps);
		ex = cli_fail("generate", FPK_EUSAGE);
		goto done;
	}
	if ((rc = fpk_model_load(&m, pos[0], threads))) {
		ex = cli_fail("generate", rc);
		goto done;
	}
	/* the tokenizer decodes the output; without one (and with --tokens) ids are still printed with --json */
	if (tokens_path) {
		if ((rc = fpk_tokens_read(tokens_path, m->cfg.vocab, &pids, &np))) {
			ex = cli_fail("generate", rc);
			goto done;
		}
		if (np == 0) {
			fpk_error_set(FPK_EFORMAT, "token file '%s' holds no ids", tokens_path);
			ex = cli_fail("generate", FPK_EFORMAT);
			goto done;
		}
		if (fpk_tokenizer_load(&tok, pos[0]))
			tok = NULL;
	} else {
		if ((rc = fpk_tokenizer_load(&tok, pos[0]))) {
			ex = cli_fail("generate", rc);
			goto done;
		}
		const char *pt = prompt ? prompt : "";
		if ((rc = fpk_tokenizer_encode(tok, pt, strlen(pt), 1, &pids, &np))) {
			ex = cli_fail("generate", rc);
			goto done;
		}
		if (np == 0 || pids[0] < 0) {
			fpk_error_set(FPK_EFORMAT, "the tokenizer has no BOS token: give a prompt");
			ex = cli_fail("generate", FPK_EFORMAT);
			goto done;
		}
	}
	if (!(out = malloc((size_t)steps * sizeof(int)))) {
		ex = cli_fail("generate", fpk_error_set(FPK_EIO, "out of memory"));
		goto done;
	}
	double t0 = fpk_now_s();
	if (use_gpu)
		rc = fpk_model_gpu_generate_greedy(m, pids, (int)np, steps, out, &nout);
	else
		rc = fpk_model_generate_greedy(m, pids, (int)np, steps, out, &nout);
	double secs = fpk_now_s() - t0;
	if (rc) {
		ex = cli_fail("generate", rc);
		goto done;
	}
	/* text: the prompt after its first token (as llama2.c prints it), then the generated tokens */
	if (tok) {
		char piece[512];
		int prev = pids[0];
		for (size_t i = 1; i < np + (size_t)nout; i++) {
			int id = i < np ? pids[i] : out[i - np];
			int n = fpk_tokenizer_piece(tok, prev, id, piece, sizeof(piece));
			if (n < 0) {
				ex = cli_fail("generate", n);
				goto done;
			}
			append_piece(&text, &tlen, &tcap, piece, n);
			prev = id;
		}
	}
	if (json_out) {
		cJSON *root = cJSON_CreateObject();
		cJSON *ids = cJSON_AddArrayToObject(root, "ids");
		for (int i = 0; i < nout; i++)
			cJSON_AddItemToArray(ids, cJSON_CreateNumber(out[i]));
		if (tok)
			cJSON_AddStringToObject(root, "text", text ? text : "");
		cJSON_AddStringToObject(root, "device", use_gpu ? "gpu" : "cpu");
		cJSON_AddNumberToObject(root, "prompt_tokens", (double)np);
		cJSON_AddNumberToObject(root, "seconds", secs);
		cJSON_AddNumberToObject(root, "tokens_per_s", secs > 0 ? nout / secs : 0);
		char *s = cJSON_Print(root);
		printf("%s\n", s);
		free(s);
		cJSON_Delete(root);
	} else if (tok) {
		printf("%s\n", text ? text : "");
	} else {
		for (int i = 0; i < nout; i++)
			printf(i ? " %d" : "%d", out[i]);
		printf("\n");
	}
	cli_info("%d tokens in %.3f s (%.1f tokens/s, %s)", nout, secs, secs > 0 ? nout / secs : 0.0,
		use_gpu ? "gpu" : "cpu");
done:
	free(text);
	free(out);
	free(pids);
	fpk_tokenizer_free(tok);
	fpk_model_free(m);
	free(pos);
	return ex;
}
