/* pack.h: the packed-model directory (docs/format.md section 3, version 1): safetensors files in which every
 * encoded weight W is replaced by W.tcsl_values (U32) + W.tcsl_offsets (I32), described in __metadata__.
 * The reader implements the "a compliant reader must reject" list R1-R15 one to one. Tested by tests/unit/test_pack.c. */
#ifndef FPK_PACK_H
#define FPK_PACK_H

#include "safetensors.h"
#include "tcsl.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FPK_PACK_FORMAT "tiled-csl"  /* value of FPK_PACK_KEY_FORMAT */
#define FPK_PACK_VERSION 1           /* value of FPK_PACK_KEY_VERSION, as a decimal string */
#define FPK_PACK_KEY_FORMAT "flashllm_pack.format"
#define FPK_PACK_KEY_VERSION "flashllm_pack.version"
#define FPK_PACK_KEY_TENSOR "flashllm_pack.tcsl." /* + W: JSON object describing W's encoding */
#define FPK_PACK_SUFFIX_VALUES ".tcsl_values"
#define FPK_PACK_SUFFIX_OFFSETS ".tcsl_offsets"
#define FPK_PACK_CONFIG_SECTION "flashllm_pack" /* object added to config.json */
#define FPK_PACK_REPORT "pack_report.json"

typedef struct fpk_pack_tensor {
	char *name;        /* the original weight name W */
	fpk_tcsl tcsl;     /* values/offsets point into the read-only mapping (or an aligned copy); never written */
	uint32_t crc_values, crc_offsets; /* from the metadata, checked */
	const fpk_st_tensor *values_t, *offsets_t;
	void *copy;        /* aligned copy when the mapped arrays are not 4-byte aligned, else NULL */
} fpk_pack_tensor;

typedef struct fpk_pack {
	fpk_st_model *model;     /* every file of the pack (owned) */
	int version;
	size_t n_encoded;
	fpk_pack_tensor *encoded; /* in file order of their tcsl_values arrays */
} fpk_pack;

/* Open the pack at path (directory or .safetensors file) and check every rule R1-R15 with threads workers.
 * FPK_EFORMAT with the rule's message, FPK_EIO on I/O. Caller frees with fpk_pack_close. */
int fpk_pack_open(fpk_pack **out, const char *path, int threads);
/* The same checks on one pack file held in memory (buf must outlive the result); name is used in messages.
 * Used by the fuzz target tests/fuzz/fuzz_pack.c. */
int fpk_pack_open_memory(fpk_pack **out, const uint8_t *buf, size_t len, const char *name, int threads);
void fpk_pack_close(fpk_pack *p);
/* 1 when any file of m carries the pack format key (a pack, maybe an invalid one), else 0 */
int fpk_pack_detect(const fpk_st_model *m);
/* the encoded tensor named W, or NULL */
const fpk_pack_tensor *fpk_pack_find(const fpk_pack *p, const char *name);
/* 1 when model tensor t is one of the arrays of an encoded tensor (its name ends in a tcsl suffix) */
int fpk_pack_is_array_name(const char *name);
/* Decode encoded tensor t into w (m x k, row-major, 16-bit patterns of t->tcsl.dtype). */
int fpk_pack_decode_tensor(const fpk_pack_tensor *t, uint16_t *w);

/* Writer helpers. The metadata value for an encoded tensor (caller frees): a JSON object with shape,
 * padded_shape, dtype, tile, reorder, nnz, n_entries, crc32_values, crc32_offsets. */
char *fpk_pack_tensor_meta(const fpk_tcsl *t, uint32_t crc_values, uint32_t crc_offsets);
/* "W" + suffix (caller frees) */
char *fpk_pack_array_name(const char *name, const char *suffix);

#ifdef __cplusplus
}
#endif
#endif
