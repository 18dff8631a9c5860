/* opts.c: one option table per command drives both parsing and --help; shared printing helpers.
 * Tested by tests/cli/usage.sh. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_quiet, cli_verbose;

static int help_flag, quiet_flag, verbose_flag;
static const cli_opt common_opts[] = {
	{"help", 'h', CLI_FLAG, &help_flag, NULL, "show this help and exit"},
	{"quiet", 'q', CLI_FLAG, &quiet_flag, NULL, "print only errors"},
	{"verbose", 'v', CLI_FLAG, &verbose_flag, NULL, "print more detail"},
	{0},
};

void cli_help(const cli_spec *spec, FILE *out)
{
	fprintf(out, "usage: flashllm-pack %s %s\n\n", spec->cmd, spec->usage);
	if (spec->about)
		fprintf(out, "%s\n\n", spec->about);
	fprintf(out, "options:\n");
	const cli_opt *tables[2] = {spec->opts, common_opts};
	for (int t = 0; t < 2; t++) {
		for (const cli_opt *o = tables[t]; o && o->name; o++) {
			char left[64];
			if (o->short_name)
				snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "",
					 o->arg ? o->arg : "");
			else
				snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
			fprintf(out, "  %-30s %s%s\n", left, o->help, o->kind == CLI_LIST ? " (repeatable)" : "");
		}
	}
}

static const cli_opt *find_opt(const cli_spec *spec, const char *name, size_t len, char short_name)
{
	const cli_opt *tables[2] = {spec->opts, common_opts};
	for (int t = 0; t < 2; t++) {
		for (const cli_opt *o = tables[t]; o && o->name; o++) {
			if (short_name ? o->short_name == short_name : (strlen(o->name) == len && !strncmp(o->name, name, len)))
				return o;
		}
	}
	return NULL;
}

static int usage_error(const cli_spec *spec, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "flashllm-pack %s: ", spec->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: flashllm-pack %s %s (see --help)\n", spec->cmd, spec->usage);
	return 2;
}

static int set_value(const cli_spec *spec, const cli_opt *o, const char *val)
{
	char *end;
	errno = 0;
	switch (o->kind) {
	case CLI_FLAG:
		*(int *)o->dest = 1;
		return 0;
	case CLI_INT: {
		long v = strtol(val, &end, 10);
		if (errno || end == val || *end || v < -2147483647L || v > 2147483647L)
			return usage_error(spec, "--%s expects an integer, got '%s'", o->name, val);
		*(int *)o->dest = (int)v;
		return 0;
	}
	case CLI_DOUBLE: {
		double v = strtod(val, &end);
		if (errno || end == val || *end)
			return usage_error(spec, "--%s expects a number, got '%s'", o->name, val);
		*(double *)o->dest = v;
		return 0;
	}
	case CLI_STRING:
		*(const char **)o->dest = val;
		return 0;
	case CLI_LIST: {
		cli_strlist *l = o->dest;
		const char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
		if (!nv)
			return usage_error(spec, "out of memory");
		l->v = nv;
		l->v[l->n++] = val;
		return 0;
	}
	}
	return 2;
}

int cli_parse(const cli_spec *spec, int argc, char **argv, char ***pos, int *npos)
{
	char **p = calloc((size_t)argc + 1, sizeof(*p));
	int n = 0, rc = 0, only_pos = 0;
	help_flag = quiet_flag = verbose_flag = 0;
	if (!p)
		return usage_error(spec, "out of memory");
	for (int i = 1; i < argc && !rc; i++) {
		const char *a = argv[i];
		if (only_pos || a[0] != '-' || !a[1]) {
			p[n++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			only_pos = 1;
			continue;
		}
		const cli_opt *o;
		const char *val = NULL;
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			o = find_opt(spec, a + 2, len, 0);
			if (!o) {
				rc = usage_error(spec, "unknown option '%.*s'", (int)len + 2, a);
				break;
			}
			if (eq) {
				if (o->kind == CLI_FLAG) {
					rc = usage_error(spec, "option '--%s' takes no value", o->name);
					break;
				}
				val = eq + 1;
			}
		} else {
			o = find_opt(spec, NULL, 0, a[1]);
			if (!o || a[2]) {
				rc = usage_error(spec, "unknown option '%s'", a);
				break;
			}
		}
		if (o->kind != CLI_FLAG && !val) {
			if (i + 1 >= argc) {
				rc = usage_error(spec, "option '--%s' needs a value (%s)", o->name, o->arg ? o->arg : "value");
				break;
			}
			val = argv[++i];
		}
		rc = set_value(spec, o, val);
	}
	if (!rc && help_flag) {
		cli_help(spec, stdout);
		rc = -1;
	}
	if (!rc && (n < spec->min_pos || n > spec->max_pos)) {
		if (spec->min_pos == spec->max_pos)
			rc = usage_error(spec, "expected %d argument%s, got %d", spec->min_pos, spec->min_pos == 1 ? "" : "s", n);
		else
			rc = usage_error(spec, "expected %d to %d arguments, got %d", spec->min_pos, spec->max_pos, n);
	}
	cli_quiet = quiet_flag;
	cli_verbose = verbose_flag;
	if (rc) {
		free(p);
		*pos = NULL;
		*npos = 0;
		return rc;
	}
	*pos = p;
	*npos = n;
	return 0;
}

int cli_fail(const char *cmd, int rc)
{
	fprintf(stderr, "flashllm-pack %s: error: %s\n", cmd, fpk_error_msg());
	return fpk_exit_code(rc);
}

void cli_warn(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "flashllm-pack %s: warning: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_info(const char *fmt, ...)
{
	va_list ap;
	if (cli_quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

void cli_progress(void *ud, const char *what, uint64_t done, uint64_t total)
{
	static double last;
	(void)ud;
	if (cli_quiet || !isatty(2))
		return;
	double now = fpk_now_s();
	if (done < total && now - last < 0.1)
		return;
	last = now;
	int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
	int bar = pct * 30 / 100;
	fprintf(stderr, "\r%-24.24s [%.*s%*s] %3d%%", what, bar, "==============================", 30 - bar, "", pct);
	if (done >= total)
		fputs("\r\033[K", stderr);
	fflush(stderr);
}

const char *cli_bytes(uint64_t n, char *buf, size_t len)
{
	const char *u[] = {"B", "KB", "MB", "GB", "TB"};
	double v = (double)n;
	int i = 0;
	while (v >= 1000 && i < 4) {
		v /= 1000;
		i++;
	}
	snprintf(buf, len, i ? "%.2f %s" : "%.0f %s", v, u[i]);
	return buf;
}

int cli_int_list(const char *s, int *out, int max)
{
	int n = 0;
	while (*s) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s || n >= max || v <= 0 || v > 1 << 20)
			return -1;
		out[n++] = (int)v;
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	return n;
}

int cli_write_text(const char *path, const char *text)
{
	if (!strcmp(path, "-")) {
		fputs(text, stdout);
		return 0;
	}
	return fpk_write_file_atomic(path, text, strlen(text));
}
