#!/usr/bin/env bash
# verify_eval_gpu.sh (GPU): `verify --eval --device gpu` on packs of the real stories260K: every encoded weight runs
# through our Tiled-CSL SpMM kernel. (a) a pack vs its pruned checkpoint passes (fp16; bf16; a pack that left the
# down projections dense), and its GPU perplexity is within 1% of the CPU reference engine's; (b) a pack compared
# with a checkpoint of another sparsity fails with exit 1 (eval FAIL); --device gpu without a GPU is exit 5 elsewhere.
set -euo pipefail
B=$FPK_BIN S=$FPK_SHARED/testdata
W=$FPK_TMP/verify_eval_gpu; rm -rf "$W"; mkdir -p "$W"
ts=$S/tinystories-sample/tinystories_sample.txt
wk=$S/wikitext-2-raw/wiki.test.raw
fail() { echo "FAIL: $*" >&2; exit 1; }
field() { awk -v r="$1" -v c="$2" '$1 == r {print $c}'; }
within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t * b) }'; }
"$B" prune -q "$S/stories260K-fp16" -o "$W/p30" --sparsity 0.3
"$B" prune -q "$S/stories260K-fp16" -o "$W/p40" --sparsity 0.4
"$B" prune -q "$S/stories260K" -o "$W/p50f32" --sparsity 0.5
"$B" encode -q "$W/p30" -o "$W/pack30" --min-sparsity 0
"$B" encode -q "$W/p30" -o "$W/pack30x" --min-sparsity 0 --exclude '*.mlp.down_proj.weight'
"$B" encode -q "$W/p50f32" -o "$W/pack50b" --min-sparsity 0 --dtype bf16
"$B" decode -q "$W/pack50b" -o "$W/p50b" # the pruned checkpoint in the pack's dtype (bf16), for bit equality

# (a) fp16 pack vs its pruned checkpoint and the dense original, on the GPU engine
"$B" verify -q "$W/pack30" --against "$W/p30" --against "$S/stories260K" --eval "$ts" --batch 1 --device gpu \
	--require-gpu --json "$W/a.json" | tee "$W/a.txt"
grep -q '^eval PASS' "$W/a.txt" || fail "fp16 pack vs its pruned checkpoint"
grep -q 'GPU engine on .*: F16 linear products.*pack: 35 matrices through the Tiled-CSL SpMM kernel, 0 through cuBLAS' \
	"$W/a.txt" || fail "the pack did not run through the SpMM kernel"
grep -q '"engine":[[:space:]]*"gpu-spmm"' "$W/a.json" || fail "json engine"
grep -q '"spmm_matrices":[[:space:]]*35' "$W/a.json" || fail "json spmm_matrices"
# the same on the CPU reference engine: GPU ppl within 1% of it, pack and pruned alike
"$B" verify -q "$W/pack30" --against "$W/p30" --eval "$ts" --batch 1 --device cpu | tee "$W/a_cpu.txt"
for r in pack against; do
	g=$(field $r 3 <"$W/a.txt") c=$(field $r 3 <"$W/a_cpu.txt")
	echo "$r: gpu ppl $g, cpu ppl $c"
	within "$g" "$c" 0.01 || fail "$r: GPU ppl $g vs CPU $c (more than 1% apart)"
done
# a pack that left one matrix per layer dense (cuBLAS for those, SpMM for the rest), on WikiText-2 (many windows)
"$B" verify -q "$W/pack30x" --against "$W/p30" --eval "$wk" --max-tokens 20000 --batch 1 --device gpu | tee "$W/x.txt"
grep -q '^eval PASS' "$W/x.txt" || fail "mixed pack"
grep -q 'pack: 30 matrices through the Tiled-CSL SpMM kernel, 5 through cuBLAS' "$W/x.txt" || fail "mixed pack engines"
# bf16 pack of the fp32 checkpoint: bf16 products for both
"$B" verify -q "$W/pack50b" --against "$W/p50b" --against "$W/p50f32" --eval "$ts" --batch 1 --device gpu | tee "$W/b.txt"
grep -q '^eval PASS' "$W/b.txt" || fail "bf16 pack"
grep -q 'BF16 linear products' "$W/b.txt" || fail "bf16 precision"

# (b) a wrong pack: the 30% pack judged against the 40% checkpoint must fail (exit 1, eval FAIL)
set +e
"$B" verify -q "$W/pack30" --against "$W/p40" --eval "$ts" --batch 1 --device gpu >"$W/bad.txt" 2>&1
rc=$?
set -e
cat "$W/bad.txt" | tail -5
[ $rc = 1 ] || fail "wrong pack: expected exit 1, got $rc"
grep -q '^eval FAIL' "$W/bad.txt" || fail "wrong pack: eval did not fail"
echo ok
