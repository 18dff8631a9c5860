#!/usr/bin/env bash
# generate_golden.sh: `generate` on the CPU reproduces llama2.c's 200 greedy steps from BOS (text and ids), the fp16
# copy agrees on the first tokens, and a prompt given as text or as --tokens gives the same continuation.
set -euo pipefail
m=$FPK_SHARED/testdata/stories260K
ref=$m/reference
out=$("$FPK_BIN" generate "$m" --device cpu -q)
[ "$out" == "$(cat "$ref/llama2c_test_all_expected_stdout.txt")" ] || { echo "FAIL: text differs"; diff <(echo "$out") "$ref/llama2c_test_all_expected_stdout.txt" | head; exit 1; }
ids=$("$FPK_BIN" generate "$m" --device cpu --steps 200 --json -q | tr -d ' \n\t' | sed 's/.*"ids":\[\([0-9,]*\)\].*/\1/' | tr ',' ' ')
[ "$ids" == "$(tr -s ' \n' ' ' < "$ref/greedy200_from_bos_token_ids.txt" | sed 's/ $//')" ] || { echo "FAIL: ids differ"; exit 1; }
# fp16 copy: count the leading ids that agree (>= 20 required)
ids16=$("$FPK_BIN" generate "$FPK_SHARED/testdata/stories260K-fp16" --device cpu --json -q | tr -d ' \n\t' | sed 's/.*"ids":\[\([0-9,]*\)\].*/\1/' | tr ',' ' ')
read -ra a <<<"$ids"; read -ra b <<<"$ids16"
n=0; while [ $n -lt ${#a[@]} ] && [ $n -lt ${#b[@]} ] && [ "${a[$n]}" == "${b[$n]}" ]; do n=$((n+1)); done
echo "fp16 copy: $n of ${#a[@]} leading ids agree"
[ $n -ge 20 ] || { echo "FAIL: fp16 agrees on only $n tokens"; exit 1; }
# a prompt as text and as ids
t1=$("$FPK_BIN" generate "$m" --device cpu --steps 40 --prompt "Lily saw a dog" -q)
"$FPK_BIN" generate "$m" --device cpu --steps 40 --prompt "Lily saw a dog" --json -q > "$FPK_TMP/gen_prompt.json"
grep -q '"prompt_tokens":[[:space:]]*[0-9]' "$FPK_TMP/gen_prompt.json" || { echo "FAIL: json"; exit 1; }
[[ "$t1" == "Lily saw a dog"* ]] || { echo "FAIL: prompt not echoed: $t1"; exit 1; }
echo ok
