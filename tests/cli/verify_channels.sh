#!/usr/bin/env bash
# verify_channels.sh: `verify --channels` on the real stories260K: a calibrated config is validated, run with
# Double Sparsity attention in the engine, beats first-r channels on recall, and passes/fails the perplexity bound;
# corrupted or mismatched configs are rejected with exit 3 and the rule named; --device gpu without a GPU is exit 5.
set -euo pipefail
T=$FPK_SHARED/testdata
m=$T/stories260K
text=$T/tinystories-sample/tinystories_sample.txt
w=$FPK_TMP/verify_channels
rm -rf "$w"
mkdir -p "$w"
"$FPK_BIN" calibrate --channels "$m" --data "$text" -o "$w/ch.json" --blocks 3 -q 2>/dev/null
run() { "$FPK_BIN" verify --channels "$1" "$m" --data "$text" --heavy-channels 4 --heavy-tokens 1/4 --max-tokens 900 -q "${@:2}"; }
out=$(run "$w/ch.json" --max-ppl-increase 0.5 --json "$w/r.json")
echo "$out"
grep -q '^PASS' <<<"$out" || { echo "FAIL: expected PASS"; exit 1; }
cal=$(awk '$3 == "calibrated" {print $6}' <<<"$out")
first=$(awk '$3 == "first-r" {print $6}' <<<"$out")
awk -v a="$cal" -v b="$first" 'BEGIN { exit !(a > b) }' || { echo "FAIL: calibrated recall $cal <= first-r $first"; exit 1; }
grep -q '"recall_mean"' "$w/r.json" || { echo "FAIL: json"; exit 1; }
# a tight bound fails with exit 1
set +e
run "$w/ch.json" --max-ppl-increase 0.0001 >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || { echo "FAIL: tight bound exited $rc"; exit 1; }
# corrupted config: a row that is not a permutation (duplicate channel) -> exit 3 naming the key
sed '0,/\[\[\([0-9]*\), [0-9]*/s//[[\1, \1/' "$w/ch.json" >"$w/bad.json"
! cmp -s "$w/ch.json" "$w/bad.json" || { echo "FAIL: corruption did not change the file"; exit 1; }
set +e
msg=$(run "$w/bad.json" 2>&1 >/dev/null)
rc=$?
set -e
[ $rc -eq 3 ] || { echo "FAIL: corrupt config exited $rc: $msg"; exit 1; }
grep -q 'model.layers' <<<"$msg" || { echo "FAIL: message does not name the key: $msg"; exit 1; }
# mismatched config: keys of a layer the model does not have (layer 4 renamed 9) -> exit 3 naming the key
sed 's/model\.layers\.4\./model.layers.9./' "$w/ch.json" >"$w/other.json"
set +e
msg=$(run "$w/other.json" 2>&1 >/dev/null)
rc=$?
set -e
[ $rc -eq 3 ] || { echo "FAIL: mismatched config exited $rc: $msg"; exit 1; }
grep -q 'layers.[49]' <<<"$msg" || { echo "FAIL: message does not name the layer: $msg"; exit 1; }
# --device cpu names the reference path (json too); --device gpu without a usable GPU (or CUDA build) is exit 5
out=$(run "$w/ch.json" --max-ppl-increase 0.5 --device cpu --json "$w/c.json")
grep -q '^device: cpu (reference path' <<<"$out" || { echo "FAIL: device line: $out"; exit 1; }
grep -q '"device":[[:space:]]*"cpu"' "$w/c.json" || { echo "FAIL: json device"; exit 1; }
set +e
run "$w/ch.json" --max-ppl-increase 0.5 --device gpu >"$w/gpu.out" 2>&1
rc=$?
set -e
if ! grep -q '^device: .*Double Sparsity kernels' "$w/gpu.out"; then
	[ $rc -eq 5 ] || { echo "FAIL: --device gpu without a GPU exited $rc"; cat "$w/gpu.out"; exit 1; }
fi
# every position dense (context 48 < --dense-below 64): nothing evaluated, so the run fails (exit 1) and says why
set +e
out=$(run "$w/ch.json" --max-ppl-increase 0.5 --context 48 --device cpu 2>&1)
rc=$?
set -e
[ $rc -eq 1 ] || { echo "FAIL: all-dense run exited $rc: $out"; exit 1; }
grep -q '^FAIL: no position took Double Sparsity' <<<"$out" || { echo "FAIL: all-dense message: $out"; exit 1; }
# --dense-below 0 is a usage error (1 makes every position sparse)
set +e
run "$w/ch.json" --dense-below 0 >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 2 ] || { echo "FAIL: --dense-below 0 exited $rc"; exit 1; }
echo "ok: $msg"
