/* fuzz_tokenizer.c: libFuzzer target for the tokenizer: input byte 0 even -> parse the rest as tokenizer.json (and
 * use it); odd -> encode the rest with a small built-in byte-fallback BPE and require decode(encode(x)) == x.
 * Run: make fuzz; replayed over tests/fuzz/corpus/tokenizer by ctest. */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fpk_tokenizer *builtin(void)
{
	static fpk_tokenizer *t;
	if (t)
		return t;
	char *js = malloc(65536);
	size_t o = 0;
	o += (size_t)sprintf(js + o, "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
				     "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
				     "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"
				     "\"\\u2581\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
				     "\"pre_tokenizer\":null,\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\","
				     "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2");
	for (int b = 0; b < 256; b++)
		o += (size_t)sprintf(js + o, ",\"<0x%02X>\":%d", b, 3 + b);
	const char *extra[] = {"\\u2581", "a", "b", "e", "t", "h", "\\u2581t", "he", "\\u2581the", "aa", "aaa", "\\u00e9"};
	for (int i = 0; i < 12; i++)
		o += (size_t)sprintf(js + o, ",\"%s\":%d", extra[i], 259 + i);
	o += (size_t)sprintf(js + o, "},\"merges\":[\"\\u2581 t\",\"h e\",\"\\u2581t he\",\"a a\",\"aa a\"]}}");
	if (fpk_tokenizer_parse(&t, js, o, "builtin"))
		abort();
	free(js);
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	int *ids = NULL;
	size_t n = 0;
	char *dec = NULL;
	size_t dl = 0;
	if (!(data[0] & 1)) {
		fpk_tokenizer *t = NULL;
		if (fpk_tokenizer_parse(&t, text, len, "fuzz") == 0) {
			if (fpk_tokenizer_encode(t, "hello world \xF0\x9F\x98\x80", 15, 1, &ids, &n) == 0) {
				for (size_t i = 0; i < n; i++)
					if (ids[i] < 0 || ids[i] >= fpk_tokenizer_vocab_size(t))
						abort();
				if (fpk_tokenizer_decode(t, ids, n, &dec, &dl) == 0)
					free(dec);
				free(ids);
			}
			fpk_tokenizer_free(t);
		}
		return 0;
	}
	fpk_tokenizer *t = builtin();
	if (fpk_tokenizer_encode(t, text, len, 1, &ids, &n))
		abort();
	if (fpk_tokenizer_decode(t, ids + 1, n - 1, &dec, &dl))
		abort();
	if (!memmem(text, len, "\xE2\x96\x81", 3) && (dl != len || memcmp(dec, text, len)))
		abort(); /* lossless, except that a literal U+2581 decodes as a space */
	free(dec);
	free(ids);
	return 0;
}
