/* tcsl.c: Tiled-CSL encoder (ahead-of-time bank-conflict reordering or row-major order), decoder and validator,
 * exactly as docs/format.md section 2. Two passes over tiles (count, then fill), parallel and deterministic.
 * Tested by tests/unit/test_tcsl.c; speed by bench/bench_encode.c. */
#include "tcsl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define TM FPK_TCSL_TILE_M
#define TK FPK_TCSL_TILE_K
#define NBANK 32
#define BANK_CAP 256 /* locs per bank: 128 rows x 2 swizzled columns */
#define GROUP 32 /* column tiles per work item: 128 rows x 2048 columns (512 KB of fp16) stay in L2 */

int64_t fpk_tcsl_tiles(int64_t m, int64_t k)
{
	return ((m + TM - 1) / TM) * ((k + TK - 1) / TK);
}

/* the values array: large ones 2 MiB aligned and marked for transparent huge pages, which cuts the page faults of
 * first touch 512-fold (a 160 MB array otherwise costs ~40k faults, a sizeable part of the encode time);
 * released with free() like any other */
static void *alloc_values(size_t bytes)
{
	const size_t huge = (size_t)2 << 20;
	if (bytes < 2 * huge)
		return malloc(bytes ? bytes : 4);
	void *p = NULL;
	size_t rounded = (bytes + huge - 1) / huge * huge;
	if (posix_memalign(&p, huge, rounded))
		return NULL;
#ifdef MADV_HUGEPAGE
	madvise(p, rounded, MADV_HUGEPAGE);
#endif
	return p;
}

void fpk_tcsl_release(fpk_tcsl *t)
{
	if (!t)
		return;
	free(t->values);
	free(t->offsets);
	t->values = NULL;
	t->offsets = NULL;
}

/* ---- per-tile scratch, one per worker ---- */
typedef struct tile_scratch {
	uint32_t bank[NBANK][BANK_CAP]; /* L[b]: entries in scan order, pads appended */
	uint16_t cnt[NBANK];
	uint32_t picks[FPK_TCSL_TILE_ELEMS];  /* the entries in pick order (steps 4 and 5) */
	uint64_t gmask[GROUP][TM];      /* per tile of the item, bit c of row r set when W there is non-zero */
} tile_scratch;

typedef struct enc_ctx {
	const uint16_t *w;
	int64_t m, k, tiles_m, tiles_k, T;
	fpk_dtype dtype;
	int reorder, allow_nan;
	int64_t groups;      /* work items per row tile: ceil(tiles_k / GROUP) */
	uint32_t *tile_nnz;  /* (T) pass 1 */
	uint64_t *tile_start; /* (T+1) in entries, pass 1 -> prefix */
	uint32_t *values;
	tile_scratch *scratch;
} enc_ctx;

static inline int is_nan16(uint16_t v, fpk_dtype dt)
{
	uint16_t a = v & 0x7fffu;
	return dt == FPK_BF16 ? a > 0x7f80u : a > 0x7c00u;
}

/* tile geometry: rows [r0, r0 + nr), columns [c0, c0 + nc) of W fall in tile t */
static inline void tile_geom(const enc_ctx *c, int64_t t, int64_t *r0, int *nr, int64_t *c0, int *nc)
{
	int64_t i = t / c->tiles_k, j = t % c->tiles_k;
	*r0 = i * TM;
	*c0 = j * TK;
	int64_t rr = c->m - *r0, cc = c->k - *c0;
	*nr = (int)(rr < TM ? rr : TM);
	*nc = (int)(cc < TK ? cc : TK);
}

/* zeros among the 64 columns at row (SSE2: 8 lanes of 16 bits) and whether any is NaN (> lim after |.|) */
static inline unsigned zeros64(const uint16_t *row, uint16_t lim, unsigned *bad)
{
#if defined(__SSE2__)
	const __m128i abs = _mm_set1_epi16(0x7fff), zero = _mm_setzero_si128(), vlim = _mm_set1_epi16((short)lim);
	__m128i vz = zero, vb = zero;
	for (int q = 0; q < 8; q++) {
		__m128i a = _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)(row + 8 * q)), abs);
		vz = _mm_sub_epi16(vz, _mm_cmpeq_epi16(a, zero));
		vb = _mm_or_si128(vb, _mm_cmpgt_epi16(a, vlim));
	}
	vz = _mm_add_epi16(vz, _mm_srli_si128(vz, 8));
	vz = _mm_add_epi16(vz, _mm_srli_si128(vz, 4));
	vz = _mm_add_epi16(vz, _mm_srli_si128(vz, 2));
	*bad |= (unsigned)_mm_movemask_epi8(vb);
	return (unsigned)_mm_cvtsi128_si32(vz) & 0xffffu;
#else
	unsigned z = 0;
	for (int x = 0; x < TK; x++) {
		uint16_t a = row[x] & 0x7fffu;
		z += a == 0;
		*bad |= a > lim;
	}
	return z;
#endif
}

/* pass 1 over one work item: row tile i, column tiles [j0, j1), streamed row by row (sequential memory) */
static int count_item(void *ctx, size_t item, int tid)
{
	(void)tid;
	enc_ctx *c = ctx;
	int64_t i = (int64_t)item / c->groups, j0 = (int64_t)item % c->groups * GROUP, j1 = j0 + GROUP;
	if (j1 > c->tiles_k)
		j1 = c->tiles_k;
	int64_t r0 = i * TM;
	int nr = (int)(c->m - r0 < TM ? c->m - r0 : TM);
	uint32_t zeros[GROUP] = {0};
	unsigned bad = 0;
	uint16_t lim = c->dtype == FPK_BF16 ? 0x7f80u : 0x7c00u;
	for (int r = 0; r < nr; r++) {
		const uint16_t *row = c->w + (r0 + r) * c->k;
		for (int64_t j = j0; j < j1; j++) {
			const uint16_t *seg = row + j * TK;
			int64_t cc = c->k - j * TK;
			if (cc >= TK) {
				zeros[j - j0] += zeros64(seg, lim, &bad);
			} else {
				for (int x = 0; x < cc; x++) {
					uint16_t a = seg[x] & 0x7fffu;
					zeros[j - j0] += a == 0;
					bad |= a > lim;
				}
			}
		}
	}
	if (bad && !c->allow_nan) {
		int64_t c0 = j0 * TK, c1 = j1 * TK < c->k ? j1 * TK : c->k;
		for (int r = 0; r < nr; r++)
			for (int64_t x = c0; x < c1; x++)
				if (is_nan16(c->w[(r0 + r) * c->k + x], c->dtype))
					return fpk_error_set(FPK_EFORMAT,
							     "NaN at [%lld, %lld] (row-major index %lld); use --allow-nan to store it",
							     (long long)(r0 + r), (long long)x, (long long)((r0 + r) * c->k + x));
	}
	for (int64_t j = j0; j < j1; j++) {
		int64_t cc = c->k - j * TK;
		uint32_t cells = (uint32_t)nr * (uint32_t)(cc < TK ? cc : TK);
		c->tile_nnz[i * c->tiles_k + j] = cells - zeros[j - j0];
	}
	return 0;
}

/* non-zero mask of one row (columns >= nc are zero) */
static inline uint64_t row_mask(const uint16_t *row, int nc)
{
	uint64_t mk = 0;
#if defined(__SSE2__)
	if (nc == TK) {
		const __m128i abs = _mm_set1_epi16(0x7fff), zero = _mm_setzero_si128();
		for (int q = 0; q < 4; q++) {
			__m128i a = _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)(row + 16 * q)), abs);
			__m128i b = _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)(row + 16 * q + 8)), abs);
			__m128i za = _mm_cmpeq_epi16(a, zero), zb = _mm_cmpeq_epi16(b, zero);
			unsigned z = (unsigned)_mm_movemask_epi8(_mm_packs_epi16(za, zb)); /* bit x set: column x is zero */
			mk |= (uint64_t)(~z & 0xffffu) << (16 * q);
		}
		return mk;
	}
#endif
	for (int x = 0; x < nc; x++)
		mk |= (uint64_t)((row[x] & 0x7fffu) != 0) << x;
	return mk;
}

static inline uint16_t bits_at(const enc_ctx *c, int64_t r0, int nr, int64_t c0, int nc, int r, int x)
{
	if (r >= nr || x >= nc)
		return 0;
	return c->w[(r0 + r) * c->k + c0 + x];
}

/* row-major variant: non-zeros in scan order; the first pad zeros met are emitted inline with their bits */
static void fill_tile_scan(enc_ctx *c, int64_t t, const uint64_t *masks)
{
	int64_t r0, c0;
	int nr, nc;
	tile_geom(c, t, &r0, &nr, &c0, &nc);
	uint32_t *out = c->values + c->tile_start[t];
	uint32_t nnz = c->tile_nnz[t];
	unsigned pad = (4u - (nnz & 3u)) & 3u;
	size_t o = 0;
	for (int r = 0; r < TM; r++) {
		uint64_t mk = masks[r];
		uint64_t emit = mk;
		if (pad) {
			uint64_t z = ~mk;
			while (pad && z) {
				uint64_t low = z & (~z + 1);
				emit |= low;
				z &= z - 1;
				pad--;
			}
		}
		while (emit) {
			int x = __builtin_ctzll(emit);
			emit &= emit - 1;
			uint16_t v = bits_at(c, r0, nr, c0, nc, r, x);
			out[o++] = (uint32_t)v | (uint32_t)fpk_tcsl_loc((unsigned)r, (unsigned)x) << 16;
		}
	}
}

/* Z[b]: the first zero loc of bank b in scan order (r, then c) */
static int bank_zero_loc(const uint64_t *masks, unsigned b)
{
	for (unsigned r = 0; r < TM; r++) {
		for (unsigned h = 0; h < 2; h++) {
			unsigned sc = 2 * b + h, x = sc ^ ((r & 7u) * 8u);
			if (masks[r] >> x & 1u)
				continue;
			return (int)(r * 64u + sc);
		}
	}
	return -1;
}

static void fill_tile_reorder(enc_ctx *c, int64_t t, tile_scratch *s, const uint64_t *masks)
{
	int64_t r0, c0;
	int nr, nc;
	tile_geom(c, t, &r0, &nr, &c0, &nc);
	uint32_t *out = c->values + c->tile_start[t];
	memset(s->cnt, 0, sizeof(s->cnt));
	/* 1. scan: append non-zeros to their bank */
	for (int r = 0; r < nr; r++) {
		const uint16_t *row = c->w + (r0 + r) * c->k + c0;
		{
			uint64_t e = masks[r];
			unsigned sw = ((unsigned)r & 7u) * 8u;
			while (e) {
				unsigned x = (unsigned)__builtin_ctzll(e);
				e &= e - 1;
				unsigned loc = (unsigned)r * 64u + (x ^ sw);
				unsigned b = fpk_tcsl_bank(loc);
				s->bank[b][s->cnt[b]++] = (uint32_t)row[x] | (uint32_t)loc << 16;
			}
		}
	}
	/* 2. pad into the emptiest bank (lowest index on ties), at that bank's first zero Z[b], as the reference does
	 * (two pads of one bank share that loc: both write +0.0 onto a zero of W) */
	uint32_t nnz = c->tile_nnz[t];
	unsigned pad = (4u - (nnz & 3u)) & 3u;
	for (unsigned p = 0; p < pad; p++) {
		unsigned best = 0;
		for (unsigned b = 1; b < NBANK; b++)
			if (s->cnt[b] < s->cnt[best])
				best = b;
		int loc = bank_zero_loc(masks, best);
		/* cannot fail: nnz + p < 8192, so the emptiest bank has fewer than 256 entries, i.e. a zero */
		s->bank[best][s->cnt[best]++] = (uint32_t)loc << 16;
	}
	uint32_t n = nnz + pad, V = n / 4, R = V / 32, Rem = V % 32;
	/* 4./5. The picks, in order. Always taking the largest bank (lowest index on ties) and popping its last entry
	 * drains the banks level by level: at level L (from the largest count down to 1) every bank holding at least L
	 * entries is picked once, in increasing index order, and gives up its entry L-1. So each pick is O(1): a mask
	 * of the banks at or above the level grows by the banks whose count is exactly L. */
	uint32_t at[BANK_CAP + 1];
	memset(at, 0, sizeof(at));
	unsigned maxc = 0;
	for (unsigned b = 0; b < NBANK; b++) {
		at[s->cnt[b]] |= 1u << b;
		if (s->cnt[b] > maxc)
			maxc = s->cnt[b];
	}
	uint32_t *pk = s->picks, act = 0;
	for (unsigned L = maxc; L >= 1; L--) {
		act |= at[L];
		for (uint32_t mk = act; mk; mk &= mk - 1)
			*pk++ = s->bank[__builtin_ctz(mk)][L - 1];
	}
	/* 6./7. Tail[lane] received picks v*Rem + lane (v = 0..3); Main[lane] picks 4*Rem + round*128 + v*32 + lane.
	 * Popping the last first puts pick (v, lane) of the tail at slot 3-v, and pick (round, v, lane) of the main
	 * rounds at round R-1-round, slot 3-v. */
	const uint32_t *tp = s->picks;
	uint32_t *tail = out + (size_t)R * 128;
	for (unsigned v = 0; v < 4; v++)
		for (unsigned lane = 0; lane < Rem; lane++)
			tail[lane * 4 + 3 - v] = *tp++;
#if defined(__SSE2__)
	if (!((uintptr_t)out & 15u)) {
		/* a 4 x 32 transpose per round, 4 lanes at a time, streamed past the cache (the output is not read again) */
		for (unsigned round = 0; round < R; round++, tp += 128) {
			__m128i *dst = (__m128i *)(void *)(out + (size_t)(R - 1 - round) * 128);
			for (unsigned l = 0; l < 32; l += 4) {
				__m128i r0 = _mm_loadu_si128((const __m128i *)(const void *)(tp + 96 + l)); /* v = 3 -> slot 0 */
				__m128i r1 = _mm_loadu_si128((const __m128i *)(const void *)(tp + 64 + l));
				__m128i r2 = _mm_loadu_si128((const __m128i *)(const void *)(tp + 32 + l));
				__m128i r3 = _mm_loadu_si128((const __m128i *)(const void *)(tp + l)); /* v = 0 -> slot 3 */
				__m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpacklo_epi32(r2, r3);
				__m128i t2 = _mm_unpackhi_epi32(r0, r1), t3 = _mm_unpackhi_epi32(r2, r3);
				_mm_stream_si128(dst + l, _mm_unpacklo_epi64(t0, t1));
				_mm_stream_si128(dst + l + 1, _mm_unpackhi_epi64(t0, t1));
				_mm_stream_si128(dst + l + 2, _mm_unpacklo_epi64(t2, t3));
				_mm_stream_si128(dst + l + 3, _mm_unpackhi_epi64(t2, t3));
			}
		}
		return;
	}
#endif
	for (unsigned round = 0; round < R; round++)
		for (unsigned v = 0; v < 4; v++) {
			uint32_t *dst = out + (size_t)(R - 1 - round) * 128 + (3 - v);
			for (unsigned lane = 0; lane < 32; lane++)
				dst[lane * 4] = *tp++;
		}
}

/* pass 2 over one work item: masks of every row of the item first (sequential), then tile by tile (from cache) */
static int fill_item(void *ctx, size_t item, int tid)
{
	enc_ctx *c = ctx;
	tile_scratch *s = &c->scratch[tid];
	int64_t i = (int64_t)item / c->groups, j0 = (int64_t)item % c->groups * GROUP, j1 = j0 + GROUP;
	if (j1 > c->tiles_k)
		j1 = c->tiles_k;
	int64_t r0 = i * TM;
	int nr = (int)(c->m - r0 < TM ? c->m - r0 : TM);
	for (int r = 0; r < TM; r++) {
		const uint16_t *row = c->w + (r0 + r) * c->k;
		for (int64_t j = j0; j < j1; j++) {
			int64_t cc = c->k - j * TK;
			s->gmask[j - j0][r] = r < nr ? row_mask(row + j * TK, (int)(cc < TK ? cc : TK)) : 0;
		}
	}
	for (int64_t j = j0; j < j1; j++) {
		int64_t t = i * c->tiles_k + j;
		if (c->reorder)
			fill_tile_reorder(c, t, s, s->gmask[j - j0]);
		else
			fill_tile_scan(c, t, s->gmask[j - j0]);
	}
#if defined(__SSE2__)
	_mm_sfence(); /* order the streaming stores before the join publishes the array */
#endif
	return 0;
}

int fpk_tcsl_encode(fpk_tcsl *out, const uint16_t *w, int64_t m, int64_t k, fpk_dtype dtype, int reorder,
		    int allow_nan, int nthreads)
{
	int rc = 0;
	enc_ctx c;
	memset(&c, 0, sizeof(c));
	memset(out, 0, sizeof(*out));
	if (dtype != FPK_F16 && dtype != FPK_BF16)
		return fpk_error_set(FPK_EFORMAT, "dtype '%s' cannot be encoded, expected F16 or BF16",
				     dtype < FPK_DTYPE_COUNT ? fpk_dtypes[dtype].name : "?");
	if (m < 1 || k < 1)
		return fpk_error_set(FPK_EFORMAT, "shape [%lld, %lld] cannot be encoded, expected both dims >= 1",
				     (long long)m, (long long)k);
	if (nthreads < 1)
		nthreads = fpk_default_threads();
	c.w = w;
	c.m = m;
	c.k = k;
	c.tiles_m = (m + TM - 1) / TM;
	c.tiles_k = (k + TK - 1) / TK;
	c.T = c.tiles_m * c.tiles_k;
	c.dtype = dtype;
	c.reorder = reorder;
	c.allow_nan = allow_nan;
	if ((uint64_t)c.T > (uint64_t)INT32_MAX / 4)
		return fpk_error_set(FPK_EFORMAT, "shape [%lld, %lld] has too many tiles", (long long)m, (long long)k);
	c.groups = (c.tiles_k + GROUP - 1) / GROUP;
	size_t items = (size_t)(c.tiles_m * c.groups);
	c.tile_nnz = malloc((size_t)c.T * sizeof(*c.tile_nnz));
	c.tile_start = malloc((size_t)(c.T + 1) * sizeof(*c.tile_start));
	out->offsets = malloc((size_t)(c.T + 2) * sizeof(*out->offsets));
	if (!c.tile_nnz || !c.tile_start || !out->offsets) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	rc = fpk_parallel_for(items, nthreads, count_item, &c);
	if (rc)
		goto done;
	uint64_t acc = 0, nnz = 0;
	for (int64_t t = 0; t < c.T; t++) {
		c.tile_start[t] = acc;
		out->offsets[t] = (int32_t)(acc / 4);
		nnz += c.tile_nnz[t];
		acc += (c.tile_nnz[t] + 3u) & ~3u;
		if (acc / 4 > (uint64_t)INT32_MAX) {
			rc = fpk_error_set(FPK_EFORMAT, "matrix [%lld, %lld] has too many entries for int32 tile offsets",
					   (long long)m, (long long)k);
			goto done;
		}
	}
	c.tile_start[c.T] = acc;
	out->offsets[c.T] = (int32_t)(acc / 4);
	out->offsets[c.T + 1] = (int32_t)(acc / 4);
	out->values = alloc_values(acc * sizeof(uint32_t));
	int nw = nthreads < (int)items ? nthreads : (int)items;
	if (nw < 1)
		nw = 1;
	c.scratch = malloc((size_t)nw * sizeof(*c.scratch));
	if (!out->values || !c.scratch) {
		rc = fpk_error_set(FPK_EIO, "out of memory");
		goto done;
	}
	c.values = out->values;
	rc = fpk_parallel_for(items, nw, fill_item, &c);
	if (rc)
		goto done;
	out->m = m;
	out->k = k;
	out->tiles_m = c.tiles_m;
	out->tiles_k = c.tiles_k;
	out->m_pad = c.tiles_m * TM;
	out->k_pad = c.tiles_k * TK;
	out->dtype = dtype;
	out->reordered = reorder ? 1 : 0;
	out->nnz = nnz;
	out->n_entries = acc;
done:
	free(c.tile_nnz);
	free(c.tile_start);
	free(c.scratch);
	if (rc)
		fpk_tcsl_release(out);
	return rc;
}

int fpk_tcsl_decode(const fpk_tcsl *t, uint16_t *w)
{
	int64_t T = t->tiles_m * t->tiles_k;
	memset(w, 0, (size_t)(t->m * t->k) * sizeof(uint16_t));
	for (int64_t ti = 0; ti < T; ti++) {
		int64_t a = (int64_t)t->offsets[ti] * 4, b = (int64_t)t->offsets[ti + 1] * 4;
		if (a < 0 || b < a || (uint64_t)b > t->n_entries)
			return fpk_error_set(FPK_EFORMAT, "tile %lld: entries [%lld, %lld) are outside the %llu stored entries",
					     (long long)ti, (long long)a, (long long)b, (unsigned long long)t->n_entries);
		int64_t r0 = ti / t->tiles_k * TM, c0 = ti % t->tiles_k * TK;
		for (int64_t e = a; e < b; e++) {
			uint32_t v = t->values[e];
			unsigned loc = v >> 16;
			if (loc >= FPK_TCSL_TILE_ELEMS)
				return fpk_error_set(FPK_EFORMAT, "entry %lld: loc %u is out of range, expected < 8192",
						     (long long)e, loc);
			unsigned r = loc >> 6, x = (loc & 63u) ^ ((r & 7u) * 8u);
			int64_t row = r0 + r, col = c0 + x;
			if (row < t->m && col < t->k)
				w[row * t->k + col] = (uint16_t)(v & 0xffffu);
		}
	}
	return 0;
}

int fpk_tcsl_validate(const fpk_tcsl *t, const char *name, uint64_t nnz_expect)
{
	int64_t T = t->tiles_m * t->tiles_k;
	const int32_t *o = t->offsets;
	if (o[0] != 0)
		return fpk_error_set(FPK_EFORMAT, "tensor '%s': tcsl_offsets[0] is %d, expected 0 (rule R7)", name, o[0]);
	for (int64_t i = 0; i < T; i++)
		if (o[i + 1] < o[i])
			return fpk_error_set(FPK_EFORMAT,
					     "tensor '%s': tcsl_offsets not monotone: [%lld] = %d < [%lld] = %d (rule R8)", name,
					     (long long)(i + 1), o[i + 1], (long long)i, o[i]);
	if (o[T + 1] != o[T])
		return fpk_error_set(FPK_EFORMAT, "tensor '%s': sentinel tcsl_offsets[%lld] is %d, expected %d (rule R9)",
				     name, (long long)(T + 1), o[T + 1], o[T]);
	if ((uint64_t)o[T] * 4 != t->n_entries)
		return fpk_error_set(FPK_EFORMAT,
				     "tensor '%s': tcsl_offsets[%lld] * 4 = %llu, expected the %llu entries of tcsl_values (rule R10)",
				     name, (long long)T, (unsigned long long)o[T] * 4, (unsigned long long)t->n_entries);
	uint64_t seen[FPK_TCSL_TILE_ELEMS / 64], padseen[FPK_TCSL_TILE_ELEMS / 64];
	uint64_t nnz = 0;
	for (int64_t ti = 0; ti < T; ti++) {
		int64_t a = (int64_t)o[ti] * 4, b = (int64_t)o[ti + 1] * 4;
		int64_t r0 = ti / t->tiles_k * TM, c0 = ti % t->tiles_k * TK;
		unsigned zeros = 0;
		memset(seen, 0, sizeof(seen));
		memset(padseen, 0, sizeof(padseen));
		for (int64_t e = a; e < b; e++) {
			uint32_t v = t->values[e];
			unsigned loc = v >> 16;
			uint16_t bits = (uint16_t)(v & 0xffffu);
			if (loc >= FPK_TCSL_TILE_ELEMS)
				return fpk_error_set(FPK_EFORMAT,
						     "tensor '%s': tcsl_values[%lld] (tile %lld) has loc %u, expected < 8192 (rule R11)",
						     name, (long long)e, (long long)ti, loc);
			/* R12: a loc holds one non-zero, or any number of pads (+0.0 writes of the reference's Z[b]) */
			int is_pad = (bits & 0x7fffu) == 0;
			uint64_t bit = 1ull << (loc & 63);
			if ((seen[loc >> 6] & bit) || (!is_pad && (padseen[loc >> 6] & bit)))
				return fpk_error_set(FPK_EFORMAT,
						     "tensor '%s': tcsl_values[%lld] repeats loc %u within tile %lld (rule R12)", name,
						     (long long)e, loc, (long long)ti);
			if (is_pad)
				padseen[loc >> 6] |= bit;
			else
				seen[loc >> 6] |= bit;
			if (is_pad) {
				if (++zeros > 3)
					return fpk_error_set(FPK_EFORMAT,
							     "tensor '%s': tile %lld holds %u zero entries, expected at most 3 pads (rule R13)",
							     name, (long long)ti, zeros);
				if (bits != 0 && t->reordered)
					return fpk_error_set(FPK_EFORMAT,
							     "tensor '%s': pad tcsl_values[%lld] has bits 0x%04x, expected +0.0 (rule R13)",
							     name, (long long)e, bits);
				continue;
			}
			nnz++;
			unsigned r = loc >> 6, x = (loc & 63u) ^ ((r & 7u) * 8u);
			if (r0 + r >= t->m || c0 + x >= t->k)
				return fpk_error_set(FPK_EFORMAT,
						     "tensor '%s': non-zero tcsl_values[%lld] lies at [%lld, %lld], outside the logical "
						     "shape [%lld, %lld] (rule R14)",
						     name, (long long)e, (long long)(r0 + r), (long long)(c0 + x), (long long)t->m,
						     (long long)t->k);
		}
	}
	if (nnz_expect != UINT64_MAX && nnz != nnz_expect)
		return fpk_error_set(FPK_EFORMAT, "tensor '%s': tcsl_values hold %llu non-zeros, metadata nnz says %llu (rule R15)",
				     name, (unsigned long long)nnz, (unsigned long long)nnz_expect);
	return 0;
}
