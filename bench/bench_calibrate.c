/* bench_calibrate.c: GPU calibration speed on a large synthetic checkpoint (issue 6 anchor: 32 layers, hidden 4096,
 * 256 blocks x 512 tokens): end to end from disk, and the GPU split (weights read+upload, linear products,
 * attention, other). Run: bench/bench_calibrate.sh (generates the checkpoint with tests/tools/gen_checkpoint). */
#include "calibrate.h"
#include "model_gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int blocks = 256, len = 512, half = 1, threads = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--blocks") && i + 1 < argc)
			blocks = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--block-len") && i + 1 < argc)
			len = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--exact"))
			half = 0;
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else
			dir = argv[i];
	}
	if (!dir || blocks < 1 || len < 2) {
		fprintf(stderr, "usage: bench_calibrate MODEL_DIR [--blocks 256] [--block-len 512] [--exact] [--threads N]\n");
		return 2;
	}
	double t0 = fpk_now_s();
	fpk_model *m = NULL;
	if (fpk_model_load_lazy(&m, dir, threads)) {
		fprintf(stderr, "bench_calibrate: %s\n", fpk_error_msg());
		return 1;
	}
	double t_load = fpk_now_s() - t0;
	size_t n = (size_t)blocks * len;
	int *tok = malloc(n * sizeof(int));
	uint64_t s = 42;
	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		tok[i] = 3 + (int)((s >> 33) % (uint64_t)(m->cfg.vocab - 3));
	}
	double *sum[3];
	for (int k = 0; k < 3; k++)
		sum[k] = calloc((size_t)m->cfg.n_layers * m->q_dim, sizeof(double));
	double tm[4] = {0};
	double t1 = fpk_now_s();
	if (fpk_model_gpu_qk_sums(m, tok, blocks, len, 7, half, sum, tm, NULL, NULL)) {
		fprintf(stderr, "bench_calibrate: %s\n", fpk_error_msg());
		return 1;
	}
	double t_gpu = fpk_now_s() - t1;
	/* orders, as calibrate does */
	int *order = malloc((size_t)m->cfg.head_dim * sizeof(int));
	for (int k = 0; k < 3; k++)
		for (size_t r = 0; r < (size_t)m->cfg.n_layers * m->cfg.n_heads; r++)
			fpk_channel_order(sum[k] + r * m->cfg.head_dim, m->cfg.head_dim, order);
	double t_end = fpk_now_s() - t0;
	double compute = tm[1] + tm[2] + tm[3];
	printf("model %s: %d layers, hidden %d, heads %d/%d, head_dim %d, intermediate %d; %d blocks x %d tokens; %s\n", dir,
		m->cfg.n_layers, m->cfg.hidden, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.head_dim, m->cfg.intermediate, blocks,
		len, half ? "fp16 weights/linear inputs, fp32 accumulation, TF32 attention" : "fp32 exact");
	printf("| phase | seconds |\n| --- | --- |\n");
	printf("| load (config, mmap, embeddings to fp32) | %.2f |\n", t_load);
	printf("| weights read + host->GPU, layer by layer | %.2f |\n", tm[0]);
	printf("| linear products (q/k/v/o, MLP) | %.2f |\n", tm[1]);
	printf("| attention (scores, softmax, values) | %.2f |\n", tm[2]);
	printf("| other GPU kernels in the layer loop (norms, RoPE, statistics, residuals) | %.2f |\n", tm[3]);
	printf("| GPU forward + statistics, layer loop (linear + attention + other kernels) | %.2f |\n", compute);
	printf("| setup (CUDA context, cuBLAS, buffers, embeddings to the GPU) | %.2f |\n", t_gpu - tm[0] - compute);
	printf("| calibration call minus weights (layer loop + setup) | %.2f |\n", t_gpu - tm[0]);
	printf("| end to end (load .. orders) | %.2f |\n", t_end);
	printf("tokens/s: %.0f (GPU compute), %.0f (end to end)\n", n / (t_gpu - tm[0]), n / t_end);
	printf("check: layer 0 qk head 0 channel 0 mean %.6g\n", sum[2][0] / (double)n);
	fpk_model_free(m);
	return 0;
}
