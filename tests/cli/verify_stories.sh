#!/usr/bin/env bash
# verify_stories.sh: `verify --device cpu` on packs of the real stories260K (fp16, pruned to 80%; and the dense
# weights with --min-sparsity 0, tiles over 4096 entries): exit 0, --against equal, JSON report with per-batch
# errors; an impossible --rtol must fail with exit 1; a changed --against element must fail naming the tensor.
set -euo pipefail
B=$FPK_BIN T=$FPK_TOOLS S=$FPK_SHARED/testdata
W=$FPK_TMP/verify_stories; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$T/zero_fraction" "$S/stories260K-fp16" "$W/z16" 0.8
"$B" encode -q "$W/z16" -o "$W/p16" --threads 2
"$B" verify -q "$W/p16" --against "$W/z16" --device cpu --batch 1,3,8,33 --json "$W/r.json" > "$W/out.txt"
grep -q '^PASS: 0 of 35 tensors failed' "$W/out.txt" || fail "expected PASS over 35 tensors"
grep -q '"against_equal":[[:space:]]*true' "$W/r.json" || fail "against comparison missing from the report"
grep -q '"max_rel_err"' "$W/r.json" || fail "per-batch errors missing"
[ "$(grep -c '"n":[[:space:]]*33' "$W/r.json")" = 35 ] || fail "batch 33 not run for every tensor"
grep -q '"against_equal":[[:space:]]*false' "$W/r.json" && fail "a tensor differs from --against"

# --device auto on a machine without a GPU says so and uses the CPU path (with a GPU it runs there)
"$B" verify "$W/p16" --batch 2 > "$W/auto.txt" 2> "$W/auto.err"
grep -q 'numerics on' "$W/auto.txt" || fail "no device line"

# the numerics check can fail: an impossible tolerance gives exit 1
set +e
"$B" verify -q "$W/p16" --device cpu --batch 8 --rtol 1e-12 > "$W/tight.txt" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "--rtol 1e-12: expected exit 1, got $rc"
grep -q 'FAIL' "$W/tight.txt" || fail "no FAIL row"

# --against with one element changed: exit 1 naming tensor and element
"$T/st_poke" "$W/z16/model.safetensors" "$W/zbad.safetensors" set model.layers.2.mlp.up_proj.weight 5 0x3c01
mkdir -p "$W/zbad" && mv "$W/zbad.safetensors" "$W/zbad/model.safetensors" && cp "$W/z16/config.json" "$W/zbad/"
set +e
"$B" verify -q "$W/p16" --against "$W/zbad" --device cpu --batch 1 > "$W/ag.txt" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "changed --against: expected exit 1, got $rc"
grep -q "model.layers.2.mlp.up_proj.weight': decoded element \[0, 5\]" "$W/ag.txt" || { cat "$W/ag.txt"; fail "mismatch not named"; }

# the dense real weights (every tile over 4096 entries), bf16 pack as well
"$B" encode -q "$S/stories260K-fp16" -o "$W/pd" --min-sparsity 0
"$B" verify -q "$W/pd" --against "$S/stories260K-fp16" --device cpu --batch 1,16 > "$W/pd.txt"
grep -q '^PASS' "$W/pd.txt" || fail "dense pack did not pass"
echo ok
