#!/usr/bin/env bash
# verify_channels_gpu.sh (GPU): `verify --channels --device gpu` on the real stories260K (head_dim 8, GQA 8/4 heads):
# the model runs in the GPU engine with our Double Sparsity kernels (labels, top-k, sparse attention) at every
# position past the dense threshold. (a) 16-bit labels, per-head selection ("qk"): perplexity, recall and output
# error agree with the CPU reference path (verify/ds_eval.c) within the fp16 rounding of q, K and labels, and
# calibrated channels beat first-r on recall; (b) per-kv-group selection ("k" rows, group-summed query) and 4-bit
# labels agree too; (c) several window groups (WikiText-2, thousands of tokens); (d) a tight bound fails (exit 1);
# (e) short windows in capped groups agree too.
set -euo pipefail
B=$FPK_BIN S=$FPK_SHARED/testdata
W=$FPK_TMP/verify_channels_gpu; rm -rf "$W"; mkdir -p "$W"
m=$S/stories260K
ts=$S/tinystories-sample/tinystories_sample.txt
wk=$S/wikitext-2-raw/wiki.test.raw
fail() { echo "FAIL: $*" >&2; exit 1; }
# column c of the row whose r, k and channels columns are $1 $2 $3
col() { awk -v r="$1" -v k="$2" -v s="$3" -v c="$4" '$1 == r && $2 == k && $3 == s {print $c}'; }
within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }
"$B" calibrate --channels "$m" --data "$ts" -o "$W/ch.json" --blocks 3 -q 2>/dev/null

cmp_devices() { # name, extra args...: run on both devices ($DATA, $MAXTOK tokens), compare every row
	local name=$1 data=${DATA:-$ts} maxtok=${MAXTOK:-3000}; shift
	"$B" verify --channels "$W/ch.json" "$m" --data "$data" --max-tokens $maxtok --max-ppl-increase 100 -q --device gpu \
		--require-gpu --json "$W/$name.json" "$@" | tee "$W/$name.gpu"
	grep -q '^device: .*our Double Sparsity kernels: [1-9][0-9]* decode steps' "$W/$name.gpu" || fail "$name: not on the GPU kernels"
	grep -q '"device":[[:space:]]*"gpu"' "$W/$name.json" || fail "$name: json device"
	"$B" verify --channels "$W/ch.json" "$m" --data "$data" --max-tokens $maxtok --max-ppl-increase 100 -q --device cpu "$@" \
		>"$W/$name.cpu"
	dg=$(awk '/^dense perplexity/ {print $3}' "$W/$name.gpu") dc=$(awk '/^dense perplexity/ {print $3}' "$W/$name.cpu")
	within "$dg" "$dc" "$(awk -v c="$dc" 'BEGIN { print c * 1e-4 }')" || fail "$name: dense ppl gpu $dg cpu $dc"
	awk '$3 == "calibrated" || $3 == "random" || $3 == "first-r" {print $1, $2, $3}' "$W/$name.cpu" >"$W/$name.rows"
	[ -s "$W/$name.rows" ] || fail "$name: no rows"
	while read -r r k s; do
		pg=$(col "$r" "$k" "$s" 4 <"$W/$name.gpu") pc=$(col "$r" "$k" "$s" 4 <"$W/$name.cpu")
		rg=$(col "$r" "$k" "$s" 6 <"$W/$name.gpu") rcp=$(col "$r" "$k" "$s" 6 <"$W/$name.cpu")
		eg=$(col "$r" "$k" "$s" 8 <"$W/$name.gpu") ec=$(col "$r" "$k" "$s" 8 <"$W/$name.cpu")
		echo "$name r=$r k=$k $s: ppl gpu $pg cpu $pc, recall gpu $rg cpu $rcp, err gpu $eg cpu $ec"
		# the same selection rules (fp16 q and labels); the GPU's hidden states differ from the CPU's at 1e-6, which
		# flips a few near-tied selections, and its sparse attention reads fp16 K/V (the CPU: fp32). Perplexity
		# agrees within 1%; at settings that break the model (perplexity more than doubled) the flipped selections
		# compound through the layers, so there within 2% (recall and error must still agree closely)
		tol=$(awk -v c="$pc" -v d="$dc" 'BEGIN { print (c < 2 * d ? 0.01 : 0.02) * c }')
		within "$pg" "$pc" "$tol" || fail "$name $r $k $s: ppl $pg vs $pc"
		within "$rg" "$rcp" 0.005 || fail "$name $r $k $s: recall $rg vs $rcp"
		within "$eg" "$ec" 0.02 || fail "$name $r $k $s: err $eg vs $ec"
	done <"$W/$name.rows"
}
# (a) r = 4, 2 (half and a quarter of head_dim 8) at k = L/4 and L/16
cmp_devices qk16 --heavy-channels 4,2 --heavy-tokens 1/4,1/16
cal=$(col 4 1/4 calibrated 6 <"$W/qk16.gpu") first=$(col 4 1/4 first-r 6 <"$W/qk16.gpu")
awk -v a="$cal" -v b="$first" 'BEGIN { exit !(a > b) }' || fail "calibrated recall $cal <= first-r $first on the GPU"
# (b) one top-k per kv group from the k_proj rows, 4-bit labels; 8-bit labels with a fixed budget
cmp_devices k4 --label-mode k --label-bits 4 --heavy-channels 4 --heavy-tokens 1/4
cmp_devices qk8 --label-bits 8 --heavy-channels 2 --heavy-tokens 32
# (e) short windows (context 16): 1250 windows, more than the hook takes per call (4096 / 8 heads), so the engine
# runs them in capped groups and the hook sees three call shapes (full groups, the last group, the short window)
DATA=$wk MAXTOK=20000 cmp_devices short --context 16 --dense-below 4 --heavy-channels 4 --heavy-tokens 4
# (c) many windows (several groups of windows per layer call and a short last window)
"$B" verify --channels "$W/ch.json" "$m" --data "$wk" --max-tokens 40000 --heavy-channels 2 --heavy-tokens 1/8 \
	--max-ppl-increase 1 -q --device gpu | tee "$W/wk.txt"
grep -q '^PASS' "$W/wk.txt" || fail "wikitext run"
# (d) a tight bound fails with exit 1
set +e
"$B" verify --channels "$W/ch.json" "$m" --data "$ts" --max-tokens 3000 --heavy-channels 1 --max-ppl-increase 0.00001 \
	-q --device gpu >/dev/null 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "tight bound: expected exit 1, got $rc"
echo ok
