#!/usr/bin/env bash
# inspect.sh: `inspect` on the real stories260K (47 tensors, human table and JSON, file and directory) and fp16 copy.
set -euo pipefail
m=$FPK_SHARED/testdata/stories260K
out=$("$FPK_BIN" inspect "$m")
n=$(grep -c '^model\.' <<<"$out")
[ "$n" -eq 47 ] || { echo "FAIL: $n tensor rows, expected 47"; exit 1; }
grep -q '^model.layers.4.mlp.down_proj.weight *F32 *\[64, 172\] *44032 ' <<<"$out" || { echo "FAIL: down_proj row"; echo "$out"; exit 1; }
grep -q '^total: 47 tensors in 1 file, 260032 elements' <<<"$out" || { echo "FAIL: totals"; exit 1; }
json=$("$FPK_BIN" inspect --json "$m/model.safetensors")
grep -q '"tensors":[[:space:]]*47' <<<"$json" || { echo "FAIL: json totals"; echo "$json" | tail; exit 1; }
out16=$("$FPK_BIN" inspect "$FPK_SHARED/testdata/stories260K-fp16")
grep -q "F16" <<<"$out16" || { echo "FAIL: fp16"; exit 1; }
echo ok
