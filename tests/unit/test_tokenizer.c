/* test_tokenizer.c: the SentencePiece-BPE tokenizer against llama2.c's own encoder (91 golden lines), decoding,
 * a WikiText-2 round trip, unsupported kinds, and token files. Run: ctest -R test_tokenizer. */
#include "fpk_test.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>

static fpk_tokenizer *load(void)
{
	fpk_tokenizer *t = NULL;
	CHECK_OK(fpk_tokenizer_load(&t, fpk_test_shared("testdata/stories260K")));
	return t;
}

static void tokenizer_should_match_llama2c_golden_lines(void)
{
	fpk_tokenizer *t = load();
	char *buf = NULL;
	size_t len = 0;
	CHECK_OK(fpk_read_file(fpk_test_shared("testdata/stories260K/reference/tokenization_golden.jsonl"), &buf, &len));
	if (!t || !buf)
		goto done;
	int lines = 0, bad = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		cJSON *o = cJSON_Parse(line);
		const cJSON *text = cJSON_GetObjectItem(o, "text"), *ids = cJSON_GetObjectItem(o, "ids");
		CHECK(cJSON_IsString(text) && cJSON_IsArray(ids));
		int *got = NULL;
		size_t n = 0;
		CHECK_OK(fpk_tokenizer_encode(t, text->valuestring, strlen(text->valuestring), 1, &got, &n));
		int ok = (int)n == cJSON_GetArraySize(ids);
		for (size_t i = 0; ok && i < n; i++)
			ok = got[i] == cJSON_GetArrayItem(ids, (int)i)->valueint;
		if (!ok && bad++ < 3)
			fprintf(stderr, "mismatch on line %d: %.60s\n", lines + 1, text->valuestring);
		/* decoding the ids gives the text back */
		char *dec = NULL;
		CHECK_OK(fpk_tokenizer_decode(t, got + 1, n - 1, &dec, NULL));
		if (dec && strcmp(dec, text->valuestring) && bad++ < 3)
			fprintf(stderr, "decode mismatch on line %d\n", lines + 1);
		free(dec);
		free(got);
		cJSON_Delete(o);
		lines++;
	}
	CHECK_EQ_INT(lines, 91);
	CHECK_EQ_INT(bad, 0);
done:
	free(buf);
	fpk_tokenizer_free(t);
}

static void tokenizer_should_round_trip_wikitext2(void)
{
	fpk_tokenizer *t = load();
	char *buf = NULL, *dec = NULL;
	size_t len = 0, n = 0, dl = 0;
	int *ids = NULL;
	CHECK_OK(fpk_read_file(fpk_test_shared("testdata/wikitext-2-raw/wiki.test.raw"), &buf, &len));
	if (!t || !buf)
		goto done;
	CHECK_OK(fpk_tokenizer_encode(t, buf, len, 1, &ids, &n));
	CHECK(n > 100000 && n < len);
	CHECK_EQ_INT(ids[0], 1);
	CHECK_OK(fpk_tokenizer_decode(t, ids + 1, n - 1, &dec, &dl));
	CHECK(dec && dl == len && !memcmp(dec, buf, len));
done:
	free(buf);
	free(dec);
	free(ids);
	fpk_tokenizer_free(t);
}

static void tokenizer_should_decode_bytes_and_leading_space(void)
{
	fpk_tokenizer *t = load();
	char p[64];
	if (!t)
		return;
	CHECK_EQ_INT(fpk_tokenizer_piece(t, 1, 13, p, sizeof(p)), 1); /* <0x0A> */
	CHECK(p[0] == '\n');
	CHECK_EQ_INT(fpk_tokenizer_piece(t, 1, 265, p, sizeof(p)), 3); /* "▁the" after BOS: "the" */
	CHECK(!strcmp(p, "the"));
	CHECK_EQ_INT(fpk_tokenizer_piece(t, 300, 265, p, sizeof(p)), 4);
	CHECK(!strcmp(p, " the"));
	CHECK_ERR(fpk_tokenizer_piece(t, 1, 512, p, sizeof(p)), FPK_EFORMAT, "outside the vocabulary");
	/* an emoji is not in the vocab: byte fallback, 4 byte tokens after the leading U+2581 */
	int *ids = NULL;
	size_t n = 0;
	CHECK_OK(fpk_tokenizer_encode(t, "\xF0\x9F\x98\x80", 4, 0, &ids, &n));
	CHECK(n == 5 && ids[1] == 3 + 0xF0 && ids[4] == 3 + 0x80);
	free(ids);
	CHECK_OK(fpk_tokenizer_encode(t, "", 0, 1, &ids, &n));
	CHECK(n == 1 && ids[0] == 1);
	free(ids);
	fpk_tokenizer_free(t);
}

static void tokenizer_should_refuse_byte_level_bpe_and_suggest_tokens(void)
{
	fpk_tokenizer *t = NULL;
	const char *bl = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":null,"
			 "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}";
	CHECK_ERR(fpk_tokenizer_parse(&t, bl, strlen(bl), "x"), FPK_EFORMAT, "ByteLevel");
	CHECK(strstr(fpk_error_msg(), "--tokens"));
	const char *wp = "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}";
	CHECK_ERR(fpk_tokenizer_parse(&t, wp, strlen(wp), "x"), FPK_EFORMAT, "is not BPE");
	const char *bad = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]},\"normalizer\":{\"type\":"
			  "\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\u2581\"},{\"type\":\"Replace\","
			  "\"pattern\":{\"String\":\" \"},\"content\":\"\u2581\"}]}}";
	CHECK_ERR(fpk_tokenizer_parse(&t, bad, strlen(bad), "x"), FPK_EFORMAT, "missing from vocab");
	CHECK(t == NULL);
	CHECK_ERR(fpk_tokenizer_load(&t, fpk_test_shared("testdata/wikitext-2-raw")), FPK_EUSAGE, "no tokenizer.json");
}

static void tokens_should_read_text_and_u32_files(void)
{
	const char *txt = fpk_test_tmp("tok_ids.txt"), *bin = fpk_test_tmp("tok_ids.u32");
	CHECK_OK(fpk_write_file_atomic(txt, "1 403\n407\t261 ", 14));
	const uint8_t le[] = {1, 0, 0, 0, 0x93, 1, 0, 0};
	CHECK_OK(fpk_write_file_atomic(bin, le, sizeof(le)));
	int *ids = NULL;
	size_t n = 0;
	CHECK_OK(fpk_tokens_read(txt, 512, &ids, &n));
	CHECK(n == 4 && ids[0] == 1 && ids[1] == 403 && ids[3] == 261);
	free(ids);
	CHECK_OK(fpk_tokens_read(bin, 512, &ids, &n));
	CHECK(n == 2 && ids[1] == 403);
	free(ids);
	CHECK_ERR(fpk_tokens_read(txt, 300, &ids, &n), FPK_EFORMAT, "outside the vocabulary");
	CHECK_OK(fpk_write_file_atomic(bin, le, 7));
	CHECK_ERR(fpk_tokens_read(bin, 512, &ids, &n), FPK_EFORMAT, "whole number");
	CHECK_OK(fpk_write_file_atomic(txt, "1 x2", 4));
	CHECK_ERR(fpk_tokens_read(txt, 512, &ids, &n), FPK_EFORMAT, "byte 2");
}

int main(void)
{
	RUN(tokenizer_should_match_llama2c_golden_lines);
	RUN(tokenizer_should_round_trip_wikitext2);
	RUN(tokenizer_should_decode_bytes_and_leading_space);
	RUN(tokenizer_should_refuse_byte_level_bpe_and_suggest_tokens);
	RUN(tokens_should_read_text_and_u32_files);
	TEST_EXIT();
}
