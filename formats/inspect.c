/* inspect.c: exact-zero counts per tensor, one task per tensor on all cores. */
#include "inspect.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

uint64_t fpk_count_zeros(const void *data, fpk_dtype dt, uint64_t n)
{
	uint64_t z = 0;
	const uint8_t *b = data;
	switch (fpk_dtypes[dt].size) {
	case 1: {
		uint8_t mask = (dt == FPK_F8_E4M3 || dt == FPK_F8_E5M2) ? 0x7f : 0xff;
		for (uint64_t i = 0; i < n; i++)
			z += (b[i] & mask) == 0;
		break;
	}
	case 2: {
		uint16_t mask = fpk_dtypes[dt].is_float ? 0x7fff : 0xffff;
		for (uint64_t i = 0; i < n; i++) {
			uint16_t v;
			memcpy(&v, b + 2 * i, 2);
			z += (v & mask) == 0;
		}
		break;
	}
	case 4: {
		uint32_t mask = fpk_dtypes[dt].is_float ? 0x7fffffffu : 0xffffffffu;
		for (uint64_t i = 0; i < n; i++) {
			uint32_t v;
			memcpy(&v, b + 4 * i, 4);
			z += (v & mask) == 0;
		}
		break;
	}
	case 8: {
		uint64_t mask = fpk_dtypes[dt].is_float ? 0x7fffffffffffffffull : ~0ull;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t v;
			memcpy(&v, b + 8 * i, 8);
			z += (v & mask) == 0;
		}
		break;
	}
	}
	return z;
}

typedef struct ictx {
	const fpk_st_model *m;
	fpk_inspect_row *rows;
	atomic_uint_fast64_t done;
	uint64_t total;
	fpk_progress_fn progress;
	void *ud;
} ictx;

static int inspect_one(void *vctx, size_t i, int tid)
{
	ictx *c = vctx;
	const fpk_st_tensor *t = c->m->tensors[i];
	c->rows[i].t = t;
	c->rows[i].zeros = t->data ? fpk_count_zeros(t->data, t->dtype, t->numel) : 0;
	uint64_t d = atomic_fetch_add(&c->done, t->nbytes) + t->nbytes;
	if (c->progress && tid == 0)
		c->progress(c->ud, "counting zeros", d, c->total);
	return 0;
}

int fpk_inspect_model(const fpk_st_model *m, int threads, fpk_inspect_row **rows, fpk_progress_fn progress, void *ud)
{
	ictx c = {.m = m, .progress = progress, .ud = ud};
	*rows = NULL;
	c.rows = calloc(m->n_tensors ? m->n_tensors : 1, sizeof(*c.rows));
	if (!c.rows)
		return fpk_error_set(FPK_EIO, "out of memory");
	atomic_init(&c.done, 0);
	for (size_t i = 0; i < m->n_tensors; i++)
		c.total += m->tensors[i]->nbytes;
	int rc = fpk_parallel_for(m->n_tensors, threads, inspect_one, &c);
	if (progress)
		progress(ud, "counting zeros", c.total, c.total);
	if (rc) {
		free(c.rows);
		return rc;
	}
	*rows = c.rows;
	return 0;
}
