/* cmd_prune.c: `flashllm-pack prune IN -o OUT --sparsity S`: exact magnitude pruning (docs/prune.md).
 * Tested by tests/cli/prune_*.sh. */
#include "cli.h"
#include "prune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir, *scope_s, *pattern_s;
static double sparsity;
static int dry_run, threads, json_out, force, allow_nonfinite, no_sync;
static cli_strlist includes, excludes, rules_s;

static const cli_opt opts[] = {
	{"out", 'o', CLI_STRING, &out_dir, "OUT", "output directory (created; must not exist unless --force)"},
	{"sparsity", 0, CLI_DOUBLE, &sparsity, "S", "fraction of zeros in each targeted tensor, 0 <= S < 1"},
	{"scope", 0, CLI_STRING, &scope_s, "SCOPE", "tensor (default), row (same count per output row) or global"},
	{"pattern", 0, CLI_STRING, &pattern_s, "N:M", "keep N of every M weights along the input dim (e.g. 2:4)"},
	{"include", 0, CLI_LIST, &includes, "GLOB", "prune the tensors matching GLOB instead of the default targets"},
	{"exclude", 0, CLI_LIST, &excludes, "GLOB", "leave the tensors matching GLOB untouched"},
	{"sparsity-for", 0, CLI_LIST, &rules_s, "GLOB=S", "sparsity S for targeted tensors matching GLOB (last wins)"},
	{"dry-run", 0, CLI_FLAG, &dry_run, NULL, "compute and print the report, write nothing"},
	{"threads", 0, CLI_INT, &threads, "N", "worker threads (default: all cores)"},
	{"json", 0, CLI_FLAG, &json_out, NULL, "print the report as JSON on stdout"},
	{"force", 0, CLI_FLAG, &force, NULL, "replace an existing OUT"},
	{"allow-nonfinite", 0, CLI_FLAG, &allow_nonfinite, NULL, "accept NaN/Inf in targeted tensors (ranked largest)"},
	{"no-sync", 0, CLI_FLAG, &no_sync, NULL, "do not fsync outputs (still renamed only when complete; like cp)"},
	{0},
};

static const cli_spec spec = {
	"prune", "IN -o OUT --sparsity S [options]",
	"IN is a .safetensors file or a model directory (single file or sharded). Every targeted tensor ends with "
	"exactly round(S*n) zeros (per row with --scope row; over all targeted weights with --scope global), counting "
	"zeros already there; the smallest magnitudes go first and ties go to the lower index. Kept weights, other "
	"tensors, names, order, shards and metadata are unchanged; other files are copied; OUT/prune_report.json "
	"records the result. Default targets: the 2-D linear weights of the transformer blocks. Exit codes: 2 usage, "
	"3 bad input data, 4 I/O.",
	opts, 1, 1,
};

static char *command_line(int argc, char **argv)
{
	size_t len = strlen("flashllm-pack") + 1;
	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) * 4 + 3;
	char *s = malloc(len), *p = s;
	if (!s)
		return NULL;
	p += sprintf(p, "flashllm-pack");
	for (int i = 0; i < argc; i++) {
		int quote = !*argv[i] || strpbrk(argv[i], " \t'\"*?[]$\\") != NULL;
		*p++ = ' ';
		if (!quote) {
			p += sprintf(p, "%s", argv[i]);
			continue;
		}
		*p++ = '\'';
		for (const char *c = argv[i]; *c; c++) {
			if (*c == '\'')
				p += sprintf(p, "'\\''");
			else
				*p++ = *c;
		}
		*p++ = '\'';
	}
	*p = 0;
	return s;
}

static void print_table(const fpk_prune_opts *o, const fpk_prune_report *rep)
{
	size_t w = 4;
	for (size_t i = 0; i < rep->n; i++)
		if (rep->tensors[i].targeted && strlen(rep->tensors[i].name) > w)
			w = strlen(rep->tensors[i].name);
	printf("%-*s  %-5s  %12s  %12s  %12s  %8s  %12s\n", (int)w, "name", "dtype", "elements", "zeros_before",
	       "zeros_after", "sparsity", "threshold");
	for (size_t i = 0; i < rep->n; i++) {
		const fpk_prune_tensor *pt = &rep->tensors[i];
		if (!pt->targeted)
			continue;
		char thr[32];
		if (pt->has_threshold)
			snprintf(thr, sizeof(thr), "%.6g", pt->threshold);
		else
			snprintf(thr, sizeof(thr), "-");
		printf("%-*s  %-5s  %12llu  %12llu  %12llu  %7.3f%%  %12s%s%s\n", (int)w, pt->name,
		       fpk_dtypes[pt->t->dtype].name, (unsigned long long)pt->elements, (unsigned long long)pt->zeros_before,
		       (unsigned long long)pt->zeros_after,
		       pt->elements ? 100.0 * (double)pt->zeros_after / (double)pt->elements : 0.0, thr,
		       pt->tied_to ? "  tied to " : "", pt->tied_to ? pt->tied_to : "");
	}
	char b1[32];
	printf("total: %zu of %zu tensors pruned, %llu targeted weights, zeros %llu -> %llu (%.3f%%), %s in %.2f s%s%s\n",
	       rep->n_targeted, rep->n, (unsigned long long)rep->targeted_elements,
	       (unsigned long long)rep->zeros_before, (unsigned long long)rep->zeros_after,
	       rep->targeted_elements ? 100.0 * (double)rep->zeros_after / (double)rep->targeted_elements : 0.0,
	       cli_bytes(rep->bytes_in, b1, sizeof(b1)), rep->seconds, o->dry_run ? " (dry run: nothing written)" : "",
	       o->dry_run ? "" : "");
	if (!o->dry_run)
		printf("wrote %s (report: %s/prune_report.json)\n", o->out, o->out);
}

int cmd_prune(int argc, char **argv)
{
	char **pos = NULL, *cmdline = NULL;
	int npos, rc, ex = 0;
	fpk_prune_rule *rules = NULL;
	fpk_prune_report rep;
	memset(&rep, 0, sizeof(rep));
	out_dir = scope_s = pattern_s = NULL;
	sparsity = -INFINITY; /* "not given" */
	dry_run = threads = json_out = force = allow_nonfinite = no_sync = 0;
	memset(&includes, 0, sizeof(includes));
	memset(&excludes, 0, sizeof(excludes));
	memset(&rules_s, 0, sizeof(rules_s));
	if ((rc = cli_parse(&spec, argc, argv, &pos, &npos))) {
		ex = rc < 0 ? 0 : rc;
		goto done;
	}
	fpk_prune_opts o = {0};
	o.in = pos[0];
	o.out = out_dir;
	o.dry_run = dry_run;
	o.force = force;
	fpk_io_set_durable(!no_sync);
	o.allow_nonfinite = allow_nonfinite;
	o.threads = threads;
	o.select.include = includes.v;
	o.select.n_include = includes.n;
	o.select.exclude = excludes.v;
	o.select.n_exclude = excludes.n;
	if (threads < 0) {
		fpk_error_set(FPK_EUSAGE, "--threads %d: expected a positive count", threads);
		ex = cli_fail("prune", FPK_EUSAGE);
		goto done;
	}
	if (scope_s) {
		int found = 0;
		for (int s = 0; s < 3; s++)
			if (!strcmp(scope_s, fpk_prune_scope_names[s])) {
				o.scope = (fpk_prune_scope)s;
				found = 1;
			}
		if (!found) {
			fpk_error_set(FPK_EUSAGE, "unknown scope '%s' (expected tensor, row or global)", scope_s);
			ex = cli_fail("prune", FPK_EUSAGE);
			goto done;
		}
	}
	if (pattern_s) {
		char *e1, *e2;
		long n = strtol(pattern_s, &e1, 10), m = *e1 == ':' ? strtol(e1 + 1, &e2, 10) : 0;
		if (e1 == pattern_s || *e1 != ':' || e2 == e1 + 1 || *e2 || n < 1 || m < 2 || n >= m || m > 64) {
			fpk_error_set(FPK_EUSAGE, "unknown pattern '%s' (expected N:M with 1 <= N < M <= 64, e.g. 2:4)", pattern_s);
			ex = cli_fail("prune", FPK_EUSAGE);
			goto done;
		}
		o.pattern_n = (int)n;
		o.pattern_m = (int)m;
		if (sparsity != -INFINITY && fabs(sparsity - (double)(m - n) / (double)m) > 1e-9) {
			fpk_error_set(FPK_EUSAGE, "--sparsity %g contradicts --pattern %s (which means sparsity %g)", sparsity,
				      pattern_s, (double)(m - n) / (double)m);
			ex = cli_fail("prune", FPK_EUSAGE);
			goto done;
		}
		o.sparsity = (double)(m - n) / (double)m;
	} else {
		if (sparsity == -INFINITY) {
			fpk_error_set(FPK_EUSAGE, "--sparsity S is required (or --pattern N:M)");
			ex = cli_fail("prune", FPK_EUSAGE);
			goto done;
		}
		o.sparsity = sparsity;
	}
	if (rules_s.n) {
		rules = calloc(rules_s.n, sizeof(*rules));
		if (!rules) {
			ex = cli_fail("prune", fpk_error_set(FPK_EIO, "out of memory"));
			goto done;
		}
		for (size_t i = 0; i < rules_s.n; i++) {
			const char *eq = strrchr(rules_s.v[i], '=');
			char *end;
			double v = eq ? strtod(eq + 1, &end) : 0;
			if (!eq || eq == rules_s.v[i] || end == eq + 1 || *end) {
				fpk_error_set(FPK_EUSAGE, "--sparsity-for '%s': expected GLOB=S", rules_s.v[i]);
				ex = cli_fail("prune", FPK_EUSAGE);
				goto done;
			}
			char *g = strndup(rules_s.v[i], (size_t)(eq - rules_s.v[i]));
			if (!g) {
				ex = cli_fail("prune", fpk_error_set(FPK_EIO, "out of memory"));
				goto done;
			}
			rules[i].glob = g;
			rules[i].sparsity = v;
		}
		o.rules = rules;
		o.n_rules = rules_s.n;
	}
	if (!dry_run && !out_dir) {
		fpk_error_set(FPK_EUSAGE, "-o OUT is required (or --dry-run)");
		ex = cli_fail("prune", FPK_EUSAGE);
		goto done;
	}
	cmdline = command_line(argc, argv);
	o.command_line = cmdline;
	o.progress = cli_progress;
	if ((rc = fpk_prune_run(&o, &rep))) {
		ex = cli_fail("prune", rc);
		goto done;
	}
	if (json_out) {
		cJSON *j = fpk_prune_report_json(&o, &rep);
		char *s = j ? cJSON_Print(j) : NULL;
		if (s)
			printf("%s\n", s);
		free(s);
		cJSON_Delete(j);
	} else if (!cli_quiet) {
		print_table(&o, &rep);
	}
done:
	fpk_prune_report_release(&rep);
	for (size_t i = 0; rules && i < rules_s.n; i++)
		free((char *)rules[i].glob);
	free(rules);
	free(includes.v);
	free(excludes.v);
	free(rules_s.v);
	free(cmdline);
	free(pos);
	return ex;
}
