/* bench_ds.cu: Double Sparsity decode step vs our dense flash-decoding kernel, same run, on the GPU.
 * Run: build-cuda/bench/bench_ds [--quick]; results go to docs/BENCHMARKS.md "## double sparsity".
 * FPK_DS_ONLY=B,L,Hkv runs one shape (for a profiler).
 * Timing: each sample is one CUDA-graph replay of STEPS decode steps over rotating input sets (K, V, labels;
 * rotation beats the L2), timed with CUDA events; the median of SAMPLES samples / STEPS is reported. */
#include "ds_attention.h"
#include "fpk_common.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CU(x)                                                                                                \
	do {                                                                                                     \
		cudaError_t e_ = (x);                                                                                \
		if (e_ != cudaSuccess) {                                                                             \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));             \
			exit(5);                                                                                         \
		}                                                                                                    \
	} while (0)
#define OK(x)                                                                                                \
	do {                                                                                                     \
		if ((x)) {                                                                                           \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, fpk_error_msg());                    \
			exit(5);                                                                                         \
		}                                                                                                    \
	} while (0)

enum { STEPS = 8, SAMPLES = 15, MAXSETS = 8 };

__global__ void fill_kernel(__half *x, size_t n, uint64_t seed)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
		z ^= z >> 31;
		z *= 0xbf58476d1ce4e5b9ull;
		z ^= z >> 29;
		float u = (float)(z >> 40) / (float)(1 << 24); /* [0, 1) */
		x[i] = __float2half((u - 0.5f) * 3.4f);
	}
}

static int cmpf(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* median microseconds per step of a graph holding STEPS steps */
static float time_graph(cudaGraphExec_t ge, cudaStream_t st)
{
	cudaEvent_t a, b;
	CU(cudaEventCreate(&a));
	CU(cudaEventCreate(&b));
	float t[SAMPLES];
	for (int w = 0; w < 3; w++)
		CU(cudaGraphLaunch(ge, st));
	for (int i = 0; i < SAMPLES; i++) {
		CU(cudaEventRecord(a, st));
		CU(cudaGraphLaunch(ge, st));
		CU(cudaEventRecord(b, st));
		CU(cudaEventSynchronize(b));
		CU(cudaEventElapsedTime(&t[i], a, b));
	}
	qsort(t, SAMPLES, sizeof(float), cmpf);
	CU(cudaEventDestroy(a));
	CU(cudaEventDestroy(b));
	return t[SAMPLES / 2] * 1000.0f / STEPS;
}

typedef struct stage_t {
	int B, L, Hkv, setting;
	float score, select, attend;
} stage_t;
static stage_t stage_log[64];
static int nstage;

typedef struct ds_setting {
	const char *name;
	int r, fmt;
} ds_setting;

int main(int argc, char **argv)
{
	int quick = argc > 1 && !strcmp(argv[1], "--quick");
	int onlyB = 0, onlyL = 0, onlyH = 0;
	const char *only = getenv("FPK_DS_ONLY");
	if (only && sscanf(only, "%d,%d,%d", &onlyB, &onlyL, &onlyH) != 3) {
		fprintf(stderr, "bench_ds: FPK_DS_ONLY='%s': expected B,L,Hkv\n", only);
		return 2;
	}
	int Bs[] = {1, 8}, Ls[] = {8192, 32768, 131072}, Hkvs[] = {8, 32};
	const int H = 32, d = 128;
	ds_setting set[2] = {{"r=d/16 fp16", d / 16, FPK_DS_LABEL_16}, {"r=d/8 4-bit", d / 8, FPK_DS_LABEL_Q4}};
	cudaDeviceProp prop;
	CU(cudaGetDeviceProperties(&prop, 0));
	time_t now = time(NULL);
	char date[64];
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("# bench_ds on %s (%d SMs, L2 %d MB), %s; median of %d graph replays x %d steps\n", prop.name,
	       prop.multiProcessorCount, prop.l2CacheSize >> 20, date, SAMPLES, STEPS);
	printf("| B | L | Hkv | dense us | dense TB/s (K+V) | DS fp16 r=8 us | speedup | TB/s (min bytes) | DS 4-bit r=16 us | speedup | TB/s (min bytes) |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
	cudaStream_t st;
	CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
	for (int bi = 0; bi < 2; bi++)
		for (int li = 0; li < 3; li++)
			for (int hi = 0; hi < 2; hi++) {
				int B = Bs[bi], L = Ls[li], Hkv = Hkvs[hi];
				if (quick && (L != 32768 || B != 1))
					continue;
				if (only && (B != onlyB || L != onlyL || Hkv != onlyH))
					continue;
				fpk_ds_shape s = {B, H, Hkv, d, L, FPK_F16};
				size_t nkv = (size_t)B * Hkv * L * d, kvbytes = nkv * 2 * 2;
				int nsets = (int)((512ull << 20) / kvbytes) + 1;
				if (nsets > MAXSETS)
					nsets = MAXSETS;
				__half *q, *k[MAXSETS], *v[MAXSETS];
				CU(cudaMalloc(&q, sizeof(__half) * B * H * d));
				fill_kernel<<<64, 256>>>(q, (size_t)B * H * d, 7);
				for (int i = 0; i < nsets; i++) {
					CU(cudaMalloc(&k[i], nkv * 2));
					CU(cudaMalloc(&v[i], nkv * 2));
					fill_kernel<<<4096, 256>>>(k[i], nkv, 100 + i);
					fill_kernel<<<4096, 256>>>(v[i], nkv, 200 + i);
				}
				int32_t *lens, *hl = (int32_t *)malloc(sizeof(int32_t) * B);
				for (int b = 0; b < B; b++)
					hl[b] = L;
				CU(cudaMalloc(&lens, sizeof(int32_t) * B));
				CU(cudaMemcpy(lens, hl, sizeof(int32_t) * B, cudaMemcpyHostToDevice));
				float *out;
				CU(cudaMalloc(&out, sizeof(float) * B * H * d));
				fpk_ds_workspace *ws;
				OK(fpk_ds_workspace_new(&s, L / 16, &ws));

				/* dense */
				cudaGraph_t g;
				cudaGraphExec_t ge;
				CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
				for (int i = 0; i < STEPS; i++) {
					fpk_ds_dense_params dp = {s, q, k[i % nsets], v[i % nsets], lens, out};
					OK(fpk_ds_dense_decode(&dp, ws, st));
				}
				CU(cudaStreamEndCapture(st, &g));
				CU(cudaGraphInstantiate(&ge, g, 0));
				float tdense = time_graph(ge, st);
				CU(cudaGraphExecDestroy(ge));
				CU(cudaGraphDestroy(g));
				double dense_tbs = kvbytes / (tdense * 1e-6) / 1e12;
				printf("| %d | %dK | %d | %.1f | %.2f |", B, L / 1024, Hkv, tdense, dense_tbs);

				for (int si = 0; si < 2; si++) {
					int r = set[si].r;
					int32_t *hch = (int32_t *)malloc(sizeof(int32_t) * Hkv * r), *ch;
					for (int x = 0; x < Hkv; x++)
						for (int j = 0; j < r; j++)
							hch[x * r + j] = (j * 8 + x) % d; /* distinct within a row for r <= 16 */
					CU(cudaMalloc(&ch, sizeof(int32_t) * Hkv * r));
					CU(cudaMemcpy(ch, hch, sizeof(int32_t) * Hkv * r, cudaMemcpyHostToDevice));
					fpk_ds_label_cfg c = {r, set[si].fmt, 0, ch};
					size_t lb, sb;
					fpk_ds_label_cache_bytes(&s, &c, &lb, &sb);
					uint8_t *lab[MAXSETS];
					uint16_t *sca[MAXSETS];
					for (int i = 0; i < nsets; i++) {
						CU(cudaMalloc(&lab[i], lb));
						CU(cudaMalloc(&sca[i], sb ? sb : 4));
						fpk_ds_label_params lp = {s, c, k[i], lens, NULL, lab[i], sb ? sca[i] : NULL};
						OK(fpk_ds_label_build(&lp, st));
					}
					CU(cudaStreamSynchronize(st));
					float tst[3];
					for (int stop = 1; stop <= 3; stop++) { /* score, +select, +attention (the step) */
						CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
						for (int i = 0; i < STEPS; i++) {
							int z = i % nsets;
							fpk_ds_decode_params dp = {s, c, q, k[z], v[z], lens, lab[z], sb ? sca[z] : NULL,
										   0, 0, 16, 0, out, stop % 3};
							OK(fpk_ds_decode(&dp, ws, st));
						}
						CU(cudaStreamEndCapture(st, &g));
						CU(cudaGraphInstantiate(&ge, g, 0));
						tst[stop - 1] = time_graph(ge, st);
						CU(cudaGraphExecDestroy(ge));
						CU(cudaGraphDestroy(g));
					}
					float tds = tst[2];
					stage_log[nstage++] = (stage_t){B, L, Hkv, si, tst[0], tst[1] - tst[0], tst[2] - tst[1]};
					/* bytes a step must read: labels (+scales) and the selected K and V rows */
					double need = (double)lb + sb + (double)B * Hkv * (L / 16) * d * 2 * 2;
					printf(" %.1f | %.1fx | %.2f |", tds, tdense / tds, need / (tds * 1e-6) / 1e12);
					for (int i = 0; i < nsets; i++) {
						CU(cudaFree(lab[i]));
						CU(cudaFree(sca[i]));
					}
					CU(cudaFree(ch));
					free(hch);
				}
				printf("\n");
				fflush(stdout);
				fpk_ds_workspace_free(ws);
				for (int i = 0; i < nsets; i++) {
					CU(cudaFree(k[i]));
					CU(cudaFree(v[i]));
				}
				CU(cudaFree(q));
				CU(cudaFree(lens));
				CU(cudaFree(out));
				free(hl);
			}
	printf("\nstage split of the DS step (us; graph replays of the step cut after each stage, differences; where the fused "
	       "score + select kernel runs, \"score\" includes the selection and \"select\" is 0):\n");
	printf("| B | L | Hkv | setting | score | select | attention |\n|---|---|---|---|---|---|---|\n");
	for (int i = 0; i < nstage; i++)
		printf("| %d | %dK | %d | %s | %.1f | %.1f | %.1f |\n", stage_log[i].B, stage_log[i].L / 1024, stage_log[i].Hkv,
		       set[stage_log[i].setting].name, stage_log[i].score, stage_log[i].select, stage_log[i].attend);
	CU(cudaGetLastError());
	return 0;
}
