#!/usr/bin/env bash
# verify_corrupt.sh: a pack of the real stories260K with one thing broken must fail verify with exit 3 and the
# reader rule named: a value bit, a loc, an offset (arrays are guarded by CRC-32: rule R6), a CRC in the metadata
# (R6), a shape in the metadata (R4/R14). A missing pack is exit 4; a bad option exit 2.
set -euo pipefail
B=$FPK_BIN T=$FPK_TOOLS S=$FPK_SHARED/testdata
W=$FPK_TMP/verify_corrupt; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*" >&2; exit 1; }
Q=model.layers.0.self_attn.q_proj.weight

"$T/zero_fraction" "$S/stories260K-fp16" "$W/z16" 0.8
"$B" encode -q "$W/z16" -o "$W/p" --threads 2
"$B" verify -q "$W/p" --device cpu --batch 1 > /dev/null || fail "clean pack must pass"

# expect CASE CODE NEEDLE: run verify on $W/c (a copy of the pack with model.safetensors replaced)
expect() {
	set +e
	"$B" verify -q "$W/c" --device cpu --batch 1 > "$W/$1.out" 2>&1
	local rc=$?
	set -e
	[ $rc = "$2" ] || { cat "$W/$1.out"; fail "$1: expected exit $2, got $rc"; }
	grep -q -- "$3" "$W/$1.out" || { cat "$W/$1.out"; fail "$1: message lacks '$3'"; }
}
fresh() { rm -rf "$W/c"; cp -r "$W/p" "$W/c"; }

# entry 0 of tile 0: flip one value bit (bits 0..15), then a loc bit (bits 16..31)
fresh; "$T/st_poke" "$W/p/model.safetensors" "$W/c/model.safetensors" set "$Q.tcsl_values" 0 0x12345678
expect value 3 "rule R6"
fresh; "$T/st_poke" "$W/p/model.safetensors" "$W/c/model.safetensors" set "$Q.tcsl_values" 1 0x7fff0000
expect loc 3 "rule R6"
fresh; "$T/st_poke" "$W/p/model.safetensors" "$W/c/model.safetensors" set "$Q.tcsl_offsets" 1 0x00000001
expect offset 3 "rule R6"
# the metadata CRC of q_proj's values: change its first hex digit (same length, header stays valid JSON)
fresh; perl -0777 -pi -e 's/(q_proj\.weight":"\{.*?crc32_values\\":\\")([0-9a-f])/$1.($2 eq "0" ? "1" : "0")/e' "$W/c/model.safetensors"
cmp -s "$W/p/model.safetensors" "$W/c/model.safetensors" && fail "perl did not change the CRC"
expect crc 3 "rule R6"
# the logical shape [64,64] -> [64,60] (same length): entries now fall outside the logical region
fresh; perl -0777 -pi -e 's/(q_proj\.weight":"\{\\"shape\\":\[64,)64/${1}60/' "$W/c/model.safetensors"
cmp -s "$W/p/model.safetensors" "$W/c/model.safetensors" && fail "perl did not change the shape"
expect shape 3 "rule R1[45]"
# padded shape inconsistent with the shape
fresh; perl -0777 -pi -e 's/(q_proj\.weight":"\{\\"shape\\":\[64,64\],\\"padded_shape\\":\[1)28/${1}92/' "$W/c/model.safetensors"
expect padded 3 "rule R4"

set +e
"$B" verify -q "$W/nope" > /dev/null 2>&1; rc=$?
"$B" verify -q "$W/p" --device tpu > /dev/null 2>&1; rc2=$?
set -e
[ $rc = 4 ] || fail "missing pack: expected exit 4, got $rc"
[ $rc2 = 2 ] || fail "bad --device: expected exit 2, got $rc2"
echo ok
