/* channels.h: the Double Sparsity channel-config JSON ("model.layers.{i}.self_attn.{q,k,qk}_proj": rows of channel
 * permutations): a validating reader (rules C1-C9, docs/calibrate.md) and a writer. Tested by tests/unit/test_channels.c
 * and tests/fuzz/fuzz_channels.c. */
#ifndef FPK_CHANNELS_H
#define FPK_CHANNELS_H

#include "fpk_common.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* modes, in file order; the bit of mode m is 1 << m */
typedef enum fpk_ch_mode { FPK_CH_Q, FPK_CH_K, FPK_CH_QK, FPK_CH_MODES } fpk_ch_mode;
extern const char *const fpk_ch_mode_names[FPK_CH_MODES]; /* "q", "k", "qk" */

typedef struct fpk_channels {
	int n_layers, n_heads, n_kv_heads, head_dim;
	int modes;                 /* bit set of the modes present */
	int *rows[FPK_CH_MODES];   /* mode m: (n_layers, heads(m), head_dim) permutations; NULL when absent */
} fpk_channels;

/* What the model says; a field <= 0 is inferred from the file instead (then it must be consistent in itself). */
typedef struct fpk_channels_expect {
	int n_layers, n_heads, n_kv_heads, head_dim;
} fpk_channels_expect;

/* Rows per head of mode m: n_heads for q/qk, n_kv_heads for k. */
int fpk_channels_heads(const fpk_channels *c, int mode);
const int *fpk_channels_row(const fpk_channels *c, int mode, int layer, int head);

/* Parse and validate; every failure is FPK_EFORMAT naming the rule, the key and what was expected.
 * exp may be NULL. Caller releases with fpk_channels_release. */
int fpk_channels_parse(fpk_channels *out, const char *json, size_t len, const char *name, const fpk_channels_expect *exp);
int fpk_channels_load(fpk_channels *out, const char *path, const fpk_channels_expect *exp);
void fpk_channels_release(fpk_channels *c);

/* The JSON text of c (keys layer by layer, q, k, qk; one line per key). Caller frees *text. */
int fpk_channels_to_json(const fpk_channels *c, char **text, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
