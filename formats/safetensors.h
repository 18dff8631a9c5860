/* safetensors.h: strict mmap reader and streaming atomic writer for .safetensors files and model directories
 * (single file or sharded with model.safetensors.index.json). Rules: docs/format.md section 1.
 * Tested by tests/unit/test_safetensors.c, tests/cli/corrupt_*.sh and tests/fuzz/fuzz_safetensors.c. */
#ifndef FPK_SAFETENSORS_H
#define FPK_SAFETENSORS_H

#include "fpk_common.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FPK_MAX_DIMS 8
#define FPK_ST_MAX_HEADER (100u * 1024 * 1024) /* the sane maximum for the JSON header */

typedef struct fpk_st_tensor {
	char *name;
	fpk_dtype dtype;
	int ndim;
	int64_t shape[FPK_MAX_DIMS];
	uint64_t numel;
	uint64_t begin, end;  /* data_offsets, relative to the data region */
	const uint8_t *data;  /* points into the mapping; NULL when nbytes == 0 */
	uint64_t nbytes;
	int shard;            /* index of the file in the model's shard list (0 for single files) */
} fpk_st_tensor;

typedef struct fpk_st_file {
	char *path;
	fpk_map map;          /* empty when opened from memory */
	const uint8_t *bytes; /* whole file */
	uint64_t size;
	uint64_t header_len;  /* JSON bytes (first 8 bytes of the file, little-endian) */
	uint64_t data_offset; /* 8 + header_len */
	size_t n_tensors;
	fpk_st_tensor *tensors; /* sorted by begin offset (file order) */
	cJSON *metadata;        /* the "__metadata__" object (string -> string), or NULL */
} fpk_st_file;

/* Open and validate path. Caller frees with fpk_st_close. FPK_EFORMAT on any rule broken, FPK_EIO on I/O. */
int fpk_st_open(fpk_st_file **out, const char *path);
/* Validate a file held in memory (buf must outlive the result); name is used in messages. */
int fpk_st_open_memory(fpk_st_file **out, const uint8_t *buf, size_t len, const char *name);
void fpk_st_close(fpk_st_file *f);
const fpk_st_tensor *fpk_st_find(const fpk_st_file *f, const char *name);
/* metadata value for key, or NULL */
const char *fpk_st_meta(const fpk_st_file *f, const char *key);

/* A model: a .safetensors file, or a directory holding model.safetensors or a sharded set with its index. */
typedef struct fpk_st_model {
	char *dir;            /* directory that holds the files (for a single file: its directory) */
	char *index_name;     /* "model.safetensors.index.json" when sharded, else NULL */
	cJSON *index;         /* parsed index (kept to preserve unknown fields), or NULL */
	size_t n_shards;
	char **shard_names;   /* file names relative to dir, in index order of first appearance */
	fpk_st_file **shards;
	size_t n_tensors;
	const fpk_st_tensor **tensors; /* every tensor: shard by shard, file order within a shard */
} fpk_st_model;

int fpk_st_model_open(fpk_st_model **out, const char *path);
void fpk_st_model_close(fpk_st_model *m);
const fpk_st_tensor *fpk_st_model_find(const fpk_st_model *m, const char *name);

/* Streaming writer. Declare every tensor (in output order), then begin (writes the header), then write each
 * tensor's bytes in declaration order, in as many chunks as wanted, then commit (fsync + rename). Abort (or a
 * failed call) removes the temporary file; the final path never holds a partial file. */
typedef struct fpk_st_writer fpk_st_writer;
int fpk_st_writer_new(fpk_st_writer **out, const char *path);
/* key/value pair for __metadata__ (strings); kept in insertion order */
int fpk_st_writer_meta(fpk_st_writer *w, const char *key, const char *value);
int fpk_st_writer_add(fpk_st_writer *w, const char *name, fpk_dtype dtype, int ndim, const int64_t *shape);
int fpk_st_writer_begin(fpk_st_writer *w);
int fpk_st_writer_write(fpk_st_writer *w, const void *data, size_t len);
int fpk_st_writer_commit(fpk_st_writer *w); /* frees w */
void fpk_st_writer_abort(fpk_st_writer *w); /* frees w; NULL is fine */
/* the descriptor of the temporary output after begin (for writeback hints such as sync_file_range), else -1 */
int fpk_st_writer_fd(const fpk_st_writer *w);
/* total size the file will have (valid after the last add) */
uint64_t fpk_st_writer_size(const fpk_st_writer *w);

#ifdef __cplusplus
}
#endif
#endif
