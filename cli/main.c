/* main.c: the flashllm-pack command table. Run `flashllm-pack help` for the list of commands.
 * Tested by tests/cli/usage.sh. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const cli_cmd commands[] = {
	{"prune", "magnitude-prune a dense checkpoint (unstructured or N:M)", cmd_prune},
	{"encode", "encode pruned weights as Tiled-CSL into a packed-model directory", cmd_encode},
	{"decode", "turn a packed-model directory back into a dense checkpoint", cmd_decode},
	{"calibrate", "offline channel calibration for Double Sparsity (--channels)", cmd_calibrate},
	{"verify", "check a pack (structure, GPU kernels vs dense) or a channel config", cmd_verify},
	{"inspect", "list the tensors of a checkpoint, model directory or pack", cmd_inspect},
	{"generate", "greedy text generation with the built-in engine", cmd_generate},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: flashllm-pack [--version] <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "  %-10s %s\n", "help", "show this list, or `help COMMAND` for a command's options");
	fprintf(out, "\nexit codes: 0 ok, 1 failed/mismatch, 2 usage, 3 bad input data, 4 I/O, 5 GPU (docs/cli.md)\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *name = argv[1];
	if (!strcmp(name, "--version") || !strcmp(name, "version")) {
		printf("flashllm-pack %s\n", FPK_VERSION);
		return 0;
	}
	if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
		if (argc >= 3) {
			for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
				if (!strcmp(commands[i].name, argv[2])) {
					char *hargv[] = {argv[2], "--help", NULL};
					return commands[i].run(2, hargv);
				}
			}
			fprintf(stderr, "flashllm-pack: unknown command '%s'\n", argv[2]);
			return 2;
		}
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "flashllm-pack: unknown command '%s'\n\n", name);
	usage(stderr);
	return 2;
}
