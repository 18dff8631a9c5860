/* fuzz_safetensors.c: libFuzzer target for the safetensors header parser and validator (any bytes as a file).
 * Run: make fuzz; replayed over tests/fuzz/corpus/safetensors by ctest. */
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fpk_st_file *f = NULL;
	if (fpk_st_open_memory(&f, data, size, "fuzz") == 0) {
		/* touch every accepted tensor's bytes: they must lie inside the input */
		volatile uint8_t sink = 0;
		for (size_t i = 0; i < f->n_tensors; i++)
			if (f->tensors[i].nbytes)
				sink ^= f->tensors[i].data[0] ^ f->tensors[i].data[f->tensors[i].nbytes - 1];
		(void)sink;
		fpk_st_close(f);
	}
	return 0;
}
