/* model.c: the CPU fp32 reference forward pass: weight loading (any F32/F16/BF16), norms, RoPE, GQA attention
 * with a KV cache, MLPs, hooks, greedy decoding and perplexity. Tested by tests/unit/test_model.c (llama2.c golden). */
#include "model.h"
#include "pack.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct model_priv {
	float **allocs; /* every weight buffer, freed in fpk_model_free */
	size_t n_allocs, cap_allocs;
	int act; /* activation kind */
	char prefix[32]; /* OPT tensor name prefix: "model.decoder." or "decoder." */
	int lazy, slot, layer;        /* lazy loading: slot >= 0 marks a large layer matrix being fetched */
	fpk_st_model *st;             /* kept open when lazy */
	const fpk_st_tensor **src;    /* (n_layers, FPK_LW_COUNT) when lazy */
	fpk_pack *pack;               /* set when loading from a packed-model directory: encoded weights decode */
	const fpk_pack_tensor **psrc; /* (n_layers, FPK_LW_COUNT) when lazy: the encoded layer matrices of a pack */
	int mat_dtype;                /* dtype of the first layer matrix seen (file dtype, or the pack's 16-bit one) */
	int pack_dtype;               /* dtype of the first encoded layer matrix, -1 when none */
} model_priv;

enum { ACT_SILU, ACT_RELU, ACT_GELU, ACT_GELU_TANH };
static const struct {
	const char *name;
	int act;
} act_table[] = {
	{"silu", ACT_SILU}, {"swish", ACT_SILU}, {"relu", ACT_RELU}, {"gelu", ACT_GELU},
	{"gelu_new", ACT_GELU_TANH}, {"gelu_pytorch_tanh", ACT_GELU_TANH}, {"gelu_fast", ACT_GELU_TANH},
};

/* ---- loading ---- */

typedef struct conv_ctx {
	const fpk_st_tensor *t;
	float *dst;
} conv_ctx;

static int conv_chunk(void *ctx, size_t i, int tid)
{
	(void)tid;
	const conv_ctx *c = ctx;
	size_t b = i << 16, e = b + (1u << 16);
	if (e > c->t->numel)
		e = c->t->numel;
	if (c->t->dtype == FPK_F32) {
		memcpy(c->dst + b, c->t->data + 4 * b, 4 * (e - b));
		return 0;
	}
	for (size_t k = b; k < e; k++)
		c->dst[k] = fpk_load_f32(c->t->data, c->t->dtype, k);
	return 0;
}

static int track_alloc(model_priv *p, float *buf)
{
	if (p->n_allocs == p->cap_allocs) {
		size_t nc = p->cap_allocs ? 2 * p->cap_allocs : 64;
		float **na = realloc(p->allocs, nc * sizeof(*na));
		if (!na)
			return fpk_error_set(FPK_EIO, "out of memory");
		p->allocs = na;
		p->cap_allocs = nc;
	}
	p->allocs[p->n_allocs++] = buf;
	return 0;
}

/* an encoded weight of a pack: decode the Tiled-CSL arrays (validated by fpk_pack_open) to fp32; a layer matrix
 * of a lazily loaded model stays encoded in the pack's mapping (fpk_model_layer_tcsl) */
static int get_packed(fpk_model *m, const fpk_pack_tensor *pt, int64_t d0, int64_t d1, float **out)
{
	model_priv *p = m->priv;
	const fpk_tcsl *t = &pt->tcsl;
	if (t->m != d0 || t->k != d1)
		return fpk_error_set(FPK_EFORMAT, "packed tensor '%s' has the wrong shape for config.json (expected [%lld, %lld])",
			pt->name, (long long)d0, (long long)d1);
	if (p->slot >= 0) {
		if (p->pack_dtype < 0)
			p->pack_dtype = t->dtype;
		if (p->mat_dtype < 0)
			p->mat_dtype = t->dtype;
	}
	if (p->lazy && p->slot >= 0) {
		p->psrc[(size_t)p->layer * FPK_LW_COUNT + p->slot] = pt;
		return 0;
	}
	size_t n = (size_t)t->m * (size_t)t->k;
	uint16_t *h = malloc(n * sizeof(*h));
	float *buf = malloc(n * sizeof(float));
	int rc = (!h || !buf) ? fpk_error_set(FPK_EIO, "out of memory for tensor '%s'", pt->name) : 0;
	if (!rc)
		rc = fpk_pack_decode_tensor(pt, h);
	for (size_t i = 0; !rc && i < n; i++)
		buf[i] = t->dtype == FPK_BF16 ? fpk_bf16_to_f32(h[i]) : fpk_f16_to_f32(h[i]);
	free(h);
	if (!rc)
		rc = track_alloc(p, buf);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

/* fetch tensor `name` of shape (d0[, d1]) as fp32 (required: error when missing); in a pack, an encoded weight
 * is decoded from its Tiled-CSL arrays */
static int get_tensor(fpk_model *m, const fpk_st_model *st, const char *name, int64_t d0, int64_t d1, int required,
	float **out)
{
	model_priv *p = m->priv;
	const fpk_st_tensor *t = fpk_st_model_find(st, name);
	*out = NULL;
	if (!t && p->pack && fpk_pack_find(p->pack, name))
		return get_packed(m, fpk_pack_find(p->pack, name), d0, d1, out);
	if (!t) {
		if (required)
			return fpk_error_set(FPK_EFORMAT, "model '%s' has no tensor '%s' (model/config mismatch?)", m->path, name);
		return 0;
	}
	int ndim = d1 > 0 ? 2 : 1;
	if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1))
		return fpk_error_set(FPK_EFORMAT, "tensor '%s' has the wrong shape for config.json (expected [%lld%s%lld])",
			name, (long long)d0, ndim == 2 ? ", " : "", ndim == 2 ? (long long)d1 : 0LL);
	if (t->dtype != FPK_F32 && t->dtype != FPK_F16 && t->dtype != FPK_BF16)
		return fpk_error_set(FPK_EFORMAT, "tensor '%s' has dtype %s (expected F32, F16 or BF16)", name,
			fpk_dtypes[t->dtype].name);
	int rc;
	if (p->slot >= 0 && p->mat_dtype < 0)
		p->mat_dtype = t->dtype;
	if (p->lazy && p->slot >= 0) {
		p->src[(size_t)p->layer * FPK_LW_COUNT + p->slot] = t;
		return 0;
	}
	float *buf = malloc(t->numel * sizeof(float));
	if (!buf)
		return fpk_error_set(FPK_EIO, "out of memory for tensor '%s'", name);
	if ((rc = track_alloc(p, buf))) {
		free(buf);
		return rc;
	}
	conv_ctx c = {t, buf};
	rc = fpk_parallel_for((t->numel + 65535) >> 16, m->threads, conv_chunk, &c);
	if (rc)
		return rc;
	*out = buf;
	return 0;
}

void fpk_model_free(fpk_model *m)
{
	if (!m)
		return;
	model_priv *p = m->priv;
	if (p) {
		for (size_t i = 0; i < p->n_allocs; i++)
			free(p->allocs[i]);
		free(p->allocs);
		free(p->src);
		free(p->psrc);
		fpk_st_model_close(p->st);
		fpk_pack_close(p->pack);
		free(p);
	}
	free(m->layers);
	free(m->inv_freq);
	free(m->path);
	fpk_model_config_release(&m->cfg);
	free(m);
}

static void rope_init(fpk_model *m)
{
	const fpk_model_config *c = &m->cfg;
	int half = c->head_dim / 2;
	for (int i = 0; i < half; i++) {
		float f = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)c->head_dim);
		if (c->rope_factor > 0) { /* Llama 3 rope_scaling */
			double lo = c->rope_low_freq_factor > 0 ? c->rope_low_freq_factor : 1.0;
			double hi = c->rope_high_freq_factor > 0 ? c->rope_high_freq_factor : 4.0;
			double old = c->rope_original_max_pos > 0 ? c->rope_original_max_pos : 8192;
			double wavelen = 2.0 * M_PI / f, lo_wl = old / lo, hi_wl = old / hi;
			if (wavelen > lo_wl) {
				f = (float)(f / c->rope_factor);
			} else if (wavelen >= hi_wl) {
				double s = (old / wavelen - lo) / (hi - lo);
				f = (float)((1 - s) * f / c->rope_factor + s * f);
			}
		}
		m->inv_freq[i] = f;
	}
}

const fpk_st_tensor *fpk_model_layer_src(const fpk_model *m, int l, int j)
{
	const model_priv *p = m->priv;
	if (!p->lazy || l < 0 || l >= m->cfg.n_layers || j < 0 || j >= FPK_LW_COUNT)
		return NULL;
	return p->src[(size_t)l * FPK_LW_COUNT + j];
}

const fpk_tcsl *fpk_model_layer_tcsl(const fpk_model *m, int l, int j)
{
	const model_priv *p = m->priv;
	if (!p->lazy || !p->psrc || l < 0 || l >= m->cfg.n_layers || j < 0 || j >= FPK_LW_COUNT)
		return NULL;
	const fpk_pack_tensor *pt = p->psrc[(size_t)l * FPK_LW_COUNT + j];
	return pt ? &pt->tcsl : NULL;
}

fpk_dtype fpk_model_weight_dtype(const fpk_model *m)
{
	const model_priv *p = m->priv;
	if (p->pack_dtype >= 0)
		return (fpk_dtype)p->pack_dtype;
	return p->mat_dtype >= 0 ? (fpk_dtype)p->mat_dtype : FPK_F32;
}

static int model_load(fpk_model **out, const char *path, int threads, int lazy);
int fpk_model_load(fpk_model **out, const char *path, int threads) { return model_load(out, path, threads, 0); }
int fpk_model_load_lazy(fpk_model **out, const char *path, int threads) { return model_load(out, path, threads, 1); }

static int model_load(fpk_model **out, const char *path, int threads, int lazy)
{
	int rc = 0;
	fpk_model *m = NULL;
	fpk_st_model *st = NULL;
	*out = NULL;
	if (!(m = calloc(1, sizeof(*m))) || !(m->priv = calloc(1, sizeof(model_priv))) || !(m->path = strdup(path))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	m->threads = threads > 0 ? threads : fpk_default_threads();
	model_priv *p = m->priv;
	p->lazy = lazy;
	p->slot = -1;
	p->mat_dtype = p->pack_dtype = -1;
	if ((rc = fpk_model_config_load(&m->cfg, path)))
		goto done;
	if ((rc = fpk_st_model_open(&st, path)))
		goto done;
	if (fpk_pack_detect(st) && (rc = fpk_pack_open(&p->pack, path, m->threads)))
		goto done;
	fpk_model_config *c = &m->cfg;
	p->act = -1;
	for (size_t i = 0; i < sizeof(act_table) / sizeof(act_table[0]); i++)
		if (!strcmp(c->hidden_act, act_table[i].name))
			p->act = act_table[i].act;
	if (p->act < 0) {
		rc = fpk_error_set(FPK_EFORMAT, "config.json of '%s': hidden_act \"%s\" is not supported (silu, relu, gelu, "
			"gelu_new, gelu_pytorch_tanh)", path, c->hidden_act);
		goto done;
	}
	if (c->head_dim <= 0 || c->head_dim % 2 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads) {
		rc = fpk_error_set(FPK_EFORMAT, "config.json of '%s': heads %d / kv heads %d / head_dim %d are inconsistent",
			path, c->n_heads, c->n_kv_heads, c->head_dim);
		goto done;
	}
	int H = c->hidden, I = c->intermediate, V = c->vocab;
	m->q_dim = c->n_heads * c->head_dim;
	m->kv_dim = c->n_kv_heads * c->head_dim;
	m->embed_dim = H;
	if (lazy && (!(p->src = calloc((size_t)c->n_layers * FPK_LW_COUNT, sizeof(*p->src))) ||
		     !(p->psrc = calloc((size_t)c->n_layers * FPK_LW_COUNT, sizeof(*p->psrc))))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	if (!(m->layers = calloc((size_t)c->n_layers, sizeof(*m->layers)))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	char n[256];
	if (c->arch == FPK_ARCH_OPT) {
		snprintf(p->prefix, sizeof(p->prefix), "%s",
			fpk_st_model_find(st, "decoder.embed_tokens.weight") ? "decoder." : "model.decoder.");
		const char *P = p->prefix;
		if (c->word_embed_proj_dim > 0)
			m->embed_dim = c->word_embed_proj_dim;
		int E = m->embed_dim;
#define GET(ptr, req, d0, d1, ...)                                                                                   \
	do {                                                                                                             \
		snprintf(n, sizeof(n), __VA_ARGS__);                                                                         \
		if ((rc = get_tensor(m, st, n, d0, d1, req, &(ptr))))                                                        \
			goto done;                                                                                               \
	} while (0)
#define GETL(slot_, ptr, req, d0, d1, ...)                                                                         \
	do {                                                                                                             \
		p->slot = (slot_);                                                                                           \
		p->layer = l;                                                                                                \
		snprintf(n, sizeof(n), __VA_ARGS__);                                                                         \
		rc = get_tensor(m, st, n, d0, d1, req, &(ptr));                                                              \
		p->slot = -1;                                                                                                \
		if (rc)                                                                                                      \
			goto done;                                                                                               \
	} while (0)
		GET(m->embed, 1, V, E, "%sembed_tokens.weight", P);
		GET(m->pos_embed, 1, (int64_t)c->max_pos + 2, H, "%sembed_positions.weight", P);
		if (E != H) {
			GET(m->proj_in, 1, H, E, "%sproject_in.weight", P);
			GET(m->proj_out, 1, E, H, "%sproject_out.weight", P);
		}
		GET(m->norm_w, 0, H, 0, "%sfinal_layer_norm.weight", P);
		GET(m->norm_b, 0, H, 0, "%sfinal_layer_norm.bias", P);
		GET(m->lm_head, 0, V, E, "lm_head.weight");
		for (int l = 0; l < c->n_layers; l++) {
			fpk_layer_weights *w = &m->layers[l];
			const char *proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
			float **ws[4] = {&w->wq, &w->wk, &w->wv, &w->wo}, **bs[4] = {&w->bq, &w->bk, &w->bv, &w->bo};
			int outd[4] = {m->q_dim, m->kv_dim, m->kv_dim, H}, ind[4] = {H, H, H, m->q_dim};
			for (int k = 0; k < 4; k++) {
				GETL(FPK_LW_Q + k, *ws[k], 1, outd[k], ind[k], "%slayers.%d.self_attn.%s.weight", P, l, proj[k]);
				GET(*bs[k], c->attention_bias, outd[k], 0, "%slayers.%d.self_attn.%s.bias", P, l, proj[k]);
			}
			GET(w->ln1_w, 1, H, 0, "%slayers.%d.self_attn_layer_norm.weight", P, l);
			GET(w->ln1_b, 1, H, 0, "%slayers.%d.self_attn_layer_norm.bias", P, l);
			GET(w->ln2_w, 1, H, 0, "%slayers.%d.final_layer_norm.weight", P, l);
			GET(w->ln2_b, 1, H, 0, "%slayers.%d.final_layer_norm.bias", P, l);
			GETL(FPK_LW_UP, w->w_up, 1, I, H, "%slayers.%d.fc1.weight", P, l);
			GET(w->b_up, c->mlp_bias, I, 0, "%slayers.%d.fc1.bias", P, l);
			GETL(FPK_LW_DOWN, w->w_down, 1, H, I, "%slayers.%d.fc2.weight", P, l);
			GET(w->b_down, c->mlp_bias, H, 0, "%slayers.%d.fc2.bias", P, l);
		}
	} else {
		GET(m->embed, 1, V, H, "model.embed_tokens.weight");
		GET(m->norm_w, 1, H, 0, "model.norm.weight");
		GET(m->lm_head, !c->tied_embeddings, V, H, "lm_head.weight");
		for (int l = 0; l < c->n_layers; l++) {
			fpk_layer_weights *w = &m->layers[l];
			const char *pre = "model.layers";
			GET(w->ln1_w, 1, H, 0, "%s.%d.input_layernorm.weight", pre, l);
			GET(w->ln2_w, 1, H, 0, "%s.%d.post_attention_layernorm.weight", pre, l);
			GETL(FPK_LW_Q, w->wq, 1, m->q_dim, H, "%s.%d.self_attn.q_proj.weight", pre, l);
			GETL(FPK_LW_K, w->wk, 1, m->kv_dim, H, "%s.%d.self_attn.k_proj.weight", pre, l);
			GETL(FPK_LW_V, w->wv, 1, m->kv_dim, H, "%s.%d.self_attn.v_proj.weight", pre, l);
			GETL(FPK_LW_O, w->wo, 1, H, m->q_dim, "%s.%d.self_attn.o_proj.weight", pre, l);
			GET(w->bq, c->attention_bias, m->q_dim, 0, "%s.%d.self_attn.q_proj.bias", pre, l);
			GET(w->bk, c->attention_bias, m->kv_dim, 0, "%s.%d.self_attn.k_proj.bias", pre, l);
			GET(w->bv, c->attention_bias, m->kv_dim, 0, "%s.%d.self_attn.v_proj.bias", pre, l);
			GET(w->bo, 0, H, 0, "%s.%d.self_attn.o_proj.bias", pre, l);
			GETL(FPK_LW_GATE, w->w_gate, 1, I, H, "%s.%d.mlp.gate_proj.weight", pre, l);
			GETL(FPK_LW_UP, w->w_up, 1, I, H, "%s.%d.mlp.up_proj.weight", pre, l);
			GETL(FPK_LW_DOWN, w->w_down, 1, H, I, "%s.%d.mlp.down_proj.weight", pre, l);
			GET(w->b_up, c->mlp_bias, I, 0, "%s.%d.mlp.up_proj.bias", pre, l);
			GET(w->b_down, c->mlp_bias, H, 0, "%s.%d.mlp.down_proj.bias", pre, l);
		}
		if (!(m->inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(float)))) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		rope_init(m);
	}
#undef GET
#undef GETL
	if (!m->lm_head)
		m->lm_head = m->embed;
	if (lazy) {
		p->st = st; /* the lazy tensors point into its mapping */
		st = NULL;
	}
	*out = m;
	m = NULL;
done:
	fpk_st_model_close(st);
	fpk_model_free(m);
	return rc;
}

/* ---- kernels (scalar, threaded over output rows) ---- */

typedef struct mm_ctx {
	const float *x; /* (n, in) */
	const float *w; /* (out, in) */
	const float *b; /* (out) or NULL */
	float *y;       /* (n, out) */
	int n, in, out;
} mm_ctx;

#define MM_ROWS 16

static int mm_task(void *ctx, size_t i, int tid)
{
	(void)tid;
	const mm_ctx *c = ctx;
	int r0 = (int)i * MM_ROWS, r1 = r0 + MM_ROWS < c->out ? r0 + MM_ROWS : c->out;
	for (int t = 0; t < c->n; t++) {
		const float *x = c->x + (size_t)t * c->in;
		float *y = c->y + (size_t)t * c->out;
		for (int r = r0; r < r1; r++) {
			const float *w = c->w + (size_t)r * c->in;
			float s = 0;
			for (int k = 0; k < c->in; k++)
				s += w[k] * x[k];
			y[r] = s + (c->b ? c->b[r] : 0.0f);
		}
	}
	return 0;
}

static int matmul(const fpk_model *m, float *y, const float *x, const float *w, const float *b, int n, int in, int out)
{
	mm_ctx c = {x, w, b, y, n, in, out};
	size_t tasks = (size_t)(out + MM_ROWS - 1) / MM_ROWS;
	double work = (double)n * in * out;
	if (work < 200000.0 || m->threads == 1) {
		for (size_t i = 0; i < tasks; i++)
			mm_task(&c, i, 0);
		return 0;
	}
	return fpk_parallel_for(tasks, m->threads, mm_task, &c);
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
	float ss = 0;
	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	ss = 1.0f / sqrtf(ss / (float)n + eps);
	for (int i = 0; i < n; i++)
		o[i] = w[i] * (ss * x[i]);
}

static void layernorm(float *o, const float *x, const float *w, const float *b, int n, float eps)
{
	float mean = 0, var = 0;
	for (int i = 0; i < n; i++)
		mean += x[i];
	mean /= (float)n;
	for (int i = 0; i < n; i++)
		var += (x[i] - mean) * (x[i] - mean);
	var /= (float)n;
	float inv = 1.0f / sqrtf(var + eps);
	for (int i = 0; i < n; i++)
		o[i] = (x[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
}

static void norm_rows(const fpk_model *m, float *o, const float *x, const float *w, const float *b, int n)
{
	for (int t = 0; t < n; t++) {
		if (m->cfg.arch == FPK_ARCH_OPT)
			layernorm(o + (size_t)t * m->cfg.hidden, x + (size_t)t * m->cfg.hidden, w, b, m->cfg.hidden,
				(float)m->cfg.norm_eps);
		else
			rmsnorm(o + (size_t)t * m->cfg.hidden, x + (size_t)t * m->cfg.hidden, w, m->cfg.hidden,
				(float)m->cfg.norm_eps);
	}
}

void fpk_model_rope(const fpk_model *m, float *x, int pos)
{
	int half = m->cfg.head_dim / 2;
	for (int i = 0; i < half; i++) {
		float a = (float)pos * m->inv_freq[i], cs = cosf(a), sn = sinf(a);
		float x1 = x[i], x2 = x[i + half];
		x[i] = x1 * cs - x2 * sn;
		x[i + half] = x2 * cs + x1 * sn;
	}
}

static float act_fn(int act, float x)
{
	switch (act) {
	case ACT_SILU: return x / (1.0f + expf(-x));
	case ACT_RELU: return x > 0 ? x : 0;
	case ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678f));
	default: return 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
	}
}

/* ---- state ---- */

typedef struct scratch {
	float *x, *xb, *xe;   /* (max_n, hidden) residual, normed, (max_n, embed_dim) */
	float *q, *k, *v;     /* (max_n, q_dim / kv_dim) post-RoPE */
	float *qpre, *kpre;   /* (max_n, q_dim / kv_dim) */
	float *att;           /* (max_n, q_dim) attention output */
	float *h1, *h2;       /* (max_n, inter) */
	float *scores;        /* (threads, ctx) */
	float *last;          /* (max(hidden, embed_dim)) */
} scratch;

void fpk_model_state_free(fpk_model_state *st)
{
	if (!st)
		return;
	scratch *s = st->scratch;
	if (s) {
		float **all[] = {&s->x, &s->xb, &s->xe, &s->q, &s->k, &s->v, &s->qpre, &s->kpre, &s->att, &s->h1, &s->h2,
			&s->scores, &s->last};
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			free(*all[i]);
		free(s);
	}
	free(st->kcache);
	free(st->vcache);
	free(st->logits);
	free(st);
}

int fpk_model_state_new(const fpk_model *m, int ctx, int max_n, fpk_model_state **out)
{
	const fpk_model_config *c = &m->cfg;
	fpk_model_state *st = calloc(1, sizeof(*st));
	scratch *s = calloc(1, sizeof(*s));
	*out = NULL;
	if (ctx < 1 || max_n < 1 || max_n > ctx) {
		free(st);
		free(s);
		return fpk_error_set(FPK_EUSAGE, "model state: need 1 <= block (%d) <= context (%d)", max_n, ctx);
	}
	if (c->arch == FPK_ARCH_OPT && ctx > c->max_pos) {
		free(st);
		free(s);
		return fpk_error_set(FPK_EUSAGE, "context %d exceeds the model's learned positions (%d)", ctx, c->max_pos);
	}
	if (!st || !s) {
		free(st);
		free(s);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	st->scratch = s;
	st->ctx = ctx;
	st->max_n = max_n;
	size_t N = (size_t)max_n, H = (size_t)c->hidden, E = (size_t)m->embed_dim, I = (size_t)c->intermediate;
	size_t cache = (size_t)c->n_layers * (size_t)ctx * (size_t)m->kv_dim;
	int thr = m->threads > 0 ? m->threads : 1;
	st->kcache = calloc(cache, sizeof(float));
	st->vcache = calloc(cache, sizeof(float));
	st->logits = malloc(N * (size_t)c->vocab * sizeof(float));
	s->x = malloc(N * H * sizeof(float));
	s->xb = malloc(N * H * sizeof(float));
	s->xe = malloc(N * E * sizeof(float));
	s->q = malloc(N * (size_t)m->q_dim * sizeof(float));
	s->qpre = malloc(N * (size_t)m->q_dim * sizeof(float));
	s->att = malloc(N * (size_t)(m->q_dim > (int)H ? m->q_dim : (int)H) * sizeof(float));
	s->k = malloc(N * (size_t)m->kv_dim * sizeof(float));
	s->kpre = malloc(N * (size_t)m->kv_dim * sizeof(float));
	s->v = malloc(N * (size_t)m->kv_dim * sizeof(float));
	s->h1 = malloc(N * I * sizeof(float));
	s->h2 = malloc(N * I * sizeof(float));
	s->scores = malloc((size_t)thr * (size_t)ctx * sizeof(float));
	s->last = malloc((H > E ? H : E) * sizeof(float));
	if (!st->kcache || !st->vcache || !st->logits || !s->x || !s->xb || !s->xe || !s->q || !s->qpre || !s->att ||
		!s->k || !s->kpre || !s->v || !s->h1 || !s->h2 || !s->scores || !s->last) {
		fpk_model_state_free(st);
		return fpk_error_set(FPK_EIO, "out of memory for a model state (context %d, block %d)", ctx, max_n);
	}
	*out = st;
	return 0;
}

/* ---- attention ---- */

typedef struct att_ctx {
	const fpk_model *m;
	const float *q, *kc, *vc; /* q (n, q_dim); caches (ctx, kv_dim) of this layer */
	float *out, *scores;
	int n, pos0, ctx;
} att_ctx;

static int att_task(void *vctx, size_t i, int tid)
{
	const att_ctx *a = vctx;
	const fpk_model_config *c = &a->m->cfg;
	int t = (int)(i / (size_t)c->n_heads), h = (int)(i % (size_t)c->n_heads), d = c->head_dim;
	int g = h / (c->n_heads / c->n_kv_heads), len = a->pos0 + t + 1;
	const float *q = a->q + (size_t)t * a->m->q_dim + (size_t)h * d;
	float *sc = a->scores + (size_t)tid * a->ctx, *o = a->out + (size_t)t * a->m->q_dim + (size_t)h * d;
	float scale = 1.0f / sqrtf((float)d), mx = -INFINITY;
	for (int p = 0; p < len; p++) {
		const float *k = a->kc + (size_t)p * a->m->kv_dim + (size_t)g * d;
		float s = 0;
		for (int j = 0; j < d; j++)
			s += q[j] * k[j];
		sc[p] = s * scale;
		if (sc[p] > mx)
			mx = sc[p];
	}
	float sum = 0;
	for (int p = 0; p < len; p++) {
		sc[p] = expf(sc[p] - mx);
		sum += sc[p];
	}
	for (int j = 0; j < d; j++)
		o[j] = 0;
	for (int p = 0; p < len; p++) {
		const float *v = a->vc + (size_t)p * a->m->kv_dim + (size_t)g * d;
		float w = sc[p] / sum;
		for (int j = 0; j < d; j++)
			o[j] += w * v[j];
	}
	return 0;
}

static int attention(const fpk_model *m, fpk_model_state *st, int layer, int n, int pos0, const fpk_model_hooks *hooks)
{
	scratch *s = st->scratch;
	size_t off = (size_t)layer * (size_t)st->ctx * (size_t)m->kv_dim;
	const float *kc = st->kcache + off, *vc = st->vcache + off;
	if (hooks && hooks->attend) {
		int rc = hooks->attend(hooks->ud, layer, n, pos0, s->q, kc, vc, pos0 + n, s->att);
		if (rc != FPK_ATTEND_DENSE)
			return rc;
	}
	att_ctx a = {m, s->q, kc, vc, s->att, s->scores, n, pos0, st->ctx};
	size_t tasks = (size_t)n * (size_t)m->cfg.n_heads;
	if ((double)n * (pos0 + n) * m->q_dim < 100000.0 || m->threads == 1) {
		for (size_t i = 0; i < tasks; i++)
			att_task(&a, i, 0);
		return 0;
	}
	return fpk_parallel_for(tasks, m->threads, att_task, &a);
}

/* ---- forward ---- */

int fpk_model_forward(const fpk_model *m, fpk_model_state *st, const int *tokens, int n, int pos0,
	const fpk_model_hooks *hooks, int all_logits)
{
	const fpk_model_config *c = &m->cfg;
	scratch *s = st->scratch;
	model_priv *p = m->priv;
	int H = c->hidden, E = m->embed_dim, I = c->intermediate, V = c->vocab, rc, opt = c->arch == FPK_ARCH_OPT;
	if (((model_priv *)m->priv)->lazy)
		return fpk_error_set(FPK_EUSAGE, "model '%s' was loaded for layer streaming on the GPU: the CPU path needs "
			"fpk_model_load", m->path);
	if (n < 1 || n > st->max_n || pos0 < 0 || pos0 + n > st->ctx)
		return fpk_error_set(FPK_EUSAGE, "forward: %d tokens at position %d do not fit (block %d, context %d)", n,
			pos0, st->max_n, st->ctx);
	for (int t = 0; t < n; t++)
		if (tokens[t] < 0 || tokens[t] >= V)
			return fpk_error_set(FPK_EFORMAT, "token id %d is outside the model's vocabulary (%d)", tokens[t], V);
	/* embeddings */
	for (int t = 0; t < n; t++)
		memcpy(s->xe + (size_t)t * E, m->embed + (size_t)tokens[t] * E, (size_t)E * sizeof(float));
	if (m->proj_in) {
		if ((rc = matmul(m, s->x, s->xe, m->proj_in, NULL, n, E, H)))
			return rc;
	} else {
		memcpy(s->x, s->xe, (size_t)n * H * sizeof(float));
	}
	if (opt)
		for (int t = 0; t < n; t++)
			for (int i = 0; i < H; i++)
				s->x[(size_t)t * H + i] += m->pos_embed[(size_t)(pos0 + t + 2) * H + i];
	int pre_ln = !opt || c->do_layer_norm_before;
	for (int l = 0; l < c->n_layers; l++) {
		const fpk_layer_weights *w = &m->layers[l];
		size_t off = (size_t)l * (size_t)st->ctx * (size_t)m->kv_dim;
		/* attention block */
		if (pre_ln)
			norm_rows(m, s->xb, s->x, w->ln1_w, w->ln1_b, n);
		else
			memcpy(s->xb, s->x, (size_t)n * H * sizeof(float));
		if ((rc = matmul(m, s->qpre, s->xb, w->wq, w->bq, n, H, m->q_dim)) ||
			(rc = matmul(m, s->kpre, s->xb, w->wk, w->bk, n, H, m->kv_dim)) ||
			(rc = matmul(m, s->v, s->xb, w->wv, w->bv, n, H, m->kv_dim)))
			return rc;
		memcpy(s->q, s->qpre, (size_t)n * m->q_dim * sizeof(float));
		memcpy(s->k, s->kpre, (size_t)n * m->kv_dim * sizeof(float));
		if (!opt)
			for (int t = 0; t < n; t++) {
				for (int h = 0; h < c->n_heads; h++)
					fpk_model_rope(m, s->q + (size_t)t * m->q_dim + (size_t)h * c->head_dim, pos0 + t);
				for (int h = 0; h < c->n_kv_heads; h++)
					fpk_model_rope(m, s->k + (size_t)t * m->kv_dim + (size_t)h * c->head_dim, pos0 + t);
			}
		if (hooks && hooks->on_qk && (rc = hooks->on_qk(hooks->ud, l, n, pos0, s->qpre, s->kpre, s->q, s->k)))
			return rc;
		memcpy(st->kcache + off + (size_t)pos0 * m->kv_dim, s->k, (size_t)n * m->kv_dim * sizeof(float));
		memcpy(st->vcache + off + (size_t)pos0 * m->kv_dim, s->v, (size_t)n * m->kv_dim * sizeof(float));
		if ((rc = attention(m, st, l, n, pos0, hooks)))
			return rc;
		if ((rc = matmul(m, s->xb, s->att, w->wo, w->bo, n, m->q_dim, H)))
			return rc;
		for (size_t i = 0; i < (size_t)n * H; i++)
			s->x[i] += s->xb[i];
		if (!pre_ln)
			norm_rows(m, s->x, s->x, w->ln1_w, w->ln1_b, n);
		/* MLP block */
		if (pre_ln)
			norm_rows(m, s->xb, s->x, w->ln2_w, w->ln2_b, n);
		else
			memcpy(s->xb, s->x, (size_t)n * H * sizeof(float));
		if ((rc = matmul(m, s->h1, s->xb, w->w_up, w->b_up, n, H, I)))
			return rc;
		if (w->w_gate) {
			if ((rc = matmul(m, s->h2, s->xb, w->w_gate, NULL, n, H, I)))
				return rc;
			for (size_t i = 0; i < (size_t)n * I; i++)
				s->h1[i] *= act_fn(p->act, s->h2[i]);
		} else {
			for (size_t i = 0; i < (size_t)n * I; i++)
				s->h1[i] = act_fn(p->act, s->h1[i]);
		}
		if ((rc = matmul(m, s->xb, s->h1, w->w_down, w->b_down, n, I, H)))
			return rc;
		for (size_t i = 0; i < (size_t)n * H; i++)
			s->x[i] += s->xb[i];
		if (!pre_ln)
			norm_rows(m, s->x, s->x, w->ln2_w, w->ln2_b, n);
	}
	if (all_logits < 0)
		return 0;
	int first = all_logits ? 0 : n - 1, cnt = n - first;
	float *xs = s->x + (size_t)first * H;
	if (m->norm_w) {
		norm_rows(m, s->xb, xs, m->norm_w, m->norm_b, cnt);
		xs = s->xb;
	}
	if (m->proj_out) {
		if ((rc = matmul(m, s->xe, xs, m->proj_out, NULL, cnt, H, E)))
			return rc;
		xs = s->xe;
	}
	return matmul(m, st->logits, xs, m->lm_head, NULL, cnt, E, V);
}

/* ---- decoding and perplexity ---- */

static int argmax(const float *v, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return b;
}

int fpk_model_generate_greedy(const fpk_model *m, const int *prompt, int n_prompt, int steps, int *out, int *n_out)
{
	fpk_model_state *st = NULL;
	int rc, k = 0;
	*n_out = 0;
	if (n_prompt < 1 || steps < 1)
		return fpk_error_set(FPK_EUSAGE, "generate: need a prompt of at least one token and steps >= 1");
	if (n_prompt > steps)
		n_prompt = steps;
	if ((rc = fpk_model_state_new(m, steps, n_prompt, &st)))
		return rc;
	/* prefill all but the last prompt token's prediction is irrelevant: run the prompt as one block */
	int pos = 0, tok;
	if ((rc = fpk_model_forward(m, st, prompt, n_prompt, 0, NULL, 0)))
		goto done;
	pos = n_prompt;
	for (;;) {
		tok = argmax(st->logits, m->cfg.vocab);
		if (tok == m->cfg.bos_id || tok == m->cfg.eos_id)
			break;
		out[k++] = tok;
		if (pos >= steps)
			break;
		if ((rc = fpk_model_forward(m, st, &tok, 1, pos, NULL, 0)))
			goto done;
		pos++;
	}
	/* llama2.c counts positions: with a prompt of p tokens it prints steps - p + 1 tokens */
	*n_out = k;
done:
	fpk_model_state_free(st);
	return rc;
}

int fpk_model_nll(const fpk_model *m, const int *tokens, size_t n, int ctx, const fpk_model_hooks *hooks,
	double *mean_nll, size_t *count)
{
	fpk_model_state *st = NULL;
	int rc = 0, V = m->cfg.vocab;
	double sum = 0;
	size_t cnt = 0;
	*mean_nll = 0;
	*count = 0;
	if (n < 2)
		return fpk_error_set(FPK_EUSAGE, "perplexity needs at least 2 tokens (got %zu)", n);
	if ((rc = fpk_model_state_new(m, ctx, ctx, &st)))
		return rc;
	for (size_t s0 = 0; s0 + 1 < n; s0 += (size_t)ctx) {
		int L = (int)(n - s0 < (size_t)ctx ? n - s0 : (size_t)ctx);
		if (L < 2)
			break;
		if ((rc = fpk_model_forward(m, st, tokens + s0, L, 0, hooks, 1)))
			goto done;
		for (int t = 0; t + 1 < L; t++) {
			const float *lg = st->logits + (size_t)t * V;
			float mx = lg[0];
			for (int i = 1; i < V; i++)
				mx = lg[i] > mx ? lg[i] : mx;
			double z = 0;
			for (int i = 0; i < V; i++)
				z += exp((double)(lg[i] - mx));
			sum += log(z) + mx - lg[tokens[s0 + t + 1]];
			cnt++;
		}
	}
	*mean_nll = cnt ? sum / (double)cnt : 0;
	*count = cnt;
done:
	fpk_model_state_free(st);
	return rc;
}
