/* tokenizer.h: Hugging Face tokenizer.json of the SentencePiece-BPE kind (Llama 2, Mistral, stories260K) and
 * pre-tokenized id files. Tested by tests/unit/test_tokenizer.c (91-line llama2.c golden) and tests/fuzz/fuzz_tokenizer.c. */
#ifndef FPK_TOKENIZER_H
#define FPK_TOKENIZER_H

#include "fpk_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fpk_tokenizer fpk_tokenizer;

/* path: a model directory (holding tokenizer.json) or a tokenizer.json file. Supported: model type "BPE" with
 * byte_fallback, a Prepend("\u2581") + Replace(" " -> "\u2581") normalizer (or the Metaspace pre-tokenizer), no
 * ByteLevel pre-tokenizer. Anything else: FPK_EFORMAT with a message suggesting --tokens.
 * Caller frees with fpk_tokenizer_free. */
int fpk_tokenizer_load(fpk_tokenizer **out, const char *path);
int fpk_tokenizer_parse(fpk_tokenizer **out, const char *json_text, size_t len, const char *name);
void fpk_tokenizer_free(fpk_tokenizer *tok);

int fpk_tokenizer_vocab_size(const fpk_tokenizer *tok);
int fpk_tokenizer_bos(const fpk_tokenizer *tok); /* -1 when none */
int fpk_tokenizer_eos(const fpk_tokenizer *tok);

/* Encode len bytes of text (UTF-8; invalid bytes go through byte fallback). add_bos prepends BOS (as the
 * post-processor of these tokenizers does). *ids is allocated (caller frees), *n receives the count. */
int fpk_tokenizer_encode(const fpk_tokenizer *tok, const char *text, size_t len, int add_bos, int **ids, size_t *n);

/* The text of one token as llama2.c prints it: U+2581 -> ' ', <0xXX> -> that byte, and the leading space of a
 * token right after BOS (prev == bos) dropped. Writes at most cap-1 bytes + NUL into buf; returns the length
 * (may contain a NUL byte for <0x00>), or a negative status for an id out of range. */
int fpk_tokenizer_piece(const fpk_tokenizer *tok, int prev, int id, char *buf, size_t cap);

/* Decode a whole sequence (specials other than byte tokens are dropped; leading space after BOS dropped).
 * *text allocated, NUL-terminated; caller frees. */
int fpk_tokenizer_decode(const fpk_tokenizer *tok, const int *ids, size_t n, char **text, size_t *len);

/* Pre-tokenized ids: files ending in ".bin" or ".u32" hold little-endian uint32 ids; anything else holds
 * whitespace-separated decimal ids. Ids >= vocab (when vocab > 0) are rejected. Caller frees *ids. */
int fpk_tokens_read(const char *path, int vocab, int **ids, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
