#!/usr/bin/env bash
# generate_errors.sh: documented exit codes: usage 2, bad model 3, GPU asked for and absent/unbuilt 5 (skipped when a GPU is present).
set -uo pipefail
m=$FPK_SHARED/testdata/stories260K
expect() { local code=$1 needle=$2; shift 2; local err; err=$("$@" 2>&1 >/dev/null); local rc=$?
  [ $rc -eq "$code" ] || { echo "FAIL: '$*' exited $rc, expected $code: $err"; exit 1; }
  grep -q -- "$needle" <<<"$err" || { echo "FAIL: '$*': message lacks '$needle': $err"; exit 1; }; }
expect 2 "not both" "$FPK_BIN" generate "$m" --prompt hi --tokens /dev/null
expect 2 "at least 1" "$FPK_BIN" generate "$m" --steps 0
expect 2 "not one of auto, gpu, cpu" "$FPK_BIN" generate "$m" --device tpu
expect 4 "config.json" "$FPK_BIN" generate "$FPK_SHARED/testdata/tinystories-sample"
mkdir -p "$FPK_TMP/gen_gpt2"
sed 's/"llama"/"gpt2"/; s/LlamaForCausalLM/GPT2LMHeadModel/' "$m/config.json" > "$FPK_TMP/gen_gpt2/config.json"
expect 3 "llama" "$FPK_BIN" generate "$FPK_TMP/gen_gpt2"
echo "1 9999" > "$FPK_TMP/gen_bad_ids.txt"
expect 3 "outside the vocabulary" "$FPK_BIN" generate "$m" --tokens "$FPK_TMP/gen_bad_ids.txt"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect 5 "device gpu" "$FPK_BIN" generate "$m" --device gpu
fi
# ids given as a little-endian u32 file: BOS then "Once"
printf '\x01\x00\x00\x00' > "$FPK_TMP/gen_bos.u32"
out=$("$FPK_BIN" generate "$m" --device cpu --tokens "$FPK_TMP/gen_bos.u32" --steps 5 -q) || { echo "FAIL: u32 tokens"; exit 1; }
[ "$out" == "Once upon a time," ] || { echo "FAIL: u32 prompt gave '$out'"; exit 1; }
echo ok
