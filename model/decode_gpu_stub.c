/* decode_gpu_stub.c: the decode engine's shape helpers (every build) and, in a build without CUDA, its other
 * entry points, which fail with FPK_EGPU (model/decode_gpu.h). */
#include "decode_gpu.h"

#include <string.h>

int fpk_dec_linear_shape(const fpk_dec_config *c, int which, int64_t *m, int64_t *k)
{
	int64_t hd = (int64_t)c->heads * c->head_dim, kvd = (int64_t)c->kv_heads * c->head_dim;
	switch (which) {
	case FPK_DEC_QKV: *m = hd + 2 * kvd, *k = c->hidden; return 0;
	case FPK_DEC_O: *m = c->hidden, *k = hd; return 0;
	case FPK_DEC_UP: *m = (c->arch == FPK_DEC_LLAMA ? 2 : 1) * (int64_t)c->ffn, *k = c->hidden; return 0;
	case FPK_DEC_DOWN: *m = c->hidden, *k = c->ffn; return 0;
	}
	*m = *k = 0;
	return fpk_error_set(FPK_EUSAGE, "decode: linear id %d is not one of qkv, o, up, down", which);
}

size_t fpk_dec_vec_len(const fpk_dec_config *c, int which)
{
	int opt = c->arch == FPK_DEC_OPT;
	switch (which) {
	case FPK_DEC_NORM1_W: case FPK_DEC_NORM2_W: return (size_t)c->hidden;
	case FPK_DEC_NORM1_B: case FPK_DEC_NORM2_B: case FPK_DEC_O_B: case FPK_DEC_DOWN_B:
		return opt ? (size_t)c->hidden : 0;
	case FPK_DEC_QKV_B: return opt ? (size_t)(c->heads + 2 * c->kv_heads) * c->head_dim : 0;
	case FPK_DEC_UP_B: return opt ? (size_t)c->ffn : 0;
	}
	return 0;
}

size_t fpk_dec_global_len(const fpk_dec_config *c, int which)
{
	switch (which) {
	case FPK_DEC_EMBED: return (size_t)c->vocab * c->hidden;
	case FPK_DEC_POS_EMBED: return c->arch == FPK_DEC_OPT ? (size_t)c->max_pos * c->hidden : 0;
	case FPK_DEC_FINAL_W: return (size_t)c->hidden;
	case FPK_DEC_FINAL_B: return c->arch == FPK_DEC_OPT ? (size_t)c->hidden : 0;
	case FPK_DEC_LM_HEAD: return (size_t)c->vocab * c->hidden;
	}
	return 0;
}

#ifndef FPK_HAVE_CUDA
static int no_cuda(void) { return fpk_error_set(FPK_EGPU, "decode engine: this build has no CUDA support"); }

int fpk_dec_model_new(const fpk_dec_config *c, fpk_dec_model **out) { (void)c; *out = NULL; return no_cuda(); }
void fpk_dec_model_free(fpk_dec_model *m) { (void)m; }
const fpk_dec_config *fpk_dec_model_config(const fpk_dec_model *m) { (void)m; return NULL; }
int fpk_dec_linear_dense(fpk_dec_model *m, int layer, int which, void **w)
{
	(void)m, (void)layer, (void)which;
	*w = NULL;
	return no_cuda();
}
int fpk_dec_linear_sparse(fpk_dec_model *m, int layer, int which, const fpk_tcsl *t)
{
	(void)m, (void)layer, (void)which, (void)t;
	return no_cuda();
}
int fpk_dec_vector(fpk_dec_model *m, int layer, int which, void **dev, size_t *n)
{
	(void)m, (void)layer, (void)which;
	*dev = NULL, *n = 0;
	return no_cuda();
}
int fpk_dec_global(fpk_dec_model *m, int which, void **dev, size_t *n)
{
	(void)m, (void)which;
	*dev = NULL, *n = 0;
	return no_cuda();
}
void fpk_dec_model_bytes(const fpk_dec_model *m, fpk_dec_bytes *b) { (void)m; memset(b, 0, sizeof(*b)); }
int fpk_dec_state_new(const fpk_dec_model *m, int batch, int max_len, fpk_dec_state **out)
{
	(void)m, (void)batch, (void)max_len;
	*out = NULL;
	return no_cuda();
}
void fpk_dec_state_free(fpk_dec_state *s) { (void)s; }
uint64_t fpk_dec_state_kv_bytes(const fpk_dec_state *s) { (void)s; return 0; }
uint64_t fpk_dec_state_other_bytes(const fpk_dec_state *s) { (void)s; return 0; }
int fpk_dec_set_positions(fpk_dec_state *s, const int32_t *pos) { (void)s, (void)pos; return no_cuda(); }
int32_t *fpk_dec_tokens(fpk_dec_state *s) { (void)s; return NULL; }
float *fpk_dec_logits(fpk_dec_state *s) { (void)s; return NULL; }
int fpk_dec_kv(fpk_dec_state *s, int layer, void **k, void **v)
{
	(void)s, (void)layer;
	*k = *v = NULL;
	return no_cuda();
}
int fpk_dec_step(const fpk_dec_model *m, fpk_dec_state *s, unsigned phases, void *stream)
{
	(void)m, (void)s, (void)phases, (void)stream;
	return no_cuda();
}
#endif
