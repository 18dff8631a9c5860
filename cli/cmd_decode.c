/* cmd_decode.c: `flashllm-pack decode PACK -o OUT`: a packed-model directory back to a dense checkpoint with the
 * original tensor names and order. Tested by tests/cli/encode_*.sh. */
#include "cli.h"
#include "encode.h"

#include <stdlib.h>

int cmd_decode(int argc, char **argv)
{
	static const char *out;
	static int force, threads;
	out = NULL;
	force = threads = 0;
	const cli_opt opts[] = {
		{"output", 'o', CLI_STRING, &out, "OUT", "dense checkpoint directory to create"},
		{"threads", 0, CLI_INT, &threads, "N", "worker threads for validation (default: all cores)"},
		{"force", 0, CLI_FLAG, &force, NULL, "replace OUT if it exists"},
		{0},
	};
	const cli_spec spec = {
		"decode", "PACK -o OUT [--force]",
		"PACK is a packed-model directory from `encode`; it is validated (docs/format.md 3, rules R1-R15) and every "
		"encoded weight is written back dense (zeros as +0.0), with config.json minus its \"flashllm_pack\" section.",
		opts, 1, 1,
	};
	char **pos = NULL;
	int npos, rc, ex = 0;
	if ((rc = cli_parse(&spec, argc, argv, &pos, &npos)))
		return rc < 0 ? 0 : rc;
	if (!out) {
		fpk_error_set(FPK_EUSAGE, "missing -o OUT");
		ex = cli_fail("decode", FPK_EUSAGE);
	} else if ((rc = fpk_decode_run(pos[0], out, force, threads, cli_progress, NULL))) {
		ex = cli_fail("decode", rc);
	} else {
		cli_info("wrote %s\n", out);
	}
	free(pos);
	return ex;
}
