/* tcsl.h: one matrix in Flash-LLM's Tiled-CSL layout (../shared/specs/tiled-csl.md, docs/format.md section 2),
 * with the ahead-of-time shared-memory bank-conflict reordering. Tested by tests/unit/test_tcsl.c. */
#ifndef FPK_TCSL_H
#define FPK_TCSL_H

#include "fpk_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FPK_TCSL_TILE_M 128
#define FPK_TCSL_TILE_K 64
#define FPK_TCSL_TILE_ELEMS (FPK_TCSL_TILE_M * FPK_TCSL_TILE_K) /* 8192: locs are 0..8191 */

typedef struct fpk_tcsl {
	int64_t m, k;         /* logical shape of W ([out, in]) */
	int64_t m_pad, k_pad; /* padded to whole tiles: multiples of 128 and 64 */
	int64_t tiles_m, tiles_k; /* m_pad / 128, k_pad / 64; T = tiles_m * tiles_k, tile t = i * tiles_k + j */
	fpk_dtype dtype;      /* FPK_F16 or FPK_BF16 (the entries' low 16 bits) */
	int reordered;        /* 1: ahead-of-time bank-conflict order; 0: row-major scan order */
	uint64_t nnz;         /* true non-zeros (|w| > 0) */
	uint64_t n_entries;   /* stored entries including pads = 4 * offsets[T] */
	uint32_t *values;     /* (n_entries) entry = bits | loc << 16, loc = r*64 + (c ^ ((r & 7) * 8)) */
	int32_t *offsets;     /* (T + 2) tile starts in units of 4 entries; offsets[T+1] == offsets[T] */
} fpk_tcsl;

/* Encode W (m x k, row-major, 16-bit patterns of dtype) with nthreads workers (bytes do not depend on it;
 * nthreads < 1 means all cores). NaN in W is FPK_EFORMAT naming the index unless allow_nan (then NaN is stored
 * as any non-zero value). Caller releases with fpk_tcsl_release. */
int fpk_tcsl_encode(fpk_tcsl *out, const uint16_t *w, int64_t m, int64_t k, fpk_dtype dtype, int reorder,
		    int allow_nan, int nthreads);
/* Decode into w (m x k, row-major), bit for bit what was encoded (-0.0 and pads excepted: zeros are +0).
 * Checks bounds as it goes (FPK_EFORMAT on an offset or loc out of range); it does not run every rule of
 * fpk_tcsl_validate. */
int fpk_tcsl_decode(const fpk_tcsl *t, uint16_t *w);
void fpk_tcsl_release(fpk_tcsl *t);

/* number of tiles T = tiles_m * tiles_k for a logical m x k */
int64_t fpk_tcsl_tiles(int64_t m, int64_t k);
/* bank of a loc: (loc mod 64) / 2 */
static inline unsigned fpk_tcsl_bank(unsigned loc) { return (loc & 63u) >> 1; }
/* loc of row r (0..127), column c (0..63) within a tile */
static inline unsigned fpk_tcsl_loc(unsigned r, unsigned c) { return r * 64u + (c ^ ((r & 7u) * 8u)); }

/* Check t against the rules of docs/format.md section 3 "a compliant reader must reject" that concern the arrays:
 * R7-R10 (offsets), R11 (loc range), R12 (duplicate loc), R13 (pads), R14 (logical region), R15 (nnz, skipped
 * when nnz_expect is UINT64_MAX). name is used in messages. FPK_EFORMAT naming the rule on the first violation. */
int fpk_tcsl_validate(const fpk_tcsl *t, const char *name, uint64_t nnz_expect);

#ifdef __cplusplus
}
#endif
#endif
