#!/usr/bin/env bash
# calibrate_channels.sh: `calibrate --channels` on stories260K with the TinyStories sample (CPU): GQA row counts,
# permutation rows, sidecar, determinism (same bytes twice), --tokens gives the same result as --data, --report, --mode.
set -euo pipefail
m=$FPK_SHARED/testdata/stories260K
txt=$FPK_SHARED/testdata/tinystories-sample/tinystories_sample.txt
o=$FPK_TMP/cal_ch
rm -rf "$o"; mkdir -p "$o"
"$FPK_BIN" calibrate --channels "$m" --data "$txt" -o "$o/a.json" --device cpu --block-len 256 -q 2>"$o/err"
grep -q "warning: the data holds" "$o/err" || { echo "FAIL: no short-data warning"; cat "$o/err"; exit 1; }
"$FPK_BIN" calibrate --channels "$m" --data "$txt" -o "$o/b.json" --device cpu --block-len 256 --threads 1 -q 2>/dev/null
cmp "$o/a.json" "$o/b.json" || { echo "FAIL: not deterministic"; exit 1; }
# 5 layers x 3 modes; 8 rows for q/qk, 4 for k, 8 channels each
[ "$(grep -c '_proj"' "$o/a.json")" -eq 15 ] || { echo "FAIL: key count"; exit 1; }
for l in 0 1 2 3 4; do
  for mode in q k qk; do
    line=$(grep "\"model.layers.$l.self_attn.${mode}_proj\"" "$o/a.json")
    rows=$(grep -o '\[[0-9, ]*\]' <<<"$line" | wc -l)
    want=8; [ $mode == k ] && want=4
    [ "$rows" -eq $want ] || { echo "FAIL: layer $l $mode has $rows rows, expected $want"; exit 1; }
    while read -r row; do
      [ "$(tr -d '[] ' <<<"$row" | tr ',' '\n' | sort -n | tr '\n' ' ')" == "0 1 2 3 4 5 6 7 " ] || { echo "FAIL: row $row not a permutation"; exit 1; }
    done < <(grep -o '\[[0-9, ]*\]' <<<"$line")
  done
done
meta=$o/a.json.meta.json
for key in '"tokens_used":[[:space:]]*1792' '"blocks":[[:space:]]*7' '"block_len":[[:space:]]*256' '"tokens_crc32":' '"config_crc32":' '"qk"'; do
  grep -q "$key" "$meta" || { echo "FAIL: meta lacks $key"; cat "$meta"; exit 1; }
done
# --mode k only, --report
"$FPK_BIN" calibrate --channels "$m" --data "$txt" -o "$o/k.json" --device cpu --mode k --report -q > "$o/report" 2>/dev/null
[ "$(grep -c '_proj"' "$o/k.json")" -eq 5 ] || { echo "FAIL: --mode k"; exit 1; }
grep -q "r = 1, 1, 2" "$o/report" || { echo "FAIL: report header"; cat "$o/report"; exit 1; }
[ "$(grep -cE '^[0-4] +k +[0-3] +0\.[0-9]{4} +0\.[0-9]{4} +[01]\.[0-9]{4}$' "$o/report")" -eq 20 ] || { echo "FAIL: report rows"; cat "$o/report"; exit 1; }
echo ok
