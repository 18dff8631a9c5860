/* encode.h: `flashllm-pack encode` and `decode` as library calls: a checkpoint directory (or file) to a packed-model
 * directory (docs/format.md section 3) and back. Tested by tests/cli/encode_*.sh and tests/unit/test_pack.c. */
#ifndef FPK_ENCODE_H
#define FPK_ENCODE_H

#include "fpk_common.h"
#include "select.h"

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fpk_encode_opts {
	const char *in;       /* checkpoint: .safetensors file or model directory */
	const char *out;      /* pack directory to create */
	double min_sparsity;  /* tensors with fewer exact zeros stay dense (default 0.5) */
	int reorder;          /* 1: ahead-of-time bank-conflict order (default); 0: row-major */
	int dtype;            /* -1: F32 weights stay dense; FPK_F16 / FPK_BF16: F32 weights are rounded to it */
	fpk_select select;    /* targets: default rule or include globs, minus exclude globs */
	int threads;          /* < 1: all cores; output bytes do not depend on it */
	int force;            /* replace an existing out */
	int allow_nan;        /* store NaN weights instead of failing */
	fpk_progress_fn progress;
	void *progress_ud;
} fpk_encode_opts;

void fpk_encode_opts_init(fpk_encode_opts *o);

typedef struct fpk_encode_report {
	cJSON *json;               /* what pack_report.json holds (caller frees with fpk_encode_report_release) */
	size_t n_tensors, n_encoded, n_dense;
	uint64_t bytes_in, bytes_out; /* tensor data bytes read and written */
	uint64_t encoded_dense_bytes, encoded_stored_bytes; /* of the encoded tensors: as dense 16-bit, as Tiled-CSL */
	double seconds, encode_seconds; /* wall time; time inside the Tiled-CSL encoder */
} fpk_encode_report;
void fpk_encode_report_release(fpk_encode_report *r);

/* Encode o->in into the new directory o->out (built under a temporary name, renamed when complete; nothing is
 * left behind on failure). FPK_EUSAGE (bad options, existing output, non-2-D include), FPK_EFORMAT (bad input,
 * NaN), FPK_EIO. report may be NULL. */
int fpk_encode_run(const fpk_encode_opts *o, fpk_encode_report *report);

/* Decode the pack at in into a dense checkpoint directory out: same files, tensor names and order as the
 * original, config.json without the flashllm_pack section. */
int fpk_decode_run(const char *in, const char *out, int force, int threads, fpk_progress_fn progress, void *ud);

#ifdef __cplusplus
}
#endif
#endif
