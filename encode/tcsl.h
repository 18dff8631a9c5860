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

/* Encode W (m x k, row-major, 16-bit patterns of dtype) with nthreads workers (bytes do not depend on it).
 * NaN in W is FPK_EFORMAT naming the index unless allow_nan (then NaN is stored as any non-zero value).
 * Caller releases with fpk_tcsl_release. */
int fpk_tcsl_encode(fpk_tcsl *out, const uint16_t *w, int64_t m, int64_t k, fpk_dtype dtype, int reorder,
		    int allow_nan, int nthreads);
/* Decode into w (m x k, row-major), bit for bit what was encoded (-0.0 and pads excepted: zeros are +0). */
int fpk_tcsl_decode(const fpk_tcsl *t, uint16_t *w);
void fpk_tcsl_release(fpk_tcsl *t);

#ifdef __cplusplus
}
#endif
#endif
