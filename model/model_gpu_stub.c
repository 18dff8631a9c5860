/* model_gpu_stub.c: device selection, and the GPU entry points of a build without CUDA (they fail with FPK_EGPU).
 * Tested by tests/cli/generate_device.sh. */
#include "model_gpu.h"

#include <string.h>

int fpk_device_pick(const char *device, int *use_gpu)
{
	*use_gpu = 0;
	if (!device || !strcmp(device, "auto")) {
		*use_gpu = fpk_gpu_available();
		return 0;
	}
	if (!strcmp(device, "cpu"))
		return 0;
	if (!strcmp(device, "gpu")) {
		if (!fpk_gpu_available())
			return fpk_error_set(FPK_EGPU,
#ifdef FPK_HAVE_CUDA
				"--device gpu: no CUDA device is visible"
#else
				"--device gpu: this build has no CUDA support (rebuild with a CUDA toolkit)"
#endif
			);
		*use_gpu = 1;
		return 0;
	}
	return fpk_error_set(FPK_EUSAGE, "--device '%s' is not one of auto, gpu, cpu", device);
}

#ifndef FPK_HAVE_CUDA
int fpk_gpu_available(void) { return 0; }

int fpk_model_gpu_generate_greedy(const fpk_model *m, const int *prompt, int n_prompt, int steps, int *out, int *n_out)
{
	(void)m, (void)prompt, (void)n_prompt, (void)steps, (void)out;
	*n_out = 0;
	return fpk_error_set(FPK_EGPU, "this build has no CUDA support");
}

int fpk_model_gpu_qk_sums(const fpk_model *m, const int *tokens, int nb, int len, int modes, int half,
	double *sum[3], double timing[4], fpk_progress_fn progress, void *progress_ud)
{
	(void)m, (void)tokens, (void)nb, (void)len, (void)modes, (void)half, (void)sum, (void)timing, (void)progress, (void)progress_ud;
	return fpk_error_set(FPK_EGPU, "this build has no CUDA support");
}

int fpk_model_gpu_nll(const fpk_model *m, const int *tokens, size_t n, int ctx, fpk_dtype prec, double *mean_nll,
	size_t *count, float *logits, int nlog, fpk_gpu_eval_info *info)
{
	(void)m, (void)tokens, (void)n, (void)ctx, (void)prec, (void)logits, (void)nlog;
	*mean_nll = 0;
	*count = 0;
	if (info)
		memset(info, 0, sizeof(*info));
	return fpk_error_set(FPK_EGPU, "this build has no CUDA support");
}

int fpk_model_gpu_nll_hooked(const fpk_model *m, const int *tokens, size_t n, int ctx, fpk_dtype prec,
	const fpk_gpu_attend_hook *hook, double *mean_nll, size_t *count, float *logits, int nlog,
	fpk_gpu_eval_info *info)
{
	(void)hook;
	return fpk_model_gpu_nll(m, tokens, n, ctx, prec, mean_nll, count, logits, nlog, info);
}
#endif
