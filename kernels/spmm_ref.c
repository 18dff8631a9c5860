/* spmm_ref.c: scalar reference of Y = X W^T with W in Tiled-CSL (the twin of kernels/spmm.cu).
 * Reads values/offsets directly (scatter each tile into a dense 128x64 tile, multiply in fp32). Test: test_spmm_ref. */
#include "spmm_ref.h"

#include <stdlib.h>
#include <string.h>

typedef struct ref_ctx {
	const fpk_tcsl *w;
	const uint16_t *x;
	int64_t n;
	float *y;
	float *xf; /* (n x k_pad) x as fp32, zero past k */
} ref_ctx;

/* one row tile i: y[:, i*128 .. i*128+127] */
static int ref_row_tile(void *ctx, size_t item, int tid)
{
	ref_ctx *c = ctx;
	const fpk_tcsl *w = c->w;
	int64_t i = (int64_t)item, kp = w->k_pad;
	float *tile = NULL, *acc = NULL;
	int rc = 0;
	float (*cvt)(uint16_t) = w->dtype == FPK_BF16 ? fpk_bf16_to_f32 : fpk_f16_to_f32;
	tile = malloc(sizeof(float) * FPK_TCSL_TILE_M * FPK_TCSL_TILE_K);
	acc = calloc((size_t)c->n * FPK_TCSL_TILE_M, sizeof(float));
	if (!tile || !acc) {
		rc = fpk_error_set(FPK_EFAIL, "out of memory in the spmm reference");
		goto done;
	}
	for (int64_t j = 0; j < w->tiles_k; j++) {
		int64_t t = i * w->tiles_k + j;
		int64_t v0 = w->offsets[t], v1 = w->offsets[t + 1];
		if (v0 < 0 || v1 < v0 || (uint64_t)v1 * 4 > w->n_entries) {
			rc = fpk_error_set(FPK_EFORMAT, "tile %lld: offsets [%lld, %lld) outside the %llu stored entries",
					   (long long)t, (long long)v0, (long long)v1, (unsigned long long)w->n_entries);
			goto done;
		}
		if (v1 == v0)
			continue;
		memset(tile, 0, sizeof(float) * FPK_TCSL_TILE_M * FPK_TCSL_TILE_K);
		for (int64_t e = v0 * 4; e < v1 * 4; e++) {
			uint32_t ent = w->values[e];
			unsigned loc = ent >> 16;
			if (loc >= FPK_TCSL_TILE_M * FPK_TCSL_TILE_K) {
				rc = fpk_error_set(FPK_EFORMAT, "tile %lld entry %lld: loc %u is not below 8192", (long long)t,
						   (long long)e, loc);
				goto done;
			}
			unsigned r = loc >> 6, col = (loc & 63u) ^ ((r & 7u) * 8u); /* un-swizzle */
			tile[r * FPK_TCSL_TILE_K + col] = cvt((uint16_t)(ent & 0xffffu));
		}
		for (int64_t tok = 0; tok < c->n; tok++) {
			const float *xr = c->xf + tok * kp + j * FPK_TCSL_TILE_K;
			float *ar = acc + tok * FPK_TCSL_TILE_M;
			for (int r = 0; r < FPK_TCSL_TILE_M; r++) {
				const float *wr = tile + r * FPK_TCSL_TILE_K;
				float s = 0.0f;
				for (int col = 0; col < FPK_TCSL_TILE_K; col++)
					s += wr[col] * xr[col];
				ar[r] += s;
			}
		}
	}
	for (int64_t tok = 0; tok < c->n; tok++)
		for (int r = 0; r < FPK_TCSL_TILE_M; r++) {
			int64_t m = i * FPK_TCSL_TILE_M + r;
			if (m < w->m)
				c->y[tok * w->m + m] = acc[tok * FPK_TCSL_TILE_M + r];
		}
done:
	free(tile);
	free(acc);
	return rc;
}

int fpk_spmm_ref(const fpk_tcsl *w, const uint16_t *x, int64_t n, float *y, int nthreads)
{
	ref_ctx c = {w, x, n, y, NULL};
	int rc = 0;
	if (n < 1 || !w || !x || !y || (w->dtype != FPK_F16 && w->dtype != FPK_BF16))
		return fpk_error_set(FPK_EUSAGE, "spmm reference: bad arguments (n %lld, dtype %d)", (long long)n,
				     w ? (int)w->dtype : -1);
	if (w->offsets[0] != 0 || w->tiles_m * FPK_TCSL_TILE_M != w->m_pad || w->tiles_k * FPK_TCSL_TILE_K != w->k_pad)
		return fpk_error_set(FPK_EFORMAT, "spmm reference: inconsistent tile counts or offsets[0] != 0");
	float (*cvt)(uint16_t) = w->dtype == FPK_BF16 ? fpk_bf16_to_f32 : fpk_f16_to_f32;
	c.xf = calloc((size_t)n * (size_t)w->k_pad, sizeof(float));
	if (!c.xf)
		return fpk_error_set(FPK_EFAIL, "out of memory in the spmm reference");
	for (int64_t tok = 0; tok < n; tok++)
		for (int64_t kk = 0; kk < w->k; kk++)
			c.xf[tok * w->k_pad + kk] = cvt(x[tok * w->k + kk]);
	rc = fpk_parallel_for((size_t)w->tiles_m, nthreads > 0 ? nthreads : 1, ref_row_tile, &c);
	free(c.xf);
	return rc;
}
