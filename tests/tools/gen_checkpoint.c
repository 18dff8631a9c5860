/* gen_checkpoint.c: deterministic synthetic HF-style checkpoints (config.json + safetensors, optionally sharded)
 * for Llama, Mistral, Qwen2 and OPT shapes, generated tensor by tensor through the streaming writer.
 * Run: gen_checkpoint --out DIR [--preset demo|llama7b|llama70b|opt30b] [--arch A] [--layers L] ... (see usage()). */
#include "fpk_common.h"
#include "safetensors.h"
#include "select.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ARCH_LLAMA, ARCH_MISTRAL, ARCH_QWEN2, ARCH_OPT } arch_t;

typedef struct gen_opts {
	const char *out;
	arch_t arch;
	int layers, hidden, heads, kv_heads, head_dim, intermediate, vocab, max_pos;
	fpk_dtype dtype;
	uint64_t seed;
	int shards;
	double sparsity;
	int tied;      /* tie_word_embeddings: lm_head not stored */
	int tied_copy; /* tie_word_embeddings and lm_head stored as an exact copy of embed_tokens */
	int threads;
} gen_opts;

/* how a tensor is filled */
typedef enum { FILL_NORMAL, FILL_ONES, FILL_ZEROS } fill_t;

typedef struct gtensor {
	char name[160];
	int ndim;
	int64_t shape[2];
	fill_t fill;
	float scale;
	const char *seed_name; /* values drawn from this name's stream (an exact copy for tied weights) */
} gtensor;

typedef struct tlist {
	gtensor *v;
	size_t n, cap;
} tlist;

static void die(const char *msg)
{
	fprintf(stderr, "gen_checkpoint: error: %s\n", msg);
	exit(2);
}

static gtensor *tadd(tlist *l, fill_t fill, int ndim, int64_t d0, int64_t d1, const char *fmt, int layer)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (!l->v)
			die("out of memory");
	}
	gtensor *t = &l->v[l->n++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), fmt, layer);
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->fill = fill;
	t->scale = 0.02f;
	return t;
}

#define W2(l, d0, d1, fmt, i) tadd(l, FILL_NORMAL, 2, d0, d1, fmt, i)
#define B1(l, d0, fmt, i) tadd(l, FILL_NORMAL, 1, d0, 0, fmt, i)
#define ONES(l, d0, fmt, i) tadd(l, FILL_ONES, 1, d0, 0, fmt, i)
#define ZEROS(l, d0, fmt, i) tadd(l, FILL_ZEROS, 1, d0, 0, fmt, i)

static void build_llama(const gen_opts *o, tlist *l)
{
	int64_t H = o->hidden, q = (int64_t)o->heads * o->head_dim, kv = (int64_t)o->kv_heads * o->head_dim;
	int64_t I = o->intermediate, V = o->vocab;
	W2(l, V, H, "model.embed_tokens.weight", 0);
	for (int i = 0; i < o->layers; i++) {
		ONES(l, H, "model.layers.%d.input_layernorm.weight", i);
		W2(l, q, H, "model.layers.%d.self_attn.q_proj.weight", i);
		if (o->arch == ARCH_QWEN2)
			B1(l, q, "model.layers.%d.self_attn.q_proj.bias", i);
		W2(l, kv, H, "model.layers.%d.self_attn.k_proj.weight", i);
		if (o->arch == ARCH_QWEN2)
			B1(l, kv, "model.layers.%d.self_attn.k_proj.bias", i);
		W2(l, kv, H, "model.layers.%d.self_attn.v_proj.weight", i);
		if (o->arch == ARCH_QWEN2)
			B1(l, kv, "model.layers.%d.self_attn.v_proj.bias", i);
		W2(l, H, q, "model.layers.%d.self_attn.o_proj.weight", i);
		ONES(l, H, "model.layers.%d.post_attention_layernorm.weight", i);
		W2(l, I, H, "model.layers.%d.mlp.gate_proj.weight", i);
		W2(l, I, H, "model.layers.%d.mlp.up_proj.weight", i);
		W2(l, H, I, "model.layers.%d.mlp.down_proj.weight", i);
	}
	ONES(l, H, "model.norm.weight", 0);
	if (!o->tied)
		W2(l, V, H, "lm_head.weight", 0)->seed_name = o->tied_copy ? "model.embed_tokens.weight" : NULL;
}

static void build_opt(const gen_opts *o, tlist *l)
{
	int64_t H = o->hidden, F = o->intermediate, V = o->vocab;
	W2(l, V, H, "model.decoder.embed_tokens.weight", 0);
	W2(l, (int64_t)o->max_pos + 2, H, "model.decoder.embed_positions.weight", 0);
	for (int i = 0; i < o->layers; i++) {
		static const char *const proj[] = {"k_proj", "v_proj", "q_proj", "out_proj"};
		for (int p = 0; p < 4; p++) {
			char w[128], b[128];
			snprintf(w, sizeof(w), "model.decoder.layers.%%d.self_attn.%s.weight", proj[p]);
			snprintf(b, sizeof(b), "model.decoder.layers.%%d.self_attn.%s.bias", proj[p]);
			W2(l, H, H, w, i);
			B1(l, H, b, i);
		}
		ONES(l, H, "model.decoder.layers.%d.self_attn_layer_norm.weight", i);
		ZEROS(l, H, "model.decoder.layers.%d.self_attn_layer_norm.bias", i);
		W2(l, F, H, "model.decoder.layers.%d.fc1.weight", i);
		B1(l, F, "model.decoder.layers.%d.fc1.bias", i);
		W2(l, H, F, "model.decoder.layers.%d.fc2.weight", i);
		B1(l, H, "model.decoder.layers.%d.fc2.bias", i);
		ONES(l, H, "model.decoder.layers.%d.final_layer_norm.weight", i);
		ZEROS(l, H, "model.decoder.layers.%d.final_layer_norm.bias", i);
	}
	ONES(l, H, "model.decoder.final_layer_norm.weight", 0);
	ZEROS(l, H, "model.decoder.final_layer_norm.bias", 0);
	if (o->tied_copy)
		W2(l, V, H, "lm_head.weight", 0)->seed_name = "model.decoder.embed_tokens.weight";
}

/* ---- random numbers: splitmix64 streams keyed by (seed, tensor name, chunk) so any thread count gives the
 * same bytes; values are an Irwin-Hall(4) approximation of a standard normal (fast, bounded, symmetric) ---- */
static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t name_hash(const char *s, uint64_t seed)
{
	uint64_t h = 1469598103934665603ull ^ seed;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

#define CHUNK (1u << 16) /* elements per random stream */

typedef struct fill_ctx {
	const gen_opts *o;
	const gtensor *t;
	uint64_t key;
	uint64_t first, n; /* element range of this batch */
	uint8_t *buf;
	int prezero; /* --sparsity applies to the default prune targets (linear weights) only */
} fill_ctx;

static void store(uint8_t *buf, fpk_dtype dt, uint64_t i, float v)
{
	if (dt == FPK_F32) {
		memcpy(buf + 4 * i, &v, 4);
	} else {
		uint16_t h = dt == FPK_F16 ? fpk_f32_to_f16(v) : fpk_f32_to_bf16(v);
		memcpy(buf + 2 * i, &h, 2);
	}
}

static int fill_chunk(void *ctx, size_t c, int tid)
{
	(void)tid;
	fill_ctx *f = ctx;
	uint64_t lo = f->first + (uint64_t)c * CHUNK, hi = lo + CHUNK;
	if (hi > f->first + f->n)
		hi = f->first + f->n;
	uint64_t s = f->key ^ ((lo / CHUNK) * 0xD1B54A32D192ED03ull);
	float scale = f->t->scale * 1.7320508f / 32768.0f; /* sqrt(12/4) / 2^15 */
	double sp = f->o->sparsity;
	uint64_t thr = (uint64_t)(sp * 18446744073709551615.0);
	for (uint64_t i = lo; i < hi; i++) {
		float v;
		if (f->t->fill == FILL_ONES) {
			v = 1.0f;
		} else if (f->t->fill == FILL_ZEROS) {
			v = 0.0f;
		} else {
			uint64_t r = splitmix(&s);
			int32_t sum = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) + (int32_t)((r >> 32) & 0xffff) +
				      (int32_t)(r >> 48) - 131070;
			v = (float)sum * scale;
			if (f->prezero && splitmix(&s) < thr)
				v = 0.0f;
		}
		store(f->buf, f->o->dtype, i - f->first, v);
	}
	return 0;
}

static int write_tensor(fpk_st_writer *w, const gen_opts *o, const gtensor *t, uint8_t *buf, uint64_t buf_elems)
{
	uint64_t numel = (uint64_t)t->shape[0] * (uint64_t)(t->ndim == 2 ? t->shape[1] : 1);
	fill_ctx f = {o, t, name_hash(t->seed_name ? t->seed_name : t->name, o->seed), 0, 0, buf,
		      o->sparsity > 0 && fpk_select_default(t->name, t->ndim)};
	for (uint64_t first = 0; first < numel; first += buf_elems) {
		f.first = first;
		f.n = numel - first < buf_elems ? numel - first : buf_elems;
		int rc = fpk_parallel_for((size_t)((f.n + CHUNK - 1) / CHUNK), o->threads, fill_chunk, &f);
		if (!rc)
			rc = fpk_st_writer_write(w, buf, (size_t)(f.n * fpk_dtypes[o->dtype].size));
		if (rc)
			return rc;
	}
	return 0;
}

static const char *torch_dtype(fpk_dtype dt)
{
	return dt == FPK_F32 ? "float32" : dt == FPK_F16 ? "float16" : "bfloat16";
}

static char *config_json(const gen_opts *o)
{
	static const char *const mt[] = {"llama", "mistral", "qwen2", "opt"};
	static const char *const ar[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "OPTForCausalLM"};
	cJSON *j = cJSON_CreateObject();
	cJSON *a = cJSON_AddArrayToObject(j, "architectures");
	cJSON_AddItemToArray(a, cJSON_CreateString(ar[o->arch]));
	cJSON_AddStringToObject(j, "model_type", mt[o->arch]);
	cJSON_AddNumberToObject(j, "hidden_size", o->hidden);
	cJSON_AddNumberToObject(j, "num_hidden_layers", o->layers);
	cJSON_AddNumberToObject(j, "num_attention_heads", o->heads);
	cJSON_AddNumberToObject(j, "vocab_size", o->vocab);
	cJSON_AddNumberToObject(j, "max_position_embeddings", o->max_pos);
	int tied = o->tied || o->tied_copy;
	if (o->arch == ARCH_OPT) {
		cJSON_AddNumberToObject(j, "ffn_dim", o->intermediate);
		cJSON_AddNumberToObject(j, "word_embed_proj_dim", o->hidden);
		cJSON_AddBoolToObject(j, "do_layer_norm_before", 1);
		cJSON_AddStringToObject(j, "activation_function", "relu");
		cJSON_AddBoolToObject(j, "enable_bias", 1);
		cJSON_AddBoolToObject(j, "layer_norm_elementwise_affine", 1);
		cJSON_AddNumberToObject(j, "dropout", 0.1);
		cJSON_AddNumberToObject(j, "bos_token_id", 2);
		cJSON_AddNumberToObject(j, "eos_token_id", 2);
		cJSON_AddNumberToObject(j, "pad_token_id", 1);
		cJSON_AddBoolToObject(j, "tie_word_embeddings", 1);
	} else {
		cJSON_AddNumberToObject(j, "num_key_value_heads", o->kv_heads);
		cJSON_AddNumberToObject(j, "head_dim", o->head_dim);
		cJSON_AddNumberToObject(j, "intermediate_size", o->intermediate);
		cJSON_AddStringToObject(j, "hidden_act", "silu");
		cJSON_AddNumberToObject(j, "rms_norm_eps", 1e-5);
		cJSON_AddNumberToObject(j, "rope_theta", o->arch == ARCH_QWEN2 ? 1000000.0 : 10000.0);
		cJSON_AddBoolToObject(j, "attention_bias", o->arch == ARCH_QWEN2);
		if (o->arch == ARCH_MISTRAL)
			cJSON_AddNullToObject(j, "sliding_window");
		cJSON_AddBoolToObject(j, "tie_word_embeddings", tied);
		cJSON_AddNumberToObject(j, "bos_token_id", 1);
		cJSON_AddNumberToObject(j, "eos_token_id", 2);
	}
	cJSON_AddNumberToObject(j, "initializer_range", 0.02);
	cJSON_AddStringToObject(j, "torch_dtype", torch_dtype(o->dtype));
	char *s = cJSON_Print(j);
	cJSON_Delete(j);
	return s;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: gen_checkpoint --out DIR [--preset demo|llama7b|llama70b|opt30b] [--arch llama|mistral|qwen2|opt]\n"
		   "  [--layers L] [--hidden H] [--heads N] [--kv-heads N] [--head-dim D] [--intermediate I] [--vocab V]\n"
		   "  [--max-pos P] [--dtype f32|f16|bf16] [--seed S] [--shards N] [--sparsity S] [--tied | --tied-copy]\n"
		   "  [--threads N]\n"
		   "Writes DIR/config.json and DIR/model.safetensors (or N shards and model.safetensors.index.json).\n"
		   "Weights ~ N(0, 0.02^2) (Irwin-Hall approximation), norms 1, deterministic from --seed.\n"
		   "--sparsity S pre-zeros about a fraction S of the linear weights (the default prune targets).\n"
		   "--tied: tie_word_embeddings, no lm_head stored; --tied-copy: tied, lm_head stored as an exact copy.\n"
		   "Presets: demo (Llama, 4 layers, hidden 512, 8/4 heads, intermediate 1536, vocab 512, f32),\n"
		   "  llama7b (Llama-2-7B shapes, f16, 2 layers unless --layers), llama70b (Llama-2-70B shapes, f16, 1 layer),\n"
		   "  opt30b (OPT-30B shapes, f16, 1 layer).\n");
}

static void preset(gen_opts *o, const char *p)
{
	if (!strcmp(p, "demo")) {
		*o = (gen_opts){.arch = ARCH_LLAMA, .layers = 4, .hidden = 512, .heads = 8, .kv_heads = 4,
				.intermediate = 1536, .vocab = 512, .max_pos = 512, .dtype = FPK_F32};
	} else if (!strcmp(p, "llama7b")) {
		*o = (gen_opts){.arch = ARCH_LLAMA, .layers = 2, .hidden = 4096, .heads = 32, .kv_heads = 32,
				.intermediate = 11008, .vocab = 32000, .max_pos = 4096, .dtype = FPK_F16};
	} else if (!strcmp(p, "llama70b")) {
		*o = (gen_opts){.arch = ARCH_LLAMA, .layers = 1, .hidden = 8192, .heads = 64, .kv_heads = 8,
				.intermediate = 28672, .vocab = 32000, .max_pos = 4096, .dtype = FPK_F16};
	} else if (!strcmp(p, "opt30b")) {
		*o = (gen_opts){.arch = ARCH_OPT, .layers = 1, .hidden = 7168, .heads = 56, .kv_heads = 56,
				.intermediate = 28672, .vocab = 50272, .max_pos = 2048, .dtype = FPK_F16};
	} else {
		die("unknown --preset (demo, llama7b, llama70b, opt30b)");
	}
}

static int int_arg(const char *s)
{
	char *e;
	long v = strtol(s, &e, 10);
	if (*e || v < 0 || v > (1l << 30))
		die("expected a non-negative integer argument");
	return (int)v;
}

int main(int argc, char **argv)
{
	gen_opts o;
	const char *pre = "demo";
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--preset") && i + 1 < argc)
			pre = argv[i + 1];
	preset(&o, pre);
	o.shards = 1;
	o.seed = 1;
	int arch_set = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--tied")) {
			o.tied = 1;
			continue;
		}
		if (!strcmp(a, "--tied-copy")) {
			o.tied_copy = 1;
			continue;
		}
		if (i + 1 >= argc) {
			usage(stderr);
			die("missing argument or unknown option");
		}
		const char *v = argv[++i];
		if (!strcmp(a, "--out"))
			o.out = v;
		else if (!strcmp(a, "--preset"))
			;
		else if (!strcmp(a, "--arch")) {
			arch_set = 1;
			if (!strcmp(v, "llama"))
				o.arch = ARCH_LLAMA;
			else if (!strcmp(v, "mistral"))
				o.arch = ARCH_MISTRAL;
			else if (!strcmp(v, "qwen2"))
				o.arch = ARCH_QWEN2;
			else if (!strcmp(v, "opt"))
				o.arch = ARCH_OPT;
			else
				die("unknown --arch (llama, mistral, qwen2, opt)");
		} else if (!strcmp(a, "--layers"))
			o.layers = int_arg(v);
		else if (!strcmp(a, "--hidden"))
			o.hidden = int_arg(v);
		else if (!strcmp(a, "--heads"))
			o.heads = int_arg(v);
		else if (!strcmp(a, "--kv-heads"))
			o.kv_heads = int_arg(v);
		else if (!strcmp(a, "--head-dim"))
			o.head_dim = int_arg(v);
		else if (!strcmp(a, "--intermediate"))
			o.intermediate = int_arg(v);
		else if (!strcmp(a, "--vocab"))
			o.vocab = int_arg(v);
		else if (!strcmp(a, "--max-pos"))
			o.max_pos = int_arg(v);
		else if (!strcmp(a, "--shards"))
			o.shards = int_arg(v);
		else if (!strcmp(a, "--threads"))
			o.threads = int_arg(v);
		else if (!strcmp(a, "--seed"))
			o.seed = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--sparsity")) {
			o.sparsity = atof(v);
			if (!(o.sparsity >= 0 && o.sparsity < 1))
				die("--sparsity must be in [0, 1)");
		} else if (!strcmp(a, "--dtype")) {
			if (!strcmp(v, "f32"))
				o.dtype = FPK_F32;
			else if (!strcmp(v, "f16"))
				o.dtype = FPK_F16;
			else if (!strcmp(v, "bf16"))
				o.dtype = FPK_BF16;
			else
				die("unknown --dtype (f32, f16, bf16)");
		} else {
			usage(stderr);
			die("unknown option");
		}
	}
	(void)arch_set;
	if (!o.out)
		die("--out DIR is required");
	if (o.layers < 1 || o.hidden < 1 || o.heads < 1 || o.vocab < 1 || o.intermediate < 1 || o.shards < 1)
		die("layers, hidden, heads, vocab, intermediate and shards must be positive");
	if (o.arch == ARCH_OPT)
		o.kv_heads = o.heads;
	if (o.kv_heads < 1 || o.kv_heads > o.heads || o.heads % o.kv_heads)
		die("--kv-heads must divide --heads");
	if (!o.head_dim) {
		if (o.hidden % o.heads)
			die("--hidden must be a multiple of --heads (or give --head-dim)");
		o.head_dim = o.hidden / o.heads;
	}
	if (o.arch == ARCH_OPT && o.head_dim * o.heads != o.hidden)
		die("OPT needs hidden = heads * head_dim");

	tlist l = {0};
	if (o.arch == ARCH_OPT)
		build_opt(&o, &l);
	else
		build_llama(&o, &l);
	if ((size_t)o.shards > l.n)
		o.shards = (int)l.n;

	if (fpk_mkdir_p(o.out))
		die(fpk_error_msg());
	char *cfg = config_json(&o), *cfg_path = fpk_path_join(o.out, "config.json");
	if (!cfg || !cfg_path || fpk_write_file_atomic(cfg_path, cfg, strlen(cfg)))
		die(fpk_error_msg());
	free(cfg);
	free(cfg_path);

	/* shards: contiguous runs of tensors of about equal bytes */
	unsigned es = fpk_dtypes[o.dtype].size;
	uint64_t total = 0;
	for (size_t i = 0; i < l.n; i++)
		total += (uint64_t)l.v[i].shape[0] * (uint64_t)(l.v[i].ndim == 2 ? l.v[i].shape[1] : 1) * es;
	uint64_t buf_elems = 1u << 22;
	uint8_t *buf = malloc(buf_elems * es);
	if (!buf)
		die("out of memory");
	cJSON *index = cJSON_CreateObject(), *wmap = NULL;
	if (o.shards > 1) {
		cJSON *md = cJSON_AddObjectToObject(index, "metadata");
		cJSON_AddNumberToObject(md, "total_size", (double)total);
		wmap = cJSON_AddObjectToObject(index, "weight_map");
	}
	size_t ti = 0;
	uint64_t done_bytes = 0;
	for (int s = 0; s < o.shards; s++) {
		char fname[64];
		if (o.shards > 1)
			snprintf(fname, sizeof(fname), "model-%05d-of-%05d.safetensors", s + 1, o.shards);
		else
			snprintf(fname, sizeof(fname), "model.safetensors");
		uint64_t goal = total * (uint64_t)(s + 1) / (uint64_t)o.shards;
		size_t first = ti;
		/* take tensors until the cumulative size reaches the goal; leave at least one per remaining shard */
		while (ti < l.n && (ti == first || done_bytes < goal) && l.n - ti > (size_t)(o.shards - 1 - s)) {
			done_bytes += (uint64_t)l.v[ti].shape[0] * (uint64_t)(l.v[ti].ndim == 2 ? l.v[ti].shape[1] : 1) * es;
			ti++;
		}
		if (s == o.shards - 1)
			while (ti < l.n) {
				done_bytes += (uint64_t)l.v[ti].shape[0] * (uint64_t)(l.v[ti].ndim == 2 ? l.v[ti].shape[1] : 1) * es;
				ti++;
			}
		char *path = fpk_path_join(o.out, fname);
		fpk_st_writer *w = NULL;
		int rc = fpk_st_writer_new(&w, path);
		if (!rc)
			rc = fpk_st_writer_meta(w, "format", "pt");
		for (size_t i = first; !rc && i < ti; i++) {
			rc = fpk_st_writer_add(w, l.v[i].name, o.dtype, l.v[i].ndim, l.v[i].shape);
			if (wmap)
				cJSON_AddStringToObject(wmap, l.v[i].name, fname);
		}
		if (!rc)
			rc = fpk_st_writer_begin(w);
		for (size_t i = first; !rc && i < ti; i++)
			rc = write_tensor(w, &o, &l.v[i], buf, buf_elems);
		if (!rc) {
			rc = fpk_st_writer_commit(w);
			w = NULL;
		}
		if (rc) {
			fpk_st_writer_abort(w);
			die(fpk_error_msg());
		}
		free(path);
	}
	if (o.shards > 1) {
		char *js = cJSON_Print(index), *ip = fpk_path_join(o.out, "model.safetensors.index.json");
		if (!js || !ip || fpk_write_file_atomic(ip, js, strlen(js)))
			die(fpk_error_msg());
		free(js);
		free(ip);
	}
	cJSON_Delete(index);
	free(buf);
	free(l.v);
	printf("gen_checkpoint: wrote %s: %zu tensors, %llu bytes of weights in %d file%s\n", o.out, l.n,
	       (unsigned long long)total, o.shards, o.shards > 1 ? "s" : "");
	return 0;
}
