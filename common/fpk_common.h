/* fpk_common.h: errors, dtypes, 16-bit float conversion, checksums, files and threads shared by every stage.
 * Library code returns fpk status codes and records a message; only cli/ prints. Tested by tests/unit/test_common.c. */
#ifndef FPK_COMMON_H
#define FPK_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FPK_VERSION "0.1.0"

/* ---- status codes (negative) and the exit codes they map to (docs/cli.md) ---- */
typedef enum fpk_status {
	FPK_OK = 0,
	FPK_EFAIL = -1,   /* the work failed or a verification found a mismatch   -> exit 1 */
	FPK_EUSAGE = -2,  /* bad options or arguments                             -> exit 2 */
	FPK_EFORMAT = -3, /* bad input data (malformed file, wrong shape, NaN...) -> exit 3 */
	FPK_EIO = -4,     /* I/O or system error (open, write, disk full, memory) -> exit 4 */
	FPK_EGPU = -5,    /* GPU error or no GPU when one is required             -> exit 5 */
} fpk_status;

/* Record a message for the calling thread and return code. Messages: lowercase, problem first, subject in quotes. */
int fpk_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with context ("file 'x': " + old). Returns code. */
int fpk_error_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *fpk_error_msg(void);
void fpk_error_clear(void);
int fpk_exit_code(int status);

/* ---- dtypes: a table, never renumbered (values reach files through names only) ---- */
typedef enum fpk_dtype {
	FPK_F64, FPK_F32, FPK_F16, FPK_BF16,
	FPK_I64, FPK_I32, FPK_I16, FPK_I8,
	FPK_U64, FPK_U32, FPK_U16, FPK_U8,
	FPK_BOOL, FPK_F8_E4M3, FPK_F8_E5M2,
	FPK_DTYPE_COUNT
} fpk_dtype;

typedef struct fpk_dtype_info {
	const char *name; /* safetensors spelling */
	unsigned size;    /* bytes per element */
	int is_float;     /* 1 for F64/F32/F16/BF16 (F8 kinds are opaque: 0) */
} fpk_dtype_info;

extern const fpk_dtype_info fpk_dtypes[FPK_DTYPE_COUNT];
int fpk_dtype_from_name(const char *name, fpk_dtype *out); /* 0 or FPK_EFORMAT */

/* ---- 16-bit floats (round to nearest even; NaN stays NaN) ---- */
float fpk_f16_to_f32(uint16_t h);
uint16_t fpk_f32_to_f16(float f);
float fpk_bf16_to_f32(uint16_t h);
uint16_t fpk_f32_to_bf16(float f);
/* element i of a float tensor of dtype dt (F32/F16/BF16/F64) as float */
float fpk_load_f32(const void *data, fpk_dtype dt, size_t i);

/* ---- CRC-32 (zlib polynomial) over any length ---- */
uint32_t fpk_crc32(uint32_t crc, const void *buf, size_t len);

/* ---- files ---- */
typedef struct fpk_map {
	const uint8_t *data; /* read-only mapping (NULL for an empty file) */
	uint64_t size;
} fpk_map;
int fpk_map_file(fpk_map *m, const char *path); /* caller releases with fpk_map_release */
void fpk_map_release(fpk_map *m);

/* An output file written under "<path>.tmp.<pid>" and renamed over path only by commit (after fsync). */
typedef struct fpk_atomic_file {
	char *path;
	char *tmp_path;
	int fd;
} fpk_atomic_file;
int fpk_atomic_open(fpk_atomic_file *f, const char *path);
int fpk_atomic_write(fpk_atomic_file *f, const void *buf, size_t len);
int fpk_atomic_commit(fpk_atomic_file *f); /* fsync (unless durability is off), rename, release */
/* Durability of every committed output (default on: fsync before the rename). Off (`--no-sync`): outputs are
 * still written under a temporary name and renamed only when complete, but not forced to disk, like cp. */
void fpk_io_set_durable(int on);
int fpk_io_durable(void);
void fpk_atomic_abort(fpk_atomic_file *f); /* unlink the temporary, release; safe to call twice */

int fpk_write_file_atomic(const char *path, const void *buf, size_t len);
int fpk_read_file(const char *path, char **buf, size_t *len); /* NUL-terminated; caller frees */
int fpk_path_exists(const char *path);
int fpk_is_dir(const char *path);
int fpk_mkdir_p(const char *path);
int fpk_rmtree(const char *path); /* remove a directory tree (or file); missing is ok */
int fpk_copy_file(const char *src, const char *dst); /* atomic at dst */
char *fpk_path_join(const char *a, const char *b); /* caller frees */
/* 1 when b is a (or is inside a), after resolving both; used to refuse OUT inside IN */
int fpk_path_is_within(const char *inner, const char *outer);

/* Output directories: built as "<dir>.tmp.<pid>", renamed to dir by fpk_outdir_commit. With force, an existing
 * dir is replaced only at commit time. */
typedef struct fpk_outdir {
	char *path;
	char *tmp_path;
	int force;
} fpk_outdir;
int fpk_outdir_begin(fpk_outdir *d, const char *path, int force);
int fpk_outdir_commit(fpk_outdir *d);
void fpk_outdir_abort(fpk_outdir *d);

/* ---- threads ---- */
int fpk_default_threads(void); /* online cores, at least 1 */
/* Run fn(ctx, i, tid) for i in [0, n) on nthreads workers (dynamic schedule); the first non-zero return stops
 * the remaining items and is returned (its message is carried to the caller's thread). */
typedef int (*fpk_task_fn)(void *ctx, size_t i, int tid);
int fpk_parallel_for(size_t n, int nthreads, fpk_task_fn fn, void *ctx);

/* ---- progress: library code reports, the CLI draws ---- */
typedef void (*fpk_progress_fn)(void *ud, const char *what, uint64_t done, uint64_t total);

/* ---- time ---- */
double fpk_now_s(void); /* monotonic seconds */
long fpk_peak_rss_kb(void);

#ifdef __cplusplus
}
#endif
#endif
