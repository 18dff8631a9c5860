/* test_select.c: the default target rule and include/exclude globs. */
#include "fpk_test.h"
#include "select.h"

static void default_rule_should_take_linear_weights_only(void)
{
	const char *yes[] = {"model.layers.0.self_attn.q_proj.weight", "model.layers.31.mlp.down_proj.weight",
			     "model.decoder.layers.3.fc1.weight", "model.decoder.layers.3.self_attn.out_proj.weight",
			     "transformer.h.0.attn.c_attn.weight", "model.layers.2.self_attn.qkv_proj.weight"};
	const char *no[] = {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
			    "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.bias",
			    "model.decoder.embed_positions.weight", "model.layers.0.self_attn.rotary_emb.inv_freq"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		CHECK(fpk_select_default(yes[i], 2));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(!fpk_select_default(no[i], 2));
	CHECK(!fpk_select_default("model.layers.0.self_attn.q_proj.weight", 1));
}

static void globs_should_replace_the_default_and_exclude(void)
{
	const char *inc[] = {"*.mlp.*"}, *exc[] = {"*.layers.0.*"};
	fpk_select s = {inc, 1, exc, 1};
	CHECK(fpk_select_match(&s, "model.layers.1.mlp.up_proj.weight", 2));
	CHECK(!fpk_select_match(&s, "model.layers.0.mlp.up_proj.weight", 2));
	CHECK(!fpk_select_match(&s, "model.layers.1.self_attn.q_proj.weight", 2));
	fpk_select e = {NULL, 0, exc, 1};
	CHECK(fpk_select_match(&e, "model.layers.1.self_attn.q_proj.weight", 2));
	CHECK(!fpk_select_match(&e, "model.layers.0.self_attn.q_proj.weight", 2));
}

int main(void)
{
	RUN(default_rule_should_take_linear_weights_only);
	RUN(globs_should_replace_the_default_and_exclude);
	TEST_EXIT();
}
