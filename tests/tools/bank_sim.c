/* bank_sim.c: simulated shared-memory bank conflicts of the kernel's scatter of Tiled-CSL entries (docs/format.md
 * 2.6): thread (warp, lane) loads vector lane + 32*warp + 128*i and stores item v with one 16-bit store; per store
 * instruction the load is, for the worst bank, the number of distinct 4-byte words its lanes hit. Averaged over all
 * store instructions of random matrices, with and without reordering. Usage: bank_sim [--check] [M K]
 * --check: exit 1 unless reordered < 1.7 and row-major > 2.5 at 70/80/90% sparsity (tests/cli/bank_sim.sh). */
#include "tcsl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* average worst-bank load per warp store instruction over every tile of t */
static double simulate(const fpk_tcsl *t, double *max_seen)
{
	int64_t T = t->tiles_m * t->tiles_k;
	uint64_t instr = 0, load = 0;
	*max_seen = 0;
	for (int64_t ti = 0; ti < T; ti++) {
		const uint32_t *e = t->values + (size_t)t->offsets[ti] * 4;
		int64_t V = t->offsets[ti + 1] - t->offsets[ti];
		for (int64_t g0 = 0; g0 < V; g0 += 32) { /* g0 = 32*warp + 128*i: one warp's 32 vectors */
			for (int v = 0; v < 4; v++) {
				unsigned words[32][32], nw[32] = {0};
				for (int lane = 0; lane < 32 && g0 + lane < V; lane++) {
					unsigned loc = e[(g0 + lane) * 4 + v] >> 16, word = loc / 2, bank = word % 32;
					int seen = 0;
					for (unsigned q = 0; q < nw[bank]; q++)
						seen |= words[bank][q] == word;
					if (!seen)
						words[bank][nw[bank]++] = word;
				}
				unsigned worst = 0;
				for (int b = 0; b < 32; b++)
					if (nw[b] > worst)
						worst = nw[b];
				instr++;
				load += worst;
				if (worst > *max_seen)
					*max_seen = worst;
			}
		}
	}
	return instr ? (double)load / (double)instr : 0.0;
}

int main(int argc, char **argv)
{
	int check = 0;
	int64_t m = 1024, k = 1024;
	int pos = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--check"))
			check = 1;
		else if (pos == 0 && ++pos)
			m = atoll(argv[i]);
		else
			k = atoll(argv[i]);
	}
	static const double sp[] = {0.5, 0.6, 0.7, 0.8, 0.9, 0.95};
	uint16_t *w = malloc((size_t)(m * k) * 2);
	int bad = 0;
	printf("bank_sim: %lld x %lld fp16, random Bernoulli masks; average (max) worst-bank load per warp store\n",
	       (long long)m, (long long)k);
	printf("%9s  %16s  %16s\n", "sparsity", "reordered", "row-major");
	for (size_t s = 0; s < sizeof(sp) / sizeof(sp[0]); s++) {
		for (int64_t i = 0; i < m * k; i++)
			w[i] = (double)(next() >> 11) / 9007199254740992.0 < sp[s] ? 0 : (uint16_t)(0x3c00 | (next() & 0x3ff));
		double avg[2], mx[2];
		for (int r = 0; r < 2; r++) {
			fpk_tcsl t;
			if (fpk_tcsl_encode(&t, w, m, k, FPK_F16, 1 - r, 0, 0)) {
				fprintf(stderr, "bank_sim: %s\n", fpk_error_msg());
				return 2;
			}
			avg[r] = simulate(&t, &mx[r]);
			fpk_tcsl_release(&t);
		}
		printf("%9.2f  %10.3f (%3.0f)  %10.3f (%3.0f)\n", sp[s], avg[0], mx[0], avg[1], mx[1]);
		if (check && sp[s] >= 0.7 && sp[s] <= 0.9 && (avg[0] >= 1.7 || avg[1] <= 2.5)) {
			fprintf(stderr, "bank_sim: at sparsity %.2f reordered %.3f (want < 1.7), row-major %.3f (want > 2.5)\n",
				sp[s], avg[0], avg[1]);
			bad = 1;
		}
	}
	free(w);
	return bad;
}
