/* magsel.c: linear-time exact magnitude selection: histograms over magnitude bit patterns (16-bit: 32768 keys; F32:
 * a radix select over 16 + 15 bits), per-row radix select (8-bit digits), N:M groups, and the apply pass.
 * Tested by tests/unit/test_prune.c. */
/* the threshold and counting loops are written to be vectorized; GCC does that from -O3 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "magsel.h"

/* the vectorized loops get an AVX2 clone, picked at load time where the CPU has it */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FPK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FPK_CLONES
#endif

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys ---- */

/* global keys of F16 elements: the f32 bit pattern of the magnitude, from a table */
static uint32_t g_f16_gkey[32768];
static pthread_once_t g_lut_once = PTHREAD_ONCE_INIT;

static void lut_init_full(void)
{
	for (uint32_t h = 0; h < 32768; h++) {
		float f = fpk_f16_to_f32((uint16_t)h);
		uint32_t u;
		memcpy(&u, &f, 4);
		g_f16_gkey[h] = u & 0x7fffffffu;
	}
}

void fpk_magsel_init(void)
{
	pthread_once(&g_lut_once, lut_init_full);
}

int fpk_magsel_kind(fpk_dtype dt, int global, int *kind)
{
	switch (dt) {
	case FPK_F16: *kind = global ? KEY_F16G : KEY_F16; return 0;
	case FPK_BF16: *kind = global ? KEY_BF16G : KEY_BF16; return 0;
	case FPK_F32: *kind = KEY_F32; return 0;
	default: return -1;
	}
}

static inline __attribute__((always_inline)) uint32_t kget(const uint8_t *d, int kind, uint64_t i)
{
	uint16_t h;
	uint32_t u;
	switch (kind) {
	case KEY_F16:
	case KEY_BF16:
		memcpy(&h, d + 2 * i, 2);
		return h & 0x7fffu;
	case KEY_F16G:
		memcpy(&h, d + 2 * i, 2);
		return g_f16_gkey[h & 0x7fffu];
	case KEY_BF16G:
		memcpy(&h, d + 2 * i, 2);
		return (uint32_t)(h & 0x7fffu) << 16;
	default:
		memcpy(&u, d + 4 * i, 4);
		return u & 0x7fffffffu;
	}
}

uint32_t fpk_magsel_key(const void *data, int kind, uint64_t i)
{
	fpk_magsel_init();
	return kget(data, kind, i);
}

int fpk_magsel_bits(int kind)
{
	return kind == KEY_F16 || kind == KEY_BF16 ? 15 : 31;
}

uint32_t fpk_magsel_nonfinite(int kind)
{
	switch (kind) {
	case KEY_F16: return 0x7c00u;
	case KEY_BF16: return 0x7f80u;
	default: return 0x7f800000u;
	}
}

unsigned fpk_magsel_esize(int kind)
{
	return kind == KEY_F32 ? 4 : 2;
}

double fpk_magsel_value(uint32_t key, int kind)
{
	float f;
	switch (kind) {
	case KEY_F16: return fpk_f16_to_f32((uint16_t)key);
	case KEY_BF16: return fpk_bf16_to_f32((uint16_t)key);
	default: memcpy(&f, &key, 4); return f;
	}
}

/* ---- one histogram pass over [lo, hi): counts keys whose bits above pshift equal pval into
 * hist[(key >> shift) & mask]; also counts zeros and finds the first non-finite index (first pass only) ---- */

static inline __attribute__((always_inline)) void hist_k(const uint8_t *d, int kind, uint64_t lo, uint64_t hi,
							  const fpk_magsel_level *lv, uint32_t *hist, uint64_t *zeros,
							  uint64_t *first_bad)
{
	uint64_t z = 0, bad = UINT64_MAX;
	uint32_t nf = fpk_magsel_nonfinite(kind);
	if (zeros) {
		for (uint64_t i = lo; i < hi; i++) {
			uint32_t k = kget(d, kind, i);
			z += k == 0;
			if (k >= nf && bad == UINT64_MAX)
				bad = i;
			if (((uint64_t)k >> lv->pshift) == lv->pval)
				hist[(k >> lv->shift) & lv->mask]++;
		}
		*zeros += z;
		if (bad < *first_bad)
			*first_bad = bad;
	} else {
		for (uint64_t i = lo; i < hi; i++) {
			uint32_t k = kget(d, kind, i);
			if (((uint64_t)k >> lv->pshift) == lv->pval)
				hist[(k >> lv->shift) & lv->mask]++;
		}
	}
}

void fpk_magsel_hist(const void *data, int kind, uint64_t lo, uint64_t hi, const fpk_magsel_level *lv,
		     uint32_t *hist, uint64_t *zeros, uint64_t *first_bad)
{
	const uint8_t *d = data;
	switch (kind) {
	case KEY_F16: hist_k(d, KEY_F16, lo, hi, lv, hist, zeros, first_bad); break;
	case KEY_BF16: hist_k(d, KEY_BF16, lo, hi, lv, hist, zeros, first_bad); break;
	case KEY_F16G: hist_k(d, KEY_F16G, lo, hi, lv, hist, zeros, first_bad); break;
	case KEY_BF16G: hist_k(d, KEY_BF16G, lo, hi, lv, hist, zeros, first_bad); break;
	default: hist_k(d, KEY_F32, lo, hi, lv, hist, zeros, first_bad); break;
	}
}

/* the same pass into 4 interleaved sub-histograms (element i counts in hist + (i % 4) * bins), which breaks the
 * store-to-load chains of repeated bins; zeros are counted and non-finite values located as in fpk_magsel_hist */
/* shapes of a level known at compile time: every key counted in bin key (15-bit), every key in bin key >> 15
 * (first F32 level), keys with key >> 15 == pval in bin key & 0x7fff (second F32 level), or the general case */
enum { LV_LOW15, LV_HIGH16, LV_PREFIX15, LV_ANY };

static int level_shape(const fpk_magsel_level *lv)
{
	if (lv->pshift == 15 && lv->pval == 0 && lv->shift == 0 && lv->mask == 0x7fff)
		return LV_LOW15;
	if (lv->pshift == 31 && lv->pval == 0 && lv->shift == 15 && lv->mask == 0xffff)
		return LV_HIGH16;
	if (lv->pshift == 15 && lv->shift == 0 && lv->mask == 0x7fff)
		return LV_PREFIX15;
	return LV_ANY;
}

static inline __attribute__((always_inline)) void hist4_k(const uint8_t *d, int kind, int shape, uint64_t lo,
							   uint64_t hi, const fpk_magsel_level *lv, uint32_t *hist,
							   size_t bins, uint64_t *zeros, uint64_t *first_bad)
{
	uint32_t nf = fpk_magsel_nonfinite(kind), bad = 0;
	uint64_t z = 0, i = lo;
	const unsigned ps = shape == LV_LOW15 || shape == LV_PREFIX15 ? 15 : shape == LV_HIGH16 ? 31 : lv->pshift;
	const unsigned sh = shape == LV_HIGH16 ? 15 : shape == LV_ANY ? lv->shift : 0;
	const uint64_t pv = shape == LV_LOW15 || shape == LV_HIGH16 ? 0 : lv->pval;
	const uint32_t mk = shape == LV_HIGH16 ? 0xffff : shape == LV_ANY ? lv->mask : 0x7fff;
	uint32_t *h0 = hist, *h1 = hist + bins, *h2 = hist + 2 * bins, *h3 = hist + 3 * bins;
	/* 15-bit keys: zeros are bin 0 and non-finite values the top bins, so the caller reads both off the
	 * histogram; the first F32 level finds non-finite values in its top bins the same way */
	const int cz = zeros && shape != LV_LOW15, cb = first_bad && shape != LV_LOW15 && shape != LV_HIGH16;
	for (; i + 4 <= hi; i += 4) {
		uint32_t k0 = kget(d, kind, i), k1 = kget(d, kind, i + 1), k2 = kget(d, kind, i + 2), k3 = kget(d, kind, i + 3);
		if (cz)
			z += (uint64_t)((k0 == 0) + (k1 == 0) + (k2 == 0) + (k3 == 0));
		if (cb)
			bad |= (uint32_t)((k0 >= nf) | (k1 >= nf) | (k2 >= nf) | (k3 >= nf));
		if (((uint64_t)k0 >> ps) == pv)
			h0[(k0 >> sh) & mk]++;
		if (((uint64_t)k1 >> ps) == pv)
			h1[(k1 >> sh) & mk]++;
		if (((uint64_t)k2 >> ps) == pv)
			h2[(k2 >> sh) & mk]++;
		if (((uint64_t)k3 >> ps) == pv)
			h3[(k3 >> sh) & mk]++;
	}
	for (; i < hi; i++) {
		uint32_t k = kget(d, kind, i);
		z += k == 0;
		bad |= k >= nf;
		if (((uint64_t)k >> ps) == pv)
			h0[(k >> sh) & mk]++;
	}
	if (cz)
		*zeros += z;
	if (cb && bad)
		for (i = lo; i < hi; i++)
			if (kget(d, kind, i) >= nf) {
				if (i < *first_bad)
					*first_bad = i;
				break;
			}
}

static void fpk_magsel_hist4(const void *data, int kind, uint64_t lo, uint64_t hi, const fpk_magsel_level *lv,
			     uint32_t *hist, size_t bins, uint64_t *zeros, uint64_t *first_bad)
{
	const uint8_t *d = data;
	int shape = level_shape(lv);
#define H4(K)                                                                                                    \
	do {                                                                                                     \
		if (shape == LV_LOW15)                                                                               \
			hist4_k(d, K, LV_LOW15, lo, hi, lv, hist, bins, zeros, first_bad);                               \
		else if (shape == LV_HIGH16)                                                                         \
			hist4_k(d, K, LV_HIGH16, lo, hi, lv, hist, bins, zeros, first_bad);                              \
		else if (shape == LV_PREFIX15)                                                                       \
			hist4_k(d, K, LV_PREFIX15, lo, hi, lv, hist, bins, zeros, first_bad);                            \
		else                                                                                                 \
			hist4_k(d, K, LV_ANY, lo, hi, lv, hist, bins, zeros, first_bad);                                 \
	} while (0)
	switch (kind) {
	case KEY_F16: H4(KEY_F16); break;
	case KEY_BF16: H4(KEY_BF16); break;
	case KEY_F16G: H4(KEY_F16G); break;
	case KEY_BF16G: H4(KEY_BF16G); break;
	default: H4(KEY_F32); break;
	}
#undef H4
}

/* ---- count of key == T over [lo, hi) ---- */
static inline __attribute__((always_inline)) uint64_t eq_k(const uint8_t *d, int kind, uint64_t lo, uint64_t hi,
							    uint32_t T)
{
	uint64_t c = 0;
	while (lo < hi) {
		uint64_t end = hi - lo > (1u << 30) ? lo + (1u << 30) : hi;
		uint32_t c32 = 0;
		for (uint64_t i = lo; i < end; i++)
			c32 += kget(d, kind, i) == T;
		c += c32;
		lo = end;
	}
	return c;
}

FPK_CLONES uint64_t fpk_magsel_count_eq(const void *data, int kind, uint64_t lo, uint64_t hi, uint32_t T)
{
	const uint8_t *d = data;
	switch (kind) {
	case KEY_F16: return eq_k(d, KEY_F16, lo, hi, T);
	case KEY_BF16: return eq_k(d, KEY_BF16, lo, hi, T);
	case KEY_F16G: return eq_k(d, KEY_F16G, lo, hi, T);
	case KEY_BF16G: return eq_k(d, KEY_BF16G, lo, hi, T);
	default: return eq_k(d, KEY_F32, lo, hi, T);
	}
}

/* ---- apply over [lo, hi): key < T pruned; key == T pruned while *eq_budget > 0 (in index order); pruned
 * non-zero elements become +0, everything else keeps its bits. out (may be NULL) is indexed like data.
 * The work is done by a branch-free threshold pass (prune key < Tc), so ties are handled by splitting the range
 * at the last tie that is pruned: [lo, p] with Tc = T + 1, (p, hi) with Tc = T. ---- */
static inline __attribute__((always_inline)) uint64_t cut_k(const uint8_t *d, int kind, uint64_t lo, uint64_t hi,
							     uint32_t Tc, uint8_t *out)
{
	uint64_t zeros = 0;
	while (lo < hi) {
		uint64_t end = hi - lo > 0x40000000u ? lo + 0x40000000u : hi;
		uint32_t z = 0; /* a 32-bit counter keeps the loop vectorizable */
		if (kind == KEY_F32) {
			for (uint64_t i = lo; i < end; i++) {
				uint32_t u, k;
				memcpy(&u, d + 4 * i, 4);
				k = u & 0x7fffffffu;
				uint32_t keep = (k >= Tc) | (k == 0);
				u &= 0u - keep;
				z += (u & 0x7fffffffu) == 0;
				if (out)
					memcpy(out + 4 * i, &u, 4);
			}
		} else {
			for (uint64_t i = lo; i < end; i++) {
				uint16_t h;
				memcpy(&h, d + 2 * i, 2);
				uint32_t k = kget(d, kind, i);
				uint16_t keep = (uint16_t)((k >= Tc) | (k == 0));
				h &= (uint16_t)(0u - keep);
				z += (h & 0x7fffu) == 0;
				if (out)
					memcpy(out + 2 * i, &h, 2);
			}
		}
		zeros += z;
		lo = end;
	}
	return zeros;
}

static inline __attribute__((always_inline)) uint64_t apply_k(const uint8_t *d, int kind, uint64_t lo, uint64_t hi,
							       int any, uint32_t T, uint64_t *eq_budget, uint8_t *out)
{
	if (!any)
		return out ? cut_k(d, kind, lo, hi, 0, out) : cut_k(d, kind, lo, hi, 0, NULL);
	uint64_t budget = *eq_budget;
	if (budget == 0)
		return out ? cut_k(d, kind, lo, hi, T, out) : cut_k(d, kind, lo, hi, T, NULL);
	if (budget == UINT64_MAX)
		return out ? cut_k(d, kind, lo, hi, T + 1, out) : cut_k(d, kind, lo, hi, T + 1, NULL);
	/* find the index of the budget-th tie */
	uint64_t p = hi, seen = 0;
	for (uint64_t i = lo; i < hi; i++)
		if (kget(d, kind, i) == T && ++seen == budget) {
			p = i + 1;
			break;
		}
	*eq_budget = budget - seen;
	if (out)
		return cut_k(d, kind, lo, p, T + 1, out) + cut_k(d, kind, p, hi, T, out);
	return cut_k(d, kind, lo, p, T + 1, NULL) + cut_k(d, kind, p, hi, T, NULL);
}

FPK_CLONES uint64_t fpk_magsel_apply(const void *data, int kind, uint64_t lo, uint64_t hi, int any, uint32_t T,
				     uint64_t *eq_budget, void *out)
{
	const uint8_t *d = data;
	switch (kind) {
	case KEY_F16: return apply_k(d, KEY_F16, lo, hi, any, T, eq_budget, out);
	case KEY_BF16: return apply_k(d, KEY_BF16, lo, hi, any, T, eq_budget, out);
	case KEY_F16G: return apply_k(d, KEY_F16G, lo, hi, any, T, eq_budget, out);
	case KEY_BF16G: return apply_k(d, KEY_BF16G, lo, hi, any, T, eq_budget, out);
	default: return apply_k(d, KEY_F32, lo, hi, any, T, eq_budget, out);
	}
}

/* levels of the radix select: 15-bit keys in one level of 32768 bins; 31-bit keys in 16 + 15 bits */
int fpk_magsel_levels(int kind, fpk_magsel_level lv[2])
{
	if (fpk_magsel_bits(kind) == 15) {
		lv[0] = (fpk_magsel_level){.pshift = 15, .pval = 0, .shift = 0, .mask = 0x7fff};
		return 1;
	}
	lv[0] = (fpk_magsel_level){.pshift = 31, .pval = 0, .shift = 15, .mask = 0xffff};
	lv[1] = (fpk_magsel_level){.pshift = 15, .pval = 0 /* set from level 0 */, .shift = 0, .mask = 0x7fff};
	return 2;
}

/* find the bin holding the k-th smallest (1-based k, k <= sum): *below = count in lower bins */
uint32_t fpk_magsel_find(const uint64_t *hist, size_t bins, uint64_t k, uint64_t *below)
{
	uint64_t cum = 0;
	for (size_t b = 0; b < bins; b++) {
		if (cum + hist[b] >= k) {
			*below = cum;
			return (uint32_t)b;
		}
		cum += hist[b];
	}
	*below = cum;
	return (uint32_t)(bins - 1);
}

/* ---- tensor scope: parallel over chunks ---- */

#define CHUNK ((uint64_t)1 << 18)

typedef struct tctx {
	const uint8_t *d;
	int kind;
	uint64_t n;
	const fpk_magsel_level *lv;
	uint32_t *hists;  /* nthreads x bins */
	size_t bins;
	uint64_t *zeros;  /* per chunk (pass 1) */
	uint64_t *bad;    /* per chunk (pass 1) */
	uint64_t *eqc;    /* per chunk: key == T count, then the chunk's budget */
	uint32_t T;
	int any;
	uint8_t *out;
	uint64_t *zafter; /* per chunk */
} tctx;

static int t_hist(void *ctx, size_t c, int tid)
{
	tctx *x = ctx;
	uint64_t lo = c * CHUNK, hi = lo + CHUNK < x->n ? lo + CHUNK : x->n;
	if (x->zeros) {
		x->zeros[c] = 0;
		x->bad[c] = UINT64_MAX;
	}
	fpk_magsel_hist4(x->d, x->kind, lo, hi, x->lv, x->hists + (size_t)tid * 4 * x->bins, x->bins,
			 x->zeros ? &x->zeros[c] : NULL, x->zeros ? &x->bad[c] : NULL);
	return 0;
}

static int t_eq(void *ctx, size_t c, int tid)
{
	(void)tid;
	tctx *x = ctx;
	uint64_t lo = c * CHUNK, hi = lo + CHUNK < x->n ? lo + CHUNK : x->n;
	x->eqc[c] = fpk_magsel_count_eq(x->d, x->kind, lo, hi, x->T);
	return 0;
}

static int t_apply(void *ctx, size_t c, int tid)
{
	(void)tid;
	tctx *x = ctx;
	uint64_t lo = c * CHUNK, hi = lo + CHUNK < x->n ? lo + CHUNK : x->n;
	uint64_t budget = x->eqc ? x->eqc[c] : UINT64_MAX;
	x->zafter[c] = fpk_magsel_apply(x->d, x->kind, lo, hi, x->any, x->T, &budget, x->out);
	return 0;
}

int fpk_magsel_threads(int threads)
{
	return threads > 0 ? threads : fpk_default_threads();
}

/* histogram pass of one level over a whole tensor, summed into acc (bins entries, added to) */
int fpk_magsel_tensor_hist(const void *data, int kind, uint64_t n, const fpk_magsel_level *lv, int threads,
			   uint64_t *acc, size_t bins, uint64_t *zeros, uint64_t *first_bad)
{
	int rc = 0;
	threads = fpk_magsel_threads(threads);
	size_t nch = (size_t)((n + CHUNK - 1) / CHUNK);
	tctx x = {.d = data, .kind = kind, .n = n, .lv = lv, .bins = bins};
	x.hists = calloc((size_t)threads * 4 * bins, sizeof(uint32_t));
	if (zeros) {
		x.zeros = malloc((nch + 1) * sizeof(uint64_t));
		x.bad = malloc((nch + 1) * sizeof(uint64_t));
	}
	if (!x.hists || (zeros && (!x.zeros || !x.bad))) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	/* per-thread 32-bit counters: a chunk is far below 2^32, but a thread may see many chunks; flush often
	 * enough by running the pass in slices of at most 2^31 / CHUNK chunks */
	size_t slice = (size_t)(((uint64_t)1 << 31) / CHUNK);
	for (size_t c0 = 0; c0 < nch; c0 += slice) {
		size_t cn = nch - c0 < slice ? nch - c0 : slice;
		tctx y = x;
		y.d = (const uint8_t *)data + c0 * CHUNK * fpk_magsel_esize(kind);
		y.n = n - c0 * CHUNK;
		if (zeros) {
			y.zeros = x.zeros + c0;
			y.bad = x.bad + c0;
		}
		if ((rc = fpk_parallel_for(cn, threads, t_hist, &y)))
			goto done;
		uint64_t bin0 = 0, nonfinite = 0;
		uint32_t nf_bin = (fpk_magsel_nonfinite(kind) >> lv->shift) & lv->mask;
		for (size_t t = 0; t < (size_t)threads * 4; t++)
			for (size_t b = 0; b < bins; b++) {
				uint32_t v = x.hists[t * bins + b];
				acc[b] += v;
				bin0 += b == 0 ? v : 0;
				nonfinite += b >= nf_bin ? v : 0;
				x.hists[t * bins + b] = 0;
			}
		int shape = level_shape(lv);
		if (zeros && shape == LV_LOW15)
			for (size_t c = c0; c < c0 + cn; c++)
				x.zeros[c] = c == c0 ? bin0 : 0;
		if (zeros && (shape == LV_LOW15 || shape == LV_HIGH16) && nonfinite) {
			/* rare: locate the first non-finite value of the slice by a scan */
			uint64_t lo = c0 * CHUNK, hi = (c0 + cn) * CHUNK < n ? (c0 + cn) * CHUNK : n;
			for (uint64_t i = lo; i < hi; i++)
				if (fpk_magsel_key(data, kind, i) >= fpk_magsel_nonfinite(kind)) {
					x.bad[c0] = i - c0 * CHUNK;
					break;
				}
		}
		for (size_t c = c0; zeros && c < c0 + cn; c++) {
			*zeros += x.zeros[c];
			if (x.bad[c] != UINT64_MAX && x.bad[c] + c0 * CHUNK < *first_bad)
				*first_bad = x.bad[c] + c0 * CHUNK;
		}
	}
done:
	free(x.hists);
	free(x.zeros);
	free(x.bad);
	return rc;
}

int fpk_magsel_tensor_apply(const void *data, int kind, uint64_t n, int any, uint32_t T, uint64_t *eq_budget,
			    int threads, void *out, uint64_t *zeros_after)
{
	int rc = 0;
	threads = fpk_magsel_threads(threads);
	size_t nch = (size_t)((n + CHUNK - 1) / CHUNK);
	tctx x = {.d = data, .kind = kind, .n = n, .T = T, .any = any, .out = out};
	x.zafter = malloc((nch + 1) * sizeof(uint64_t));
	if (!x.zafter)
		return fpk_error_set(FPK_EIO, "out of memory");
	if (any && *eq_budget != UINT64_MAX && *eq_budget != 0) {
		/* a partial budget: ties go to the lower indices, so each chunk needs the count of ties before it */
		x.eqc = malloc((nch + 1) * sizeof(uint64_t));
		if (!x.eqc) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
		if ((rc = fpk_parallel_for(nch, threads, t_eq, &x)))
			goto done;
		uint64_t left = *eq_budget;
		for (size_t c = 0; c < nch; c++) {
			uint64_t take = x.eqc[c] < left ? x.eqc[c] : left;
			left -= take;
			x.eqc[c] = take == x.eqc[c] ? UINT64_MAX : take; /* every tie of the chunk: no scan needed */
		}
		*eq_budget = left;
	} else if (any && *eq_budget == 0) {
		x.eqc = calloc(nch + 1, sizeof(uint64_t));
		if (!x.eqc) {
			rc = fpk_error_set(FPK_EIO, "out of memory");
			goto done;
		}
	}
	if ((rc = fpk_parallel_for(nch, threads, t_apply, &x)))
		goto done;
	uint64_t z = 0;
	for (size_t c = 0; c < nch; c++)
		z += x.zafter[c];
	*zeros_after = z;
done:
	free(x.zafter);
	free(x.eqc);
	return rc;
}

int fpk_magsel_select(const void *data, int kind, uint64_t n, uint64_t k, int threads, fpk_magsel_result *res,
		      uint64_t *zeros, uint64_t *first_bad)
{
	fpk_magsel_level lv[2];
	int nl = fpk_magsel_levels(kind, lv), rc = 0;
	uint64_t *acc = malloc(65536 * sizeof(uint64_t));
	memset(res, 0, sizeof(*res));
	if (!acc)
		return fpk_error_set(FPK_EIO, "out of memory");
	*zeros = 0;
	*first_bad = UINT64_MAX;
	uint64_t below_total = 0;
	uint32_t prefix = 0;
	for (int l = 0; l < nl; l++) {
		size_t bins = (size_t)lv[l].mask + 1;
		memset(acc, 0, bins * sizeof(uint64_t));
		if (l > 0)
			lv[l].pval = prefix;
		if ((rc = fpk_magsel_tensor_hist(data, kind, n, &lv[l], threads, acc, bins, l == 0 ? zeros : NULL,
						 first_bad)))
			goto done;
		if (k == 0)
			goto done;
		uint64_t below;
		uint32_t b = fpk_magsel_find(acc, bins, k - below_total, &below);
		below_total += below;
		prefix = (prefix << (lv[l].pshift - lv[l].shift)) | b;
		if (l == nl - 1) {
			res->key = prefix;
			res->n_less = below_total;
			res->n_eq = acc[b];
		}
	}
	res->n_eq_sel = k - res->n_less;
done:
	free(acc);
	return rc;
}

/* ---- rows: radix select with 8-bit digits inside one row ---- */

static void row_select(const uint8_t *d, int kind, uint64_t lo, uint64_t cols, uint64_t k, uint32_t *T,
		       uint64_t *n_less)
{
	uint32_t hist[256];
	int bits = fpk_magsel_bits(kind);
	uint32_t prefix = 0;
	uint64_t below_total = 0;
	int top = bits; /* bits not yet decided: [0, top) */
	while (top > 0) {
		int w = top % 8 ? top % 8 : 8;
		int shift = top - w;
		fpk_magsel_level lv = {.pshift = (unsigned)top, .pval = prefix, .shift = (unsigned)shift,
				       .mask = (1u << w) - 1};
		memset(hist, 0, sizeof(hist));
		fpk_magsel_hist(d, kind, lo, lo + cols, &lv, hist, NULL, NULL);
		uint64_t cum = 0;
		uint32_t b = 0;
		for (b = 0; b < (1u << w); b++) {
			if (cum + hist[b] >= k - below_total)
				break;
			cum += hist[b];
		}
		below_total += cum;
		prefix = (prefix << w) | b;
		top = shift;
	}
	*T = prefix;
	*n_less = below_total;
}

typedef struct rctx {
	const uint8_t *d;
	int kind;
	uint64_t rows, cols, k;
	uint64_t rows_per_task;
	uint8_t *out;
	uint64_t *zb, *za; /* per task */
	uint32_t *tmax;    /* per task */
	int nm_n, nm_m;    /* N:M when nm_m > 0 */
} rctx;

static int r_task(void *ctx, size_t task, int tid)
{
	(void)tid;
	rctx *x = ctx;
	uint64_t r0 = task * x->rows_per_task, r1 = r0 + x->rows_per_task < x->rows ? r0 + x->rows_per_task : x->rows;
	uint64_t zb = 0, za = 0;
	uint32_t tmax = 0;
	for (uint64_t r = r0; r < r1; r++) {
		uint64_t lo = r * x->cols;
		for (uint64_t i = lo; i < lo + x->cols; i++)
			zb += kget(x->d, x->kind, i) == 0;
		if (x->k == 0) {
			uint64_t budget = 0;
			za += fpk_magsel_apply(x->d, x->kind, lo, lo + x->cols, 0, 0, &budget, x->out);
			continue;
		}
		uint32_t T;
		uint64_t n_less;
		row_select(x->d, x->kind, lo, x->cols, x->k, &T, &n_less);
		if (T > tmax)
			tmax = T;
		uint64_t budget = x->k - n_less;
		za += fpk_magsel_apply(x->d, x->kind, lo, lo + x->cols, 1, T, &budget, x->out);
	}
	x->zb[task] = zb;
	x->za[task] = za;
	x->tmax[task] = tmax;
	return 0;
}

/* N:M: in each group, element j is pruned when fewer than m - n elements come before it in (key, index) order */
static int nm_task(void *ctx, size_t task, int tid)
{
	(void)tid;
	rctx *x = ctx;
	unsigned es = fpk_magsel_esize(x->kind);
	uint64_t r0 = task * x->rows_per_task, r1 = r0 + x->rows_per_task < x->rows ? r0 + x->rows_per_task : x->rows;
	uint64_t zb = 0, za = 0;
	int m = x->nm_m, drop = x->nm_m - x->nm_n;
	uint32_t key[FPK_PRUNE_MAX_M];
	if (x->out)
		memcpy(x->out + r0 * x->cols * es, x->d + r0 * x->cols * es, (size_t)((r1 - r0) * x->cols * es));
	for (uint64_t g = r0 * x->cols; g < r1 * x->cols; g += (uint64_t)m) {
		for (int j = 0; j < m; j++) {
			key[j] = kget(x->d, x->kind, g + (uint64_t)j);
			zb += key[j] == 0;
		}
		for (int j = 0; j < m; j++) {
			int rank = 0;
			for (int i = 0; i < m; i++)
				rank += key[i] < key[j] || (key[i] == key[j] && i < j);
			if (rank < drop || key[j] == 0) {
				za++;
				if (key[j] && x->out)
					memset(x->out + (g + (uint64_t)j) * es, 0, es);
			}
		}
	}
	x->zb[task] = zb;
	x->za[task] = za;
	x->tmax[task] = 0;
	return 0;
}

int fpk_magsel_rows(const void *data, int kind, uint64_t rows, uint64_t cols, uint64_t k, int nm_n, int nm_m,
		    int threads, void *out, uint32_t *thr_max, uint64_t *zeros_before, uint64_t *zeros_after)
{
	int rc = 0;
	threads = fpk_magsel_threads(threads);
	rctx x = {.d = data, .kind = kind, .rows = rows, .cols = cols, .k = k, .out = out, .nm_n = nm_n, .nm_m = nm_m};
	x.rows_per_task = cols ? (65536 + cols - 1) / cols : rows;
	if (x.rows_per_task < 1)
		x.rows_per_task = 1;
	size_t ntask = rows ? (size_t)((rows + x.rows_per_task - 1) / x.rows_per_task) : 0;
	x.zb = calloc(ntask + 1, sizeof(uint64_t));
	x.za = calloc(ntask + 1, sizeof(uint64_t));
	x.tmax = calloc(ntask + 1, sizeof(uint32_t));
	if (!x.zb || !x.za || !x.tmax) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	if (cols && (rc = fpk_parallel_for(ntask, threads, nm_m ? nm_task : r_task, &x)))
		goto done;
	*zeros_before = *zeros_after = 0;
	*thr_max = 0;
	for (size_t t = 0; t < ntask; t++) {
		*zeros_before += x.zb[t];
		*zeros_after += x.za[t];
		if (x.tmax[t] > *thr_max)
			*thr_max = x.tmax[t];
	}
done:
	free(x.zb);
	free(x.za);
	free(x.tmax);
	return rc;
}
