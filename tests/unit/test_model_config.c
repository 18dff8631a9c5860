/* test_model_config.c: config.json parsing for each family, derived fields and each error message. */
#include "fpk_test.h"
#include "model_config.h"

static void config_should_describe_the_real_stories260K(void)
{
	fpk_model_config c;
	CHECK_OK(fpk_model_config_load(&c, fpk_test_shared("testdata/stories260K")));
	CHECK(c.arch == FPK_ARCH_LLAMA);
	CHECK(c.n_layers == 5 && c.hidden == 64 && c.n_heads == 8 && c.n_kv_heads == 4 && c.head_dim == 8);
	CHECK(c.intermediate == 172 && c.vocab == 512 && c.max_pos == 512 && c.tied_embeddings == 1);
	CHECK(c.rope_theta == 10000.0 && c.norm_eps == 1e-5 && c.rope_factor == 0);
	CHECK(c.json && cJSON_GetObjectItem(c.json, "initializer_range")); /* unknown fields kept */
	fpk_model_config_release(&c);
}

static void config_should_parse_opt_qwen2_and_llama3(void)
{
	fpk_model_config c;
	CHECK_OK(fpk_model_config_parse(&c, "{\"model_type\":\"opt\",\"hidden_size\":768,\"num_hidden_layers\":12,"
					    "\"num_attention_heads\":12,\"ffn_dim\":3072,\"vocab_size\":50272}", "opt"));
	CHECK(c.arch == FPK_ARCH_OPT && c.intermediate == 3072 && c.head_dim == 64 && c.n_kv_heads == 12);
	CHECK(c.attention_bias == 1 && c.tied_embeddings == 1 && !strcmp(c.hidden_act, "relu"));
	fpk_model_config_release(&c);
	CHECK_OK(fpk_model_config_parse(&c, "{\"model_type\":\"qwen2\",\"hidden_size\":896,\"num_hidden_layers\":24,"
					    "\"num_attention_heads\":14,\"num_key_value_heads\":2,\"intermediate_size\":4864,"
					    "\"vocab_size\":151936}", "q"));
	CHECK(c.arch == FPK_ARCH_QWEN2 && c.attention_bias == 1 && c.head_dim == 64 && c.n_kv_heads == 2);
	fpk_model_config_release(&c);
	CHECK_OK(fpk_model_config_parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":4096,\"num_hidden_layers\":32,"
					    "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"intermediate_size\":14336,"
					    "\"vocab_size\":128256,\"head_dim\":128,\"rope_scaling\":{\"factor\":8.0,"
					    "\"rope_type\":\"llama3\",\"original_max_position_embeddings\":8192}}", "l3"));
	CHECK(c.rope_factor == 8.0 && c.rope_original_max_pos == 8192 && c.rope_high_freq_factor == 4.0);
	fpk_model_config_release(&c);
}

static void config_should_reject_bad_fields_by_name(void)
{
	fpk_model_config c;
	CHECK_ERR(fpk_model_config_parse(&c, "{\"model_type\":\"gpt2\"}", "x"), FPK_EFORMAT, "unsupported model_type 'gpt2'");
	CHECK_ERR(fpk_model_config_parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64}", "x"), FPK_EFORMAT,
		  "missing field \"num_hidden_layers\"");
	CHECK_ERR(fpk_model_config_parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
					     "\"num_attention_heads\":8,\"num_key_value_heads\":3,\"intermediate_size\":8,"
					     "\"vocab_size\":4}", "x"), FPK_EFORMAT, "not a multiple of num_key_value_heads");
	CHECK_ERR(fpk_model_config_parse(&c, "{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"hidden_size\":\"64\"}", "x"), FPK_EFORMAT,
		  "\"hidden_size\" must be a non-negative integer");
	CHECK_ERR(fpk_model_config_parse(&c, "[]", "x"), FPK_EFORMAT, "not a JSON object");
	CHECK_ERR(fpk_model_config_parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
					     "\"num_attention_heads\":8,\"intermediate_size\":8,\"vocab_size\":4,"
					     "\"rope_scaling\":{\"type\":\"yarn\"}}", "x"), FPK_EFORMAT, "rope_scaling type 'yarn'");
}

int main(void)
{
	RUN(config_should_describe_the_real_stories260K);
	RUN(config_should_parse_opt_qwen2_and_llama3);
	RUN(config_should_reject_bad_fields_by_name);
	TEST_EXIT();
}
