/* fuzz_config.c: libFuzzer target for the config.json parser (fpk_model_config_parse).
 * Run: make fuzz; replayed over tests/fuzz/corpus/config by ctest. */
#include "model_config.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	fpk_model_config cfg;
	if (fpk_model_config_parse(&cfg, text, "fuzz") == 0) {
		/* an accepted config must be internally consistent */
		if (cfg.head_dim < 1 || cfg.n_kv_heads < 1 || cfg.n_heads % cfg.n_kv_heads)
			abort();
		fpk_model_config_release(&cfg);
	}
	free(text);
	return 0;
}
