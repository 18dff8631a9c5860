/* model_config.c: config.json -> fpk_model_config, with a clear error naming the field that is wrong.
 * Tested by tests/unit/test_model_config.c. */
#include "model_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const fpk_arch_info fpk_archs[FPK_ARCH_COUNT] = {
	[FPK_ARCH_LLAMA] = {"llama", "LlamaForCausalLM"},
	[FPK_ARCH_MISTRAL] = {"mistral", "MistralForCausalLM"},
	[FPK_ARCH_QWEN2] = {"qwen2", "Qwen2ForCausalLM"},
	[FPK_ARCH_OPT] = {"opt", "OPTForCausalLM"},
};

static int get_int(const cJSON *o, const char *key, int required, int dflt, int *out, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v || cJSON_IsNull(v)) {
		if (required)
			return fpk_error_set(FPK_EFORMAT, "'%s': missing field \"%s\"", name, key);
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1e9) ||
	    v->valuedouble != (double)(int)v->valuedouble)
		return fpk_error_set(FPK_EFORMAT, "'%s': field \"%s\" must be a non-negative integer", name, key);
	*out = (int)v->valuedouble;
	return 0;
}

static double get_num(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static int get_bool(const cJSON *o, const char *key, int dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

int fpk_model_config_parse(fpk_model_config *cfg, const char *text, const char *name)
{
	int rc;
	memset(cfg, 0, sizeof(*cfg));
	cJSON *j = cJSON_Parse(text);
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return fpk_error_set(FPK_EFORMAT, "'%s': not a JSON object", name);
	}
	cfg->json = j;
	const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
	if (!cJSON_IsString(mt)) {
		rc = fpk_error_set(FPK_EFORMAT, "'%s': missing field \"model_type\"", name);
		goto fail;
	}
	int found = 0;
	for (int a = 0; a < FPK_ARCH_COUNT; a++) {
		if (!strcmp(mt->valuestring, fpk_archs[a].model_type)) {
			cfg->arch = (fpk_arch)a;
			found = 1;
		}
	}
	if (!found) {
		rc = fpk_error_set(FPK_EFORMAT, "'%s': unsupported model_type '%s' (supported: llama, mistral, qwen2, opt)",
				   name, mt->valuestring);
		goto fail;
	}
	int opt = cfg->arch == FPK_ARCH_OPT;
	if ((rc = get_int(j, "num_hidden_layers", 1, 0, &cfg->n_layers, name)) ||
	    (rc = get_int(j, "hidden_size", 1, 0, &cfg->hidden, name)) ||
	    (rc = get_int(j, "num_attention_heads", 1, 0, &cfg->n_heads, name)) ||
	    (rc = get_int(j, "num_key_value_heads", 0, cfg->n_heads, &cfg->n_kv_heads, name)) ||
	    (rc = get_int(j, "vocab_size", 1, 0, &cfg->vocab, name)) ||
	    (rc = get_int(j, "max_position_embeddings", 0, 2048, &cfg->max_pos, name)) ||
	    (rc = get_int(j, opt ? "ffn_dim" : "intermediate_size", 1, 0, &cfg->intermediate, name)) ||
	    (rc = get_int(j, "bos_token_id", 0, opt ? 2 : 1, &cfg->bos_id, name)) ||
	    (rc = get_int(j, "eos_token_id", 0, 2, &cfg->eos_id, name)))
		goto fail;
	if (cfg->n_layers < 1 || cfg->hidden < 1 || cfg->n_heads < 1 || cfg->vocab < 1) {
		rc = fpk_error_set(FPK_EFORMAT, "'%s': num_hidden_layers, hidden_size, num_attention_heads and vocab_size "
						"must be positive", name);
		goto fail;
	}
	int hd_default = cfg->hidden / cfg->n_heads;
	if ((rc = get_int(j, "head_dim", 0, hd_default, &cfg->head_dim, name)))
		goto fail;
	if (cfg->head_dim == 0 && hd_default * cfg->n_heads == cfg->hidden)
		cfg->head_dim = hd_default;
	if (cfg->head_dim < 1 || (!cJSON_GetObjectItemCaseSensitive(j, "head_dim") && hd_default * cfg->n_heads != cfg->hidden)) {
		rc = fpk_error_set(FPK_EFORMAT, "'%s': hidden_size %d is not a multiple of num_attention_heads %d and no "
						"head_dim is given", name, cfg->hidden, cfg->n_heads);
		goto fail;
	}
	if (cfg->n_kv_heads < 1 || cfg->n_heads % cfg->n_kv_heads) {
		rc = fpk_error_set(FPK_EFORMAT, "'%s': num_attention_heads %d is not a multiple of num_key_value_heads %d",
				   name, cfg->n_heads, cfg->n_kv_heads);
		goto fail;
	}
	cfg->rope_theta = get_num(j, "rope_theta", 10000.0);
	cfg->norm_eps = get_num(j, opt ? "layer_norm_eps" : "rms_norm_eps", opt ? 1e-5 : 1e-6);
	cfg->tied_embeddings = get_bool(j, "tie_word_embeddings", opt ? 1 : 0);
	cfg->attention_bias = cfg->arch == FPK_ARCH_QWEN2 ? 1 : get_bool(j, opt ? "enable_bias" : "attention_bias", opt);
	cfg->mlp_bias = get_bool(j, opt ? "enable_bias" : "mlp_bias", opt);
	cfg->do_layer_norm_before = get_bool(j, "do_layer_norm_before", 1);
	if ((rc = get_int(j, "word_embed_proj_dim", 0, cfg->hidden, &cfg->word_embed_proj_dim, name)))
		goto fail;
	const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, opt ? "activation_function" : "hidden_act");
	snprintf(cfg->hidden_act, sizeof(cfg->hidden_act), "%s", cJSON_IsString(act) ? act->valuestring : (opt ? "relu" : "silu"));
	const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
	if (cJSON_IsObject(rs)) {
		const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
		if (!rt)
			rt = cJSON_GetObjectItemCaseSensitive(rs, "type");
		if (!cJSON_IsString(rt) || strcmp(rt->valuestring, "llama3")) {
			rc = fpk_error_set(FPK_EFORMAT, "'%s': rope_scaling type '%s' is not supported (supported: llama3)", name,
					   cJSON_IsString(rt) ? rt->valuestring : "?");
			goto fail;
		}
		cfg->rope_factor = get_num(rs, "factor", 8.0);
		cfg->rope_low_freq_factor = get_num(rs, "low_freq_factor", 1.0);
		cfg->rope_high_freq_factor = get_num(rs, "high_freq_factor", 4.0);
		double omp = get_num(rs, "original_max_position_embeddings", 8192);
		if (!(omp >= 1 && omp <= 1e9) || !(cfg->rope_factor > 0)) {
			rc = fpk_error_set(FPK_EFORMAT, "'%s': rope_scaling needs factor > 0 and original_max_position_embeddings "
							"in [1, 1e9]", name);
			goto fail;
		}
		cfg->rope_original_max_pos = (int)omp;
	}
	return 0;
fail:
	cJSON_Delete(cfg->json);
	cfg->json = NULL;
	return rc;
}

int fpk_model_config_load(fpk_model_config *cfg, const char *path)
{
	char *p = fpk_is_dir(path) ? fpk_path_join(path, "config.json") : strdup(path);
	char *text = NULL;
	int rc;
	memset(cfg, 0, sizeof(*cfg));
	if (!p)
		return fpk_error_set(FPK_EIO, "out of memory");
	rc = fpk_read_file(p, &text, NULL);
	if (!rc)
		rc = fpk_model_config_parse(cfg, text, p);
	free(text);
	free(p);
	return rc;
}

void fpk_model_config_release(fpk_model_config *cfg)
{
	cJSON_Delete(cfg->json);
	cfg->json = NULL;
}
