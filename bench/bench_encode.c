/* bench_encode.c: Tiled-CSL encoder throughput in MB/s of dense fp16 input (default 28672 x 7168, 80% sparsity,
 * random normal values, Bernoulli mask), 1 thread and all threads, best of --reps. Run: build/bench/bench_encode
 * [M K SPARSITY REPS] [--no-reorder]. Results go to docs/BENCHMARKS.md "## encode". The cpu columns (process CPU
 * time, all threads) stay meaningful when other jobs share the machine; MB/s is wall-clock. */
#include "tcsl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	int64_t m = 28672, k = 7168;
	double sparsity = 0.8;
	int reps = 3, reorder = 1, pos = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-reorder")) {
			reorder = 0;
			continue;
		}
		switch (pos++) {
		case 0: m = atoll(argv[i]); break;
		case 1: k = atoll(argv[i]); break;
		case 2: sparsity = atof(argv[i]); break;
		case 3: reps = atoi(argv[i]); break;
		}
	}
	size_t n = (size_t)(m * k);
	uint16_t *w = malloc(n * 2);
	if (!w) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		double u = (double)(next() >> 11) / 9007199254740992.0;
		if (u < sparsity) {
			w[i] = 0;
			continue;
		}
		double a = ((double)(next() >> 11) + 1) / 9007199254740993.0, b = (double)(next() >> 11) / 9007199254740992.0;
		float f = (float)(0.02 * sqrt(-2 * log(a)) * cos(6.283185307179586 * b));
		uint16_t h = fpk_f32_to_f16(f);
		w[i] = (h & 0x7fff) ? h : 0x0001;
	}
	double mb = (double)n * 2 / 1e6;
	int all = fpk_default_threads();
	int counts[2] = {1, all};
	printf("bench_encode: W %lld x %lld fp16 (%.1f MB dense), sparsity %.2f, %s, best of %d\n", (long long)m,
	       (long long)k, mb, sparsity, reorder ? "reorder" : "no-reorder", reps);
	printf("%8s  %10s  %10s  %14s  %12s  %10s  %12s\n", "threads", "seconds", "MB/s", "MB/s/thread", "entries",
	       "cpu s", "MB/cpu-s");
	for (int c = 0; c < (all > 1 ? 2 : 1); c++) {
		double best = 1e30, best_cpu = 1e30;
		uint64_t ne = 0;
		for (int r = 0; r < reps; r++) {
			fpk_tcsl t;
			double t0 = fpk_now_s(), c0 = cpu_s();
			if (fpk_tcsl_encode(&t, w, m, k, FPK_F16, reorder, 0, counts[c])) {
				fprintf(stderr, "encode failed: %s\n", fpk_error_msg());
				return 1;
			}
			double dt = fpk_now_s() - t0, dc = cpu_s() - c0;
			if (dc < best_cpu)
				best_cpu = dc;
			if (dt < best)
				best = dt;
			ne = t.n_entries;
			fpk_tcsl_release(&t);
		}
		printf("%8d  %10.4f  %10.1f  %14.1f  %12llu  %10.4f  %12.1f\n", counts[c], best, mb / best, mb / best / counts[c],
		       (unsigned long long)ne, best_cpu, mb / best_cpu);
	}
	free(w);
	return 0;
}
