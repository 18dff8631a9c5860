/* test_channels.c: the channel-config reader: a round trip, and one corruption per rule C1-C9 (the byte offset poked
 * is printed on failure). Run: ctest -R test_channels. */
#include "channels.h"
#include "fpk_test.h"

static const fpk_channels_expect model = {2, 4, 2, 4}; /* layers, heads, kv heads, head_dim */

static char *valid_json(void)
{
	fpk_channels c = {2, 4, 2, 4, 7, {NULL, NULL, NULL}};
	for (int m = 0; m < FPK_CH_MODES; m++) {
		int h = m == FPK_CH_K ? 2 : 4;
		c.rows[m] = malloc(sizeof(int) * 2 * (size_t)h * 4);
		for (int i = 0; i < 2 * h; i++)
			for (int j = 0; j < 4; j++)
				c.rows[m][i * 4 + j] = (j + i + m) % 4; /* rotations: permutations */
	}
	char *s = NULL;
	CHECK_OK(fpk_channels_to_json(&c, &s, NULL));
	fpk_channels_release(&c);
	return s;
}

/* replace the first occurrence of `find` (after `after`, when given) and expect the rule's message */
static void expect_rule(const char *find, const char *repl, const char *after, const fpk_channels_expect *e,
	const char *rule)
{
	char *s = valid_json(), out[8192];
	const char *base = after ? strstr(s, after) : s;
	const char *p = base ? strstr(base, find) : NULL;
	CHECK(p != NULL);
	if (!p) {
		free(s);
		return;
	}
	size_t off = (size_t)(p - s);
	snprintf(out, sizeof(out), "%.*s%s%s", (int)off, s, repl, p + strlen(find));
	fpk_channels c;
	int rc = fpk_channels_parse(&c, out, strlen(out), "t.json", e);
	if (rc != FPK_EFORMAT || !strstr(fpk_error_msg(), rule)) {
		fprintf(stderr, "  poke at byte %zu ('%s' -> '%s'): expected %s, got %d: %s\n", off, find, repl, rule, rc,
			fpk_error_msg());
		fpk_test_failures++;
	}
	free(s);
}

static void channels_should_round_trip(void)
{
	char *s = valid_json();
	fpk_channels c, d;
	CHECK_OK(fpk_channels_parse(&c, s, strlen(s), "t.json", &model));
	CHECK_OK(fpk_channels_parse(&d, s, strlen(s), "t.json", NULL)); /* inferred */
	CHECK(c.modes == 7 && d.n_layers == 2 && d.n_heads == 4 && d.n_kv_heads == 2 && d.head_dim == 4);
	const int *r = fpk_channels_row(&c, FPK_CH_K, 1, 1);
	CHECK(r && r[0] == (0 + 3 + 1) % 4);
	CHECK(fpk_channels_row(&c, FPK_CH_K, 1, 2) == NULL);
	free(s);
	fpk_channels_release(&c);
	fpk_channels_release(&d);
}

static void channels_should_reject_each_rule(void)
{
	fpk_channels c;
	CHECK_ERR(fpk_channels_parse(&c, "[]", 2, "t.json", NULL), FPK_EFORMAT, "rule C1");
	CHECK_ERR(fpk_channels_parse(&c, "{}", 2, "t.json", NULL), FPK_EFORMAT, "rule C1");
	CHECK_ERR(fpk_channels_parse(&c, "{\"a\":", 5, "t.json", NULL), FPK_EFORMAT, "rule C1");
	expect_rule("model.layers.0.self_attn.q_proj", "model.layers.00.self_attn.q_proj", NULL, &model, "rule C2");
	expect_rule("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", NULL, &model, "rule C2");
	expect_rule("model.layers.1.self_attn.q_proj", "model.layers.2.self_attn.q_proj", NULL, &model, "rule C3");
	expect_rule(", [1, 2, 3, 0]]", "]", "q_proj", &model, "rule C4");             /* 3 query-head rows */
	expect_rule("\"model.layers.0.self_attn.k_proj\": [[", "\"model.layers.0.self_attn.k_proj\": [[1, 2, 3, 0], [", NULL,
		&model, "rule C4"); /* 3 kv rows */
	expect_rule("[0, 1, 2, 3]", "[0, 1, 2]", NULL, &model, "rule C5");             /* short row */
	expect_rule("[0, 1, 2, 3]", "[0, 1.5, 2, 3]", NULL, &model, "rule C5");        /* not an integer */
	expect_rule("[0, 1, 2, 3]", "[0, 1, 1, 3]", NULL, &model, "rule C6");          /* repeat */
	expect_rule("[0, 1, 2, 3]", "[0, 1, 4, 3]", NULL, &model, "rule C6");          /* out of range */
	expect_rule("[0, 1, 2, 3]", "[0, -1, 2, 3]", NULL, &model, "rule C6");         /* negative */
	expect_rule("\"model.layers.1.self_attn.q_proj\"", "\"model.layers.0.self_attn.q_proj\"", NULL, &model, "rule C7");
	expect_rule("\"model.layers.1.self_attn.qk_proj\"", "\"model.layers.0.self_attn.qk_proj\"", NULL, NULL,
		"rule C7");
	const char *missing = "{\"model.layers.0.self_attn.k_proj\": [[0,1],[1,0]],"
			      " \"model.layers.2.self_attn.k_proj\": [[0,1],[1,0]]}";
	CHECK_ERR(fpk_channels_parse(&c, missing, strlen(missing), "t.json", NULL), FPK_EFORMAT,
		"rule C8: key 'model.layers.1.self_attn.k_proj' is missing");
	const char *gqa = "{\"model.layers.0.self_attn.q_proj\": [[0,1],[1,0],[0,1]],"
			  " \"model.layers.0.self_attn.k_proj\": [[0,1],[1,0]]}";
	CHECK_ERR(fpk_channels_parse(&c, gqa, strlen(gqa), "t.json", NULL), FPK_EFORMAT, "rule C9");
	/* model head_dim 8 against rows of 4 */
	fpk_channels_expect wide = {2, 4, 2, 8};
	char *s = valid_json();
	CHECK_ERR(fpk_channels_parse(&c, s, strlen(s), "t.json", &wide), FPK_EFORMAT, "array of 8 channel indices");
	free(s);
}

int main(void)
{
	RUN(channels_should_round_trip);
	RUN(channels_should_reject_each_rule);
	TEST_EXIT();
}
