#!/usr/bin/env bash
# calibrate_errors.sh: bad input gives a clear message, its exit code, and no output file at all.
set -uo pipefail
m=$FPK_SHARED/testdata/stories260K
txt=$FPK_SHARED/testdata/tinystories-sample/tinystories_sample.txt
o=$FPK_TMP/cal_err
rm -rf "$o"; mkdir -p "$o"
expect() { local code=$1 needle=$2; shift 2; local err; err=$("$@" 2>&1 >/dev/null); local rc=$?
  [ $rc -eq "$code" ] || { echo "FAIL: '$*' exited $rc, expected $code: $err"; exit 1; }
  grep -q -- "$needle" <<<"$err" || { echo "FAIL: '$*': message lacks '$needle': $err"; exit 1; }
  [ -z "$(ls -A "$o" | grep -v '^in' )" ] || { echo "FAIL: '$*' left output: $(ls "$o")"; exit 1; }; }
expect 2 "--channels" "$FPK_BIN" calibrate "$m" --data "$txt" -o "$o/x.json"
expect 2 "exactly one of" "$FPK_BIN" calibrate --channels "$m" -o "$o/x.json"
expect 2 "-o OUT" "$FPK_BIN" calibrate --channels "$m" --data "$txt"
expect 2 "q, k or qk" "$FPK_BIN" calibrate --channels "$m" --data "$txt" -o "$o/x.json" --mode q,v
# a model directory without tokenizer.json and no --tokens
mkdir -p "$o/in_notok"; cp "$m/config.json" "$o/in_notok/"; ln -s "$m/model.safetensors" "$o/in_notok/model.safetensors"
expect 2 "no tokenizer.json.*--tokens" "$FPK_BIN" calibrate --channels "$o/in_notok" --data "$txt" -o "$o/x.json" --device cpu
# model/config mismatch: config says 6 layers
mkdir -p "$o/in_bad"; sed 's/"num_hidden_layers": 5/"num_hidden_layers": 6/' "$m/config.json" > "$o/in_bad/config.json"
ln -s "$m/model.safetensors" "$o/in_bad/model.safetensors"; ln -s "$m/tokenizer.json" "$o/in_bad/tokenizer.json"
expect 3 "model.layers.5" "$FPK_BIN" calibrate --channels "$o/in_bad" --data "$txt" -o "$o/x.json" --device cpu
# unwritable output
expect 4 "" "$FPK_BIN" calibrate --channels "$m" --data "$txt" -o "$o/no/such/dir/x.json" --device cpu
# empty text / empty token file
: > "$o/in_empty.txt"
expect 2 "no tokens" "$FPK_BIN" calibrate --channels "$m" --data "$o/in_empty.txt" -o "$o/x.json" --device cpu
expect 2 "no tokens" "$FPK_BIN" calibrate --channels "$m" --tokens "$o/in_empty.txt" -o "$o/x.json" --device cpu
echo "1 512" > "$o/in_oov.txt"
expect 3 "outside the vocabulary" "$FPK_BIN" calibrate --channels "$m" --tokens "$o/in_oov.txt" -o "$o/x.json" --device cpu
# a short text: one shorter block with a warning; then an existing output needs --force
echo "Once upon a time there was a cat." > "$o/in_short.txt"
err=$("$FPK_BIN" calibrate --channels "$m" --data "$o/in_short.txt" -o "$o/s.json" --device cpu 2>&1 >/dev/null) || { echo "FAIL: short text: $err"; exit 1; }
grep -q "less than one block" <<<"$err" || { echo "FAIL: no warning: $err"; exit 1; }
grep -q '"blocks":[[:space:]]*1' "$o/s.json.meta.json" || { echo "FAIL: short meta"; exit 1; }
err=$("$FPK_BIN" calibrate --channels "$m" --data "$o/in_short.txt" -o "$o/s.json" --device cpu 2>&1 >/dev/null); rc=$?
[ $rc -eq 2 ] && grep -q -- "--force" <<<"$err" || { echo "FAIL: overwrite without --force ($rc): $err"; exit 1; }
"$FPK_BIN" calibrate --channels "$m" --data "$o/in_short.txt" -o "$o/s.json" --device cpu --force -q 2>/dev/null || { echo "FAIL: --force"; exit 1; }
# u32 token file == the same ids as text
printf '\x01\x00\x00\x00\x93\x01\x00\x00\x97\x01\x00\x00\x05\x01\x00\x00' > "$o/in_ids.u32"
echo "1 403 407 261" > "$o/in_ids.txt"
"$FPK_BIN" calibrate --channels "$m" --tokens "$o/in_ids.u32" -o "$o/u.json" --device cpu -q 2>/dev/null || { echo "FAIL: u32"; exit 1; }
"$FPK_BIN" calibrate --channels "$m" --tokens "$o/in_ids.txt" -o "$o/t.json" --device cpu -q 2>/dev/null || { echo "FAIL: txt ids"; exit 1; }
cmp "$o/u.json" "$o/t.json" || { echo "FAIL: u32 and text ids differ"; exit 1; }
echo ok
