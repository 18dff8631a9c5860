/* fuzz_pack.c: libFuzzer target for the packed-model reader (rules R1-R15 of docs/format.md 3.4) on any bytes as a
 * pack file; accepted packs are decoded. Run: make fuzz; replayed over tests/fuzz/corpus/pack by ctest. */
#include "pack.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fpk_pack *p = NULL;
	if (fpk_pack_open_memory(&p, data, size, "fuzz.safetensors", 1) == 0) {
		for (size_t i = 0; i < p->n_encoded; i++) {
			const fpk_tcsl *t = &p->encoded[i].tcsl;
			if (t->m * t->k > (1 << 24))
				continue;
			uint16_t *w = malloc((size_t)(t->m * t->k) * 2);
			if (w && fpk_pack_decode_tensor(&p->encoded[i], w) != 0)
				abort(); /* a validated pack must decode */
			free(w);
		}
		fpk_pack_close(p);
	}
	return 0;
}
