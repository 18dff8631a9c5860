/* model.h: our transformer forward pass (Llama/Mistral/Qwen2/OPT), CPU fp32 reference path with a KV cache,
 * block prefill, activation hooks (calibrate, Double Sparsity verify) and perplexity. Tested by tests/unit/test_model.c. */
#ifndef FPK_MODEL_H
#define FPK_MODEL_H

#include "fpk_common.h"
#include "model_config.h"
#include "safetensors.h"
#include "tcsl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Weights of one decoder layer, fp32, HF layout (out_features x in_features, row-major). NULL when absent. */
typedef struct fpk_layer_weights {
	float *ln1_w, *ln1_b;         /* input_layernorm / self_attn_layer_norm  (hidden) */
	float *ln2_w, *ln2_b;         /* post_attention_layernorm / final_layer_norm (hidden) */
	float *wq, *wk, *wv, *wo;     /* (H*d, hidden) (Hkv*d, hidden) (Hkv*d, hidden) (hidden, H*d) */
	float *bq, *bk, *bv, *bo;
	float *w_gate;                /* (inter, hidden), Llama family only */
	float *w_up, *b_up;           /* (inter, hidden): up_proj / fc1 */
	float *w_down, *b_down;       /* (hidden, inter): down_proj / fc2 */
} fpk_layer_weights;

typedef struct fpk_model {
	fpk_model_config cfg;
	char *path;
	int embed_dim;            /* width of embed_tokens (OPT word_embed_proj_dim, else hidden) */
	int q_dim, kv_dim;        /* n_heads*head_dim, n_kv_heads*head_dim */
	float *embed;             /* (vocab, embed_dim) */
	float *pos_embed;         /* OPT: (max_pos + 2, hidden) */
	float *proj_in;           /* OPT: (hidden, embed_dim) or NULL */
	float *proj_out;          /* OPT: (embed_dim, hidden) or NULL */
	float *norm_w, *norm_b;   /* final norm (OPT: may be absent) */
	float *lm_head;           /* (vocab, embed_dim); == embed when tied */
	float *inv_freq;          /* (head_dim/2) RoPE frequencies after rope_scaling; NULL for OPT */
	fpk_layer_weights *layers;/* (n_layers) */
	int threads;
	void *priv;
} fpk_model;

/* Load config.json and all weights (F32/F16/BF16, converted to fp32) from a model directory.
 * threads: worker threads for matrix products (0 = all cores). Caller frees with fpk_model_free. */
int fpk_model_load(fpk_model **out, const char *path, int threads);
/* The same, but the seven large matrices of every layer (q/k/v/o, gate/up/down) stay in the mapped file until the
 * GPU path streams them layer by layer (fpk_model_layer_src); the CPU forward refuses such a model. */
int fpk_model_load_lazy(fpk_model **out, const char *path, int threads);
/* Layer tensors in a fixed order (the GPU path's upload order): */
enum { FPK_LW_LN1_W, FPK_LW_LN1_B, FPK_LW_LN2_W, FPK_LW_LN2_B, FPK_LW_Q, FPK_LW_K, FPK_LW_V, FPK_LW_O, FPK_LW_BQ,
	FPK_LW_BK, FPK_LW_BV, FPK_LW_BO, FPK_LW_GATE, FPK_LW_UP, FPK_LW_BUP, FPK_LW_DOWN, FPK_LW_BDOWN, FPK_LW_COUNT };
/* the file tensor of slot j of layer l when the model was loaded lazily, else NULL */
const fpk_st_tensor *fpk_model_layer_src(const fpk_model *m, int l, int j);
/* A pack loaded lazily keeps its encoded layer matrices encoded: the Tiled-CSL form of slot j of layer l (arrays in
 * the pack's read-only mapping, checked by fpk_pack_open, valid until fpk_model_free), else NULL. */
const fpk_tcsl *fpk_model_layer_tcsl(const fpk_model *m, int l, int j);
/* Dtype of the layer matrices: the pack's 16-bit dtype when any layer matrix is encoded, else the file dtype of
 * the first layer matrix (FPK_F32, FPK_F16 or FPK_BF16). */
fpk_dtype fpk_model_weight_dtype(const fpk_model *m);
void fpk_model_free(fpk_model *m);

/* Activation hooks. All arrays are row-major (n tokens, heads*head_dim), head-major within a row. */
#define FPK_ATTEND_DENSE 1
typedef struct fpk_model_hooks {
	void *ud;
	/* After the q/k projections of `layer` for n tokens at positions pos0..pos0+n-1 (pre: q_proj/k_proj output
	 * incl. bias; post: after RoPE, equal to pre for OPT). A non-zero return stops the forward pass with it. */
	int (*on_qk)(void *ud, int layer, int n, int pos0, const float *q_pre, const float *k_pre, const float *q_post,
		const float *k_post);
	/* Optional attention override. q: (n, H*d) post-RoPE; k, v: (kv_len, Hkv*d) the layer's cache, kv_len =
	 * pos0 + n (causal: query t sees keys 0..pos0+t). Write out (n, H*d) and return 0, or return
	 * FPK_ATTEND_DENSE to run the dense attention instead, or a negative status to stop. */
	int (*attend)(void *ud, int layer, int n, int pos0, const float *q, const float *k, const float *v, int kv_len,
		float *out);
} fpk_model_hooks;

/* Per-sequence state: KV cache of ctx positions and scratch for blocks of up to max_n tokens. */
typedef struct fpk_model_state {
	int ctx, max_n;
	float *kcache, *vcache;  /* (n_layers, ctx, kv_dim) post-RoPE keys, values */
	float *logits;           /* (max_n, vocab) after fpk_model_forward */
	void *scratch;
} fpk_model_state;

/* Caller frees with fpk_model_state_free. */
int fpk_model_state_new(const fpk_model *m, int ctx, int max_n, fpk_model_state **out);
void fpk_model_state_free(fpk_model_state *st);

/* Run n (<= max_n) tokens at positions pos0.. (pos0 + n <= ctx) through the model, appending to the KV cache.
 * all_logits: logits of every token in st->logits (n, vocab); else only the last token's in row 0;
 * -1: no logits at all (calibration). hooks may be NULL. */
int fpk_model_forward(const fpk_model *m, fpk_model_state *st, const int *tokens, int n, int pos0,
	const fpk_model_hooks *hooks, int all_logits);

/* Greedy decoding: feed prompt (n_prompt >= 1 ids, usually starting with BOS), then generate up to steps
 * positions in total, llama2.c style (position 0..steps-1; stops early on BOS or EOS). out receives the
 * generated ids (capacity steps), *n_out their count. */
int fpk_model_generate_greedy(const fpk_model *m, const int *prompt, int n_prompt, int steps, int *out, int *n_out);

/* Perplexity support: mean negative log-likelihood (natural log) of tokens[1..n-1] predicted by the model,
 * over non-overlapping windows of ctx tokens (each window starts at position 0; its first token is context
 * only). *count receives the number of predictions; exp(*mean_nll) is the perplexity. hooks may be NULL. */
int fpk_model_nll(const fpk_model *m, const int *tokens, size_t n, int ctx, const fpk_model_hooks *hooks,
	double *mean_nll, size_t *count);

/* The scalar RoPE used by the engine (rotate-half, inv_freq from fpk_model): rotates one head vector x (d) at pos. */
void fpk_model_rope(const fpk_model *m, float *x, int pos);

#ifdef __cplusplus
}
#endif
#endif
