/* fuzz_channels.c: libFuzzer target for the channel-config reader: whatever it accepts must hold permutations
 * and survive a write/read round trip. Run: make fuzz; replayed over tests/fuzz/corpus/channels by ctest. */
#include "channels.h"

#include <stdlib.h>
#include <string.h>

static void check(const fpk_channels *c)
{
	unsigned char seen[65536];
	for (int m = 0; m < FPK_CH_MODES; m++) {
		if (!c->rows[m])
			continue;
		for (int l = 0; l < c->n_layers; l++)
			for (int h = 0; h < fpk_channels_heads(c, m); h++) {
				const int *r = fpk_channels_row(c, m, l, h);
				memset(seen, 0, (size_t)c->head_dim);
				for (int j = 0; j < c->head_dim; j++)
					if (r[j] < 0 || r[j] >= c->head_dim || seen[r[j]]++)
						abort();
			}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const fpk_channels_expect model = {2, 4, 2, 4};
	fpk_channels c, d;
	for (int pass = 0; pass < 2; pass++) {
		if (fpk_channels_parse(&c, (const char *)data, size, "fuzz", pass ? &model : NULL))
			continue;
		check(&c);
		char *s = NULL;
		size_t n = 0;
		if (fpk_channels_to_json(&c, &s, &n) == 0) {
			if (fpk_channels_parse(&d, s, n, "again", NULL) || d.modes != c.modes || d.head_dim != c.head_dim)
				abort();
			fpk_channels_release(&d);
			free(s);
		}
		fpk_channels_release(&c);
	}
	return 0;
}
