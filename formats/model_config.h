/* model_config.h: a model directory's config.json as a model description (Llama, Mistral, Qwen2, OPT).
 * Tested by tests/unit/test_model_config.c. */
#ifndef FPK_MODEL_CONFIG_H
#define FPK_MODEL_CONFIG_H

#include "fpk_common.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fpk_arch { FPK_ARCH_LLAMA, FPK_ARCH_MISTRAL, FPK_ARCH_QWEN2, FPK_ARCH_OPT, FPK_ARCH_COUNT } fpk_arch;

typedef struct fpk_arch_info {
	const char *model_type;   /* config.json "model_type" */
	const char *architecture; /* "architectures"[0] */
} fpk_arch_info;
extern const fpk_arch_info fpk_archs[FPK_ARCH_COUNT];

typedef struct fpk_model_config {
	fpk_arch arch;
	int n_layers;
	int hidden;
	int n_heads;
	int n_kv_heads;
	int head_dim;       /* explicit "head_dim" or hidden / n_heads */
	int intermediate;   /* intermediate_size (OPT: ffn_dim) */
	int vocab;
	int max_pos;        /* max_position_embeddings */
	double rope_theta;
	double norm_eps;    /* rms_norm_eps (OPT: 1e-5 LayerNorm) */
	int tied_embeddings;
	int attention_bias; /* q/k/v biases (Qwen2: always; OPT: enable_bias) */
	int mlp_bias;
	/* rope_scaling of rope_type "llama3" (factor 0 when absent) */
	double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
	int rope_original_max_pos;
	/* OPT */
	int do_layer_norm_before;
	int word_embed_proj_dim;
	int bos_id, eos_id;
	char hidden_act[32];
	cJSON *json; /* the whole config.json, unknown fields kept (owned) */
} fpk_model_config;

/* path: a model directory or a config.json file. Caller releases with fpk_model_config_release. */
int fpk_model_config_load(fpk_model_config *cfg, const char *path);
int fpk_model_config_parse(fpk_model_config *cfg, const char *json_text, const char *name);
void fpk_model_config_release(fpk_model_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
