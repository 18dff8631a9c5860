#!/usr/bin/env bash
# encode_pruned.sh: the pipeline prune -> encode -> decode on the real stories260K checkpoints (fp32 with
# --dtype f16, and fp16), magnitude-pruned by `flashllm-pack prune` (70 % per tensor, and 2:4). Expect every
# pruned target encoded and decode(encode(W)) == W bit for bit (fp32: == W rounded). Skips when prune is absent.
set -euo pipefail
B=$FPK_BIN T=$FPK_TOOLS S=$FPK_SHARED/testdata
W=$FPK_TMP/encode_pruned; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*" >&2; exit 1; }
if ! "$B" prune --help > /dev/null 2>&1; then
	echo "skip: this build has no working 'prune'"
	exit 0
fi
"$B" prune -q "$S/stories260K-fp16" -o "$W/z16" --sparsity 0.7
"$B" encode -q "$W/z16" -o "$W/p16"
grep -q '"encoded":[[:space:]]*35' "$W/p16/pack_report.json" || fail "fp16: expected 35 encoded tensors"
"$B" decode -q "$W/p16" -o "$W/d16"
"$T/st_compare" "$W/z16" "$W/d16"

"$B" prune -q "$S/stories260K" -o "$W/z32" --pattern 2:4
"$B" encode -q "$W/z32" -o "$W/p32" --dtype f16
grep -q '"encoded":[[:space:]]*35' "$W/p32/pack_report.json" || fail "fp32 2:4: expected 35 encoded tensors"
"$B" decode -q "$W/p32" -o "$W/d32"
"$T/st_compare" "$W/z32" "$W/d32"
echo "ok"
