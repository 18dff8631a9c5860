#!/usr/bin/env bash
# encode_errors.sh: NaN input (exit 3), non-2-D --include (2), unreadable/missing input (4) and corrupt input (3),
# an existing output (2, left untouched), decode of a non-pack (3): a clear message and never a partial output.
set -uo pipefail
B=$FPK_BIN T=$FPK_TOOLS S=$FPK_SHARED/testdata
W=$FPK_TMP/encode_errors; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect CODE NEEDLE cmd...: exit code and a stderr line containing NEEDLE
expect() {
	local code=$1 needle=$2; shift 2
	"$@" > "$W/out.txt" 2> "$W/err.txt"
	local rc=$?
	[ "$rc" = "$code" ] || fail "'$*' exited $rc, expected $code: $(cat "$W/err.txt")"
	grep -qF -- "$needle" "$W/err.txt" || fail "'$*': message '$(cat "$W/err.txt")' lacks '$needle'"
}
no_leftovers() { ls "$W" | grep -q '\.tmp\.' && fail "temporary output left behind: $(ls "$W")"; return 0; }

"$T/zero_fraction" "$S/stories260K-fp16" "$W/nan" 0.8 --nan model.layers.2.mlp.up_proj.weight 200
expect 3 "tensor 'model.layers.2.mlp.up_proj.weight': NaN at [3, 8]" "$B" encode "$W/nan" -o "$W/p"
[ -e "$W/p" ] && fail "NaN: output exists"
no_leftovers
"$B" encode -q "$W/nan" -o "$W/pnan" --allow-nan || fail "--allow-nan refused"
"$B" decode -q "$W/pnan" -o "$W/dnan" && "$T/st_compare" "$W/nan" "$W/dnan" > /dev/null || fail "NaN round trip"

"$T/zero_fraction" "$S/stories260K" "$W/nan32" 0.8 --nan model.layers.0.self_attn.o_proj.weight 4095
expect 3 "tensor 'model.layers.0.self_attn.o_proj.weight': NaN at [63, 63]" "$B" encode "$W/nan32" -o "$W/p" --dtype bf16
[ -e "$W/p" ] && fail "F32 NaN: output exists"

expect 2 "matched by --include is 1-D" "$B" encode "$S/stories260K-fp16" -o "$W/p" --include '*norm*'
[ -e "$W/p" ] && fail "include: output exists"
expect 4 "does not exist" "$B" encode "$W/missing" -o "$W/p"
mkdir -p "$W/empty"
expect 4 "" "$B" encode "$W/empty" -o "$W/p"
head -c 100 "$S/stories260K-fp16/model.safetensors" > "$W/trunc.safetensors"
expect 3 "trunc.safetensors" "$B" encode "$W/trunc.safetensors" -o "$W/p"
[ -e "$W/p" ] && fail "corrupt input: output exists"
expect 2 "--dtype 'f8', expected f16 or bf16" "$B" encode "$W/nan" -o "$W/p" --dtype f8
expect 2 "--min-sparsity 1.5 is out of range" "$B" encode "$W/nan" -o "$W/p" --min-sparsity 1.5
expect 2 "missing -o PACK" "$B" encode "$W/nan"

mkdir -p "$W/exists"; echo keep > "$W/exists/file"
expect 2 "output '$W/exists' already exists (use --force" "$B" encode "$S/stories260K-fp16" -o "$W/exists"
[ "$(cat "$W/exists/file")" = keep ] || fail "existing output touched"
"$B" encode -q "$S/stories260K-fp16" -o "$W/exists" --force --min-sparsity 0 || fail "--force"
[ -e "$W/exists/file" ] && fail "--force kept old content"
expect 2 "already exists" "$B" decode "$W/exists" -o "$W/empty"
expect 2 "overlaps input" "$B" decode "$W/exists" -o "$W/exists"
expect 2 "already a pack" "$B" encode "$W/exists" -o "$W/p2"
expect 2 "overlaps input" "$B" encode "$S/stories260K-fp16" -o "$S/stories260K-fp16/x"

# F32 without --dtype: encoded nothing, said why
"$B" encode -q "$S/stories260K" -o "$W/f32" --min-sparsity 0
grep -q 'F32: pass --dtype f16 or --dtype bf16' "$W/f32/pack_report.json" || fail "F32 reason missing"

expect 3 "metadata 'flashllm_pack.format' is missing, not a pack (rule R1)" "$B" decode "$S/stories260K" -o "$W/d"
[ -e "$W/d" ] && fail "decode of a non-pack left output"
no_leftovers
echo "ok"
