/* cli.h: the option-table parser, the command table and the few helpers every cmd_<name>.c shares.
 * cli/ is the only code that prints to the user or exits. Tested by the scripts in tests/cli. */
#ifndef FPK_CLI_H
#define FPK_CLI_H

#include "fpk_common.h"

#include <stdio.h>

typedef enum cli_opt_kind { CLI_FLAG, CLI_INT, CLI_DOUBLE, CLI_STRING, CLI_LIST } cli_opt_kind;

typedef struct cli_strlist {
	const char **v;
	size_t n;
} cli_strlist;

typedef struct cli_opt {
	const char *name;  /* long name, without "--" */
	char short_name;   /* 0 for none */
	cli_opt_kind kind;
	void *dest;        /* int* (FLAG, INT), double*, const char** (STRING), cli_strlist* (LIST, repeatable) */
	const char *arg;   /* metavar shown in help */
	const char *help;
} cli_opt;

typedef struct cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* returns an exit code */
} cli_cmd;

typedef struct cli_spec {
	const char *cmd;      /* "prune" */
	const char *usage;    /* "IN -o OUT --sparsity S [options]" */
	const char *about;    /* a paragraph for --help */
	const cli_opt *opts;  /* terminated by {0} */
	int min_pos, max_pos; /* positional argument counts */
} cli_spec;

/* global flags, set by the parser for every command */
extern int cli_quiet, cli_verbose;

/* Parse argv (argv[0] is the command name). Positional args are returned in pos (caller frees the array).
 * Returns 0, or an exit code: 2 on usage errors (message printed), -1 when --help was printed (exit 0). */
int cli_parse(const cli_spec *spec, int argc, char **argv, char ***pos, int *npos);
void cli_help(const cli_spec *spec, FILE *out);

/* print "flashllm-pack CMD: error: MSG" for status rc and return its exit code */
int cli_fail(const char *cmd, int rc);
void cli_warn(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_info(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* stderr unless -q */
/* progress callback for library code: a one-line bar on stderr when it is a terminal and not -q */
void cli_progress(void *ud, const char *what, uint64_t done, uint64_t total);
/* human byte count "1.23 GB" into buf */
const char *cli_bytes(uint64_t n, char *buf, size_t len);
/* parse a comma-separated list of ints ("1,8,16"); returns count or -1 */
int cli_int_list(const char *s, int *out, int max);
/* write text to path atomically, or to stdout when path is "-" */
int cli_write_text(const char *path, const char *text);

/* every subcommand */
int cmd_inspect(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_generate(int argc, char **argv);

#endif
