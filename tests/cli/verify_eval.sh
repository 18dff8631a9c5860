#!/usr/bin/env bash
# verify_eval.sh: `verify --eval` on the real stories260K: the dense model's loss agrees with llama2.c's training
# report (~1.297 on TinyStories), a pack matches its pruned checkpoint exactly on the CPU engine, a pack that
# does not match the checkpoint it is compared with fails with exit 1, and --device gpu without a GPU is exit 5.
set -euo pipefail
T=$FPK_SHARED/testdata
text=$T/tinystories-sample/tinystories_sample.txt
w=$FPK_TMP/verify_eval
rm -rf "$w"
mkdir -p "$w"
"$FPK_BIN" prune "$T/stories260K-fp16" -o "$w/p30" --sparsity 0.3 -q
"$FPK_BIN" prune "$T/stories260K-fp16" -o "$w/p40" --sparsity 0.4 -q
"$FPK_BIN" encode "$w/p30" -o "$w/pack30" --min-sparsity 0.2 -q
out=$("$FPK_BIN" verify "$w/pack30" --against "$w/p30" --against "$T/stories260K" --eval "$text" --batch 1 -q --json "$w/r.json")
echo "$out" | tail -6
grep -q '^eval PASS' <<<"$out" || { echo "FAIL: pack vs its pruned checkpoint"; exit 1; }
# the dense fp32 original: mean NLL within 0.03 of llama2.c's reported 1.297
nll=$(awk '$1 == "against+" {print $2}' <<<"$out")
awk -v x="$nll" 'BEGIN { exit !(x > 1.267 && x < 1.327) }' || { echo "FAIL: dense mean NLL $nll, expected ~1.297"; exit 1; }
grep -q '"rel_ppl_diff":[[:space:]]*0' "$w/r.json" || { echo "FAIL: json"; exit 1; }
# a pack compared with the wrong pruned checkpoint: bit-equality and perplexity both fail, exit 1
set +e
"$FPK_BIN" verify "$w/pack30" --against "$w/p40" --eval "$text" --batch 1 -q >"$w/bad.out" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || { echo "FAIL: wrong pack exited $rc"; cat "$w/bad.out"; exit 1; }
grep -q 'eval FAIL' "$w/bad.out" || { echo "FAIL: eval did not fail"; cat "$w/bad.out"; exit 1; }
# --device cpu names the CPU reference engine (json too); --device gpu without a usable GPU (or CUDA build) is exit 5
out=$("$FPK_BIN" verify "$w/pack30" --against "$w/p30" --eval "$text" --batch 1 --device cpu -q --json "$w/c.json")
grep -q 'CPU reference engine' <<<"$out" || { echo "FAIL: engine line"; exit 1; }
grep -q '"engine":[[:space:]]*"cpu-reference"' "$w/c.json" || { echo "FAIL: json engine"; exit 1; }
set +e
"$FPK_BIN" verify "$w/pack30" --against "$w/p30" --eval "$text" --batch 1 --device gpu -q >"$w/gpu.out" 2>&1
rc=$?
set -e
if ! grep -q 'GPU engine' "$w/gpu.out"; then
	[ $rc -eq 5 ] || { echo "FAIL: --device gpu without a GPU exited $rc"; cat "$w/gpu.out"; exit 1; }
fi
echo ok
