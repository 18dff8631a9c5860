#!/usr/bin/env bash
# verify_stories.sh (GPU): `verify --device gpu --require-gpu --bench` on packs of the real stories260K (fp16
# pruned to 80%, bf16 pruned to 80%, and the dense fp16 weights with every tile over 4096 entries): exit 0 and
# per-tensor timings; --rtol 1e-12 must fail with exit 1.
set -euo pipefail
B=$FPK_BIN T=$FPK_TOOLS S=$FPK_SHARED/testdata
W=$FPK_TMP/verify_gpu; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*" >&2; exit 1; }
"$T/zero_fraction" "$S/stories260K-fp16" "$W/z16" 0.8
"$T/zero_fraction" "$S/stories260K" "$W/z32" 0.8
"$B" encode -q "$W/z16" -o "$W/p16"
"$B" encode -q "$W/z32" -o "$W/pb" --dtype bf16
"$B" encode -q "$S/stories260K-fp16" -o "$W/pd" --min-sparsity 0
"$B" verify -q "$W/p16" --against "$W/z16" --device gpu --require-gpu --batch 1,7,8,16,32,33,64 --bench --json "$W/r16.json" | tee "$W/o16.txt"
grep -q '^PASS' "$W/o16.txt" || fail "fp16 pack"
grep -q '"us_cublas"' "$W/r16.json" || fail "no timings in the report"
"$B" verify -q "$W/pb" --device gpu --require-gpu --batch 1,8,32,65 | tee "$W/ob.txt"
grep -q '^PASS' "$W/ob.txt" || fail "bf16 pack"
"$B" verify -q "$W/pd" --against "$S/stories260K-fp16" --device gpu --require-gpu --batch 1,16 | tee "$W/od.txt"
grep -q '^PASS' "$W/od.txt" || fail "dense pack"
set +e
"$B" verify -q "$W/p16" --device gpu --batch 8 --rtol 1e-12 > "$W/tight.txt" 2>&1; rc=$?
set -e
[ $rc = 1 ] || fail "--rtol 1e-12: expected exit 1, got $rc"
echo ok
