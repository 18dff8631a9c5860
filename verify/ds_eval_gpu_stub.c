/* ds_eval_gpu_stub.c: the GPU Double Sparsity evaluation of a build without CUDA (every call fails with FPK_EGPU).
 * Tested by tests/cli/verify_channels.sh (--device gpu on a CPU-only build). */
#include "ds_eval_gpu.h"

#ifndef FPK_HAVE_CUDA
int fpk_ds_gpu_new(const fpk_ds_eval_cfg *c, int n_layers, int kv_dtype, fpk_ds_gpu **out)
{
	(void)c, (void)n_layers, (void)kv_dtype;
	*out = NULL;
	return fpk_error_set(FPK_EGPU, "this build has no CUDA support");
}

int fpk_ds_gpu_attend(void *ud, int layer, int nb, int Tq, int max_nb, int max_T, const float *q, const float *kc,
	const float *vc, float *att)
{
	(void)ud, (void)layer, (void)nb, (void)Tq, (void)max_nb, (void)max_T, (void)q, (void)kc, (void)vc, (void)att;
	return fpk_error_set(FPK_EGPU, "this build has no CUDA support");
}

int fpk_ds_gpu_stats(fpk_ds_gpu *g, fpk_ds_eval_stats *st)
{
	(void)g, (void)st;
	return fpk_error_set(FPK_EGPU, "this build has no CUDA support");
}

int fpk_ds_gpu_max_windows(const fpk_ds_gpu *g)
{
	(void)g;
	return 1;
}

void fpk_ds_gpu_timing(const fpk_ds_gpu *g, double *seconds, uint64_t *steps)
{
	(void)g;
	*seconds = 0;
	*steps = 0;
}

void fpk_ds_gpu_free(fpk_ds_gpu *g) { (void)g; }
#endif
