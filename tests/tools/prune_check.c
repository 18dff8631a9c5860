/* prune_check.c: independent checker of a `flashllm-pack prune` output against its input, driven by
 * OUT/prune_report.json. Exits 0 when every rule of docs/prune.md holds, 1 (with messages) otherwise.
 * Run: prune_check IN OUT   (used by tests/cli/prune_*.sh) */
#include "fpk_common.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define FAIL(...)                                                                                            \
	do {                                                                                                     \
		fprintf(stderr, "prune_check: " __VA_ARGS__);                                                        \
		fputc('\n', stderr);                                                                                 \
		failures++;                                                                                          \
	} while (0)

static unsigned es(fpk_dtype dt)
{
	return fpk_dtypes[dt].size;
}

/* raw bits of element i (16 or 32 bit) */
static uint32_t bits(const fpk_st_tensor *t, uint64_t i)
{
	if (es(t->dtype) == 2) {
		uint16_t h;
		memcpy(&h, t->data + 2 * i, 2);
		return h;
	}
	uint32_t u;
	memcpy(&u, t->data + 4 * i, 4);
	return u;
}

static double mag(const fpk_st_tensor *t, uint64_t i)
{
	float v = fpk_load_f32(t->data, t->dtype, (size_t)i);
	return isnan(v) ? INFINITY : fabs((double)v);
}

static int is_zero(const fpk_st_tensor *t, uint64_t i)
{
	uint32_t b = bits(t, i);
	return es(t->dtype) == 2 ? (b & 0x7fff) == 0 : (b & 0x7fffffff) == 0;
}

static uint64_t round_count(double s, uint64_t n)
{
	return (uint64_t)floor(s * (double)n + 0.5);
}

/* a scope: a set of (tensor, range) pieces checked together for order; pieces are in index order */
typedef struct order_state {
	double max_pruned; /* largest magnitude that was pruned (became zero) */
	double min_kept;   /* smallest magnitude kept non-zero */
	long long last_pruned_at_max; /* position (in scope order) of the last pruned element with magnitude max */
	long long first_kept_at_min;
	long long pos;
	uint64_t zeros_before, zeros_after, n;
} order_state;

static void order_init(order_state *s)
{
	memset(s, 0, sizeof(*s));
	s->max_pruned = -1;
	s->min_kept = INFINITY;
	s->first_kept_at_min = -1;
	s->last_pruned_at_max = -1;
}

static void order_feed(order_state *s, const fpk_st_tensor *in, const fpk_st_tensor *out, uint64_t lo, uint64_t hi)
{
	for (uint64_t i = lo; i < hi; i++, s->pos++) {
		double m = mag(in, i);
		s->n++;
		s->zeros_before += is_zero(in, i);
		if (is_zero(out, i)) {
			s->zeros_after++;
			if (m > s->max_pruned) {
				s->max_pruned = m;
				s->last_pruned_at_max = s->pos;
			} else if (m == s->max_pruned) {
				s->last_pruned_at_max = s->pos;
			}
		} else {
			if (m < s->min_kept) {
				s->min_kept = m;
				s->first_kept_at_min = s->pos;
			}
		}
	}
}

/* every kept magnitude >= every pruned one; at equal magnitude the pruned ones come first */
static void order_check(const order_state *s, const char *what)
{
	if (s->max_pruned > s->min_kept)
		FAIL("%s: pruned magnitude %g is larger than kept magnitude %g", what, s->max_pruned, s->min_kept);
	if (s->max_pruned == s->min_kept && s->max_pruned > 0 && s->last_pruned_at_max > s->first_kept_at_min)
		FAIL("%s: tie at magnitude %g broken against the index order (pruned at %lld, kept at %lld)", what,
		     s->max_pruned, s->last_pruned_at_max, s->first_kept_at_min);
}

static void expect_count(const order_state *s, double sparsity, const char *what)
{
	uint64_t k = round_count(sparsity, s->n), want = k > s->zeros_before ? k : s->zeros_before;
	if (s->zeros_after != want)
		FAIL("%s: %llu zeros, expected %llu (round(%g * %llu) = %llu, %llu before)", what,
		     (unsigned long long)s->zeros_after, (unsigned long long)want, sparsity, (unsigned long long)s->n,
		     (unsigned long long)k, (unsigned long long)s->zeros_before);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: prune_check IN OUT\n");
		return 2;
	}
	fpk_st_model *in = NULL, *out = NULL;
	char *rp = fpk_path_join(argv[2], "prune_report.json"), *txt = NULL;
	if (fpk_st_model_open(&in, argv[1]) || fpk_st_model_open(&out, argv[2]) || fpk_read_file(rp, &txt, NULL)) {
		fprintf(stderr, "prune_check: %s\n", fpk_error_msg());
		return 1;
	}
	cJSON *rep = cJSON_Parse(txt);
	const cJSON *scope = cJSON_GetObjectItem(rep, "scope"), *tensors = cJSON_GetObjectItem(rep, "tensors");
	const cJSON *pattern = cJSON_GetObjectItem(rep, "pattern"), *sp = cJSON_GetObjectItem(rep, "sparsity");
	if (!cJSON_IsString(scope) || !cJSON_IsArray(tensors)) {
		fprintf(stderr, "prune_check: prune_report.json lacks scope or tensors\n");
		return 1;
	}
	int pn = 0, pm = 0;
	if (cJSON_IsString(pattern))
		sscanf(pattern->valuestring, "%d:%d", &pn, &pm);
	const char *sc = scope->valuestring;
	if (in->n_tensors != out->n_tensors || in->n_shards != out->n_shards)
		FAIL("tensor or shard count differs: %zu/%zu tensors, %zu/%zu shards", in->n_tensors, out->n_tensors,
		     in->n_shards, out->n_shards);
	if (cJSON_GetArraySize(tensors) != (int)in->n_tensors)
		FAIL("report lists %d tensors, input has %zu", cJSON_GetArraySize(tensors), in->n_tensors);
	for (size_t s = 0; s < in->n_shards && s < out->n_shards; s++) {
		/* a single-file input is written as OUT/model.safetensors */
		if (fpk_is_dir(argv[1]) && strcmp(in->shard_names[s], out->shard_names[s]))
			FAIL("shard %zu is '%s', expected '%s'", s, out->shard_names[s], in->shard_names[s]);
		const cJSON *a = in->shards[s]->metadata, *b = out->shards[s]->metadata;
		if ((a == NULL) != (b == NULL) || (a && !cJSON_Compare(a, b, 1)))
			FAIL("shard '%s': __metadata__ differs", in->shard_names[s]);
	}
	order_state global;
	order_init(&global);
	uint64_t g_targeted = 0, g_zb = 0;
	int n_checked = 0;
	for (size_t i = 0; i < in->n_tensors && i < out->n_tensors; i++) {
		const fpk_st_tensor *a = in->tensors[i], *b = out->tensors[i];
		const cJSON *rt = cJSON_GetArrayItem(tensors, (int)i);
		const cJSON *nm = cJSON_GetObjectItem(rt, "name");
		if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes ||
		    memcmp(a->shape, b->shape, sizeof(a->shape[0]) * (size_t)a->ndim) || a->shard != b->shard ||
		    a->begin != b->begin) {
			FAIL("tensor %zu: '%s' does not match '%s' in name, dtype, shape, shard or offset", i, b->name, a->name);
			continue;
		}
		if (!cJSON_IsString(nm) || strcmp(nm->valuestring, a->name)) {
			FAIL("report entry %zu is not '%s'", i, a->name);
			continue;
		}
		int targeted = cJSON_IsTrue(cJSON_GetObjectItem(rt, "targeted"));
		if (!targeted) {
			if (a->nbytes && memcmp(a->data, b->data, a->nbytes))
				FAIL("untouched tensor '%s' is not byte-identical", a->name);
			continue;
		}
		n_checked++;
		if (es(a->dtype) != 2 && es(a->dtype) != 4) {
			FAIL("targeted tensor '%s' has dtype %s", a->name, fpk_dtypes[a->dtype].name);
			continue;
		}
		/* kept values bit-identical; pruned values +0; existing zeros keep their bits */
		for (uint64_t e = 0; e < a->numel; e++) {
			uint32_t x = bits(a, e), y = bits(b, e);
			if (x != y && y != 0) {
				FAIL("tensor '%s' element %llu: 0x%x became 0x%x (expected the same bits or +0)", a->name,
				     (unsigned long long)e, x, y);
				break;
			}
			if (x != y && is_zero(a, e)) {
				FAIL("tensor '%s' element %llu: zero 0x%x was rewritten", a->name, (unsigned long long)e, x);
				break;
			}
		}
		double target = cJSON_GetNumberValue(cJSON_GetObjectItem(rt, "target_sparsity"));
		uint64_t cols = a->ndim ? (uint64_t)a->shape[a->ndim - 1] : 1, rows = cols ? a->numel / cols : 0;
		order_state st;
		order_init(&st);
		char what[512];
		if (pm) {
			for (uint64_t g = 0; g < a->numel; g += (uint64_t)pm) {
				order_state gs;
				order_init(&gs);
				order_feed(&gs, a, b, g, g + (uint64_t)pm);
				snprintf(what, sizeof(what), "'%s' group at %llu", a->name, (unsigned long long)g);
				order_check(&gs, what);
				uint64_t want = (uint64_t)(pm - pn) > gs.zeros_before ? (uint64_t)(pm - pn) : gs.zeros_before;
				if (gs.zeros_after != want)
					FAIL("%s: %llu zeros in a group of %d, expected %llu", what, (unsigned long long)gs.zeros_after,
					     pm, (unsigned long long)want);
				st.zeros_before += gs.zeros_before;
				st.zeros_after += gs.zeros_after;
			}
		} else if (!strcmp(sc, "row")) {
			for (uint64_t r = 0; r < rows; r++) {
				order_state rs;
				order_init(&rs);
				order_feed(&rs, a, b, r * cols, (r + 1) * cols);
				snprintf(what, sizeof(what), "'%s' row %llu", a->name, (unsigned long long)r);
				order_check(&rs, what);
				expect_count(&rs, target, what);
				st.zeros_before += rs.zeros_before;
				st.zeros_after += rs.zeros_after;
			}
		} else if (!strcmp(sc, "tensor")) {
			order_feed(&st, a, b, 0, a->numel);
			snprintf(what, sizeof(what), "'%s'", a->name);
			order_check(&st, what);
			expect_count(&st, target, what);
		} else {
			const cJSON *tied = cJSON_GetObjectItem(rt, "tied_to");
			order_state ts;
			order_init(&ts);
			order_feed(&ts, a, b, 0, a->numel); /* counts for this tensor */
			st = ts;
			if (!cJSON_IsString(tied)) {
				order_feed(&global, a, b, 0, a->numel);
				g_targeted += a->numel;
				g_zb += ts.zeros_before;
			}
		}
		double zb = cJSON_GetNumberValue(cJSON_GetObjectItem(rt, "zeros_before"));
		double za = cJSON_GetNumberValue(cJSON_GetObjectItem(rt, "zeros_after"));
		if (zb != (double)st.zeros_before || za != (double)st.zeros_after)
			FAIL("'%s': report says zeros %g -> %g, counted %llu -> %llu", a->name, zb, za,
			     (unsigned long long)st.zeros_before, (unsigned long long)st.zeros_after);
		const cJSON *tied = cJSON_GetObjectItem(rt, "tied_to");
		if (cJSON_IsString(tied)) {
			const fpk_st_tensor *p = fpk_st_model_find(out, tied->valuestring);
			if (!p || p->nbytes != b->nbytes || memcmp(p->data, b->data, b->nbytes))
				FAIL("'%s' is tied to '%s' but the outputs differ", a->name, tied->valuestring);
		}
	}
	if (!strcmp(sc, "global")) {
		order_check(&global, "global scope");
		double s = cJSON_GetNumberValue(sp);
		global.zeros_before = g_zb;
		expect_count(&global, s, "global scope");
		(void)g_targeted;
	}
	if (!n_checked)
		FAIL("no targeted tensor in the report");
	if (!failures)
		printf("prune_check: ok (%d targeted tensors, scope %s)\n", n_checked, sc);
	cJSON_Delete(rep);
	free(txt);
	free(rp);
	fpk_st_model_close(in);
	fpk_st_model_close(out);
	return failures ? 1 : 0;
}
