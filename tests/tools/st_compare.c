/* st_compare.c: test tool: 0 when checkpoint B holds the same tensors as A, in the same order, bit for bit; where A
 * is F32 and B is F16/BF16, B must be A rounded (zeros as +0.0). Usage: st_compare A B */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "safetensors.h"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: st_compare A B\n");
		return 2;
	}
	fpk_st_model *a = NULL, *b = NULL;
	if (fpk_st_model_open(&a, argv[1]) || fpk_st_model_open(&b, argv[2])) {
		fprintf(stderr, "st_compare: %s\n", fpk_error_msg());
		return 2;
	}
	int bad = 0;
	if (a->n_tensors != b->n_tensors) {
		fprintf(stderr, "st_compare: %zu tensors vs %zu\n", a->n_tensors, b->n_tensors);
		bad = 1;
	}
	size_t rounded = 0;
	for (size_t i = 0; !bad && i < a->n_tensors; i++) {
		const fpk_st_tensor *x = a->tensors[i], *y = b->tensors[i];
		if (strcmp(x->name, y->name) || x->ndim != y->ndim || x->numel != y->numel) {
			fprintf(stderr, "st_compare: tensor %zu: '%s' vs '%s' (names, ranks or sizes differ)\n", i, x->name, y->name);
			bad = 1;
			break;
		}
		if (x->dtype == y->dtype) {
			if (x->nbytes && memcmp(x->data, y->data, x->nbytes)) {
				fprintf(stderr, "st_compare: tensor '%s': bytes differ\n", x->name);
				bad = 1;
			}
			continue;
		}
		if (x->dtype != FPK_F32 || (y->dtype != FPK_F16 && y->dtype != FPK_BF16)) {
			fprintf(stderr, "st_compare: tensor '%s': dtype %s vs %s\n", x->name, fpk_dtypes[x->dtype].name,
				fpk_dtypes[y->dtype].name);
			bad = 1;
			break;
		}
		rounded++;
		for (uint64_t e = 0; e < x->numel; e++) {
			float f;
			uint16_t h;
			memcpy(&f, x->data + 4 * e, 4);
			memcpy(&h, y->data + 2 * e, 2);
			uint16_t want = y->dtype == FPK_F16 ? fpk_f32_to_f16(f) : fpk_f32_to_bf16(f);
			if ((want & 0x7fff) == 0)
				want = 0;
			if (want != h) {
				fprintf(stderr, "st_compare: tensor '%s' element %llu: 0x%04x, expected 0x%04x\n", x->name,
					(unsigned long long)e, h, want);
				bad = 1;
				break;
			}
		}
	}
	if (!bad)
		printf("st_compare: %zu tensors equal (%zu compared after rounding)\n", a->n_tensors, rounded);
	fpk_st_model_close(a);
	fpk_st_model_close(b);
	return bad;
}
