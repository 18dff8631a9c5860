#!/usr/bin/env bash
# encode_stories.sh: encode -> decode round trips on the real stories260K checkpoints (fp32 with --dtype f16/bf16,
# and fp16), pruned to 80% by tests/tools/zero_fraction and unpruned with --min-sparsity 0. Expect exit 0 everywhere
# and decode(encode(W)) == W bit for bit (F32 inputs: == W rounded). Needs $FPK_SHARED/testdata.
set -euo pipefail
B=$FPK_BIN T=$FPK_TOOLS S=$FPK_SHARED/testdata
W=$FPK_TMP/encode_stories; rm -rf "$W"; mkdir -p "$W"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$T/zero_fraction" "$S/stories260K" "$W/z32" 0.8
"$T/zero_fraction" "$S/stories260K-fp16" "$W/z16" 0.8

# fp32 -> f16, reordered and not
"$B" encode -q "$W/z32" -o "$W/p32" --dtype f16 --threads 2
grep -q '"encoded":[[:space:]]*35' "$W/p32/pack_report.json" || fail "expected 35 encoded tensors"
grep -q '"flushed_to_zero"' "$W/p32/pack_report.json" || fail "rounding report missing"
grep -q '"flashllm_pack"' "$W/p32/config.json" || fail "config.json section missing"
for f in tokenizer.json tokenizer_config.json special_tokens_map.json generation_config.json; do
	cmp -s "$S/stories260K/$f" "$W/p32/$f" || fail "$f not copied"
done
"$B" decode -q "$W/p32" -o "$W/d32"
"$T/st_compare" "$W/z32" "$W/d32"
grep -q flashllm_pack "$W/d32/config.json" && fail "decode kept the flashllm_pack section"
[ -e "$W/d32/pack_report.json" ] && fail "decode copied pack_report.json"

"$B" encode -q "$W/z32" -o "$W/p32n" --dtype bf16 --no-reorder
grep -q '"reorder":[[:space:]]*false' "$W/p32n/pack_report.json" || fail "no-reorder not recorded"
"$B" decode -q "$W/p32n" -o "$W/d32n"
"$T/st_compare" "$W/z32" "$W/d32n"

# fp16, pruned: bytes do not depend on the thread count
"$B" encode -q "$W/z16" -o "$W/p16a" --threads 1
"$B" encode -q "$W/z16" -o "$W/p16b" --threads 2
cmp "$W/p16a/model.safetensors" "$W/p16b/model.safetensors" || fail "output depends on --threads"
"$B" decode -q "$W/p16a" -o "$W/d16"
"$T/st_compare" "$W/z16" "$W/d16"
cmp -s "$W/z16/model.safetensors" "$W/d16/model.safetensors" || fail "fp16 decode is not byte-identical to its input"

# the real dense fp16 weights, forced with --min-sparsity 0 (tiles over 4096 entries)
"$B" encode -q "$S/stories260K-fp16" -o "$W/pd" --min-sparsity 0
"$B" decode -q "$W/pd" -o "$W/dd"
"$T/st_compare" "$S/stories260K-fp16" "$W/dd"

# the default --min-sparsity keeps dense weights dense, with the reason
"$B" encode -q "$S/stories260K-fp16" -o "$W/pk"
grep -q 'is below --min-sparsity 0.5000' "$W/pk/pack_report.json" || fail "dense reason missing"

# a single file of any name becomes the pack's model.safetensors; nothing else beside it is copied
mkdir -p "$W/single"; cp "$W/z16/model.safetensors" "$W/single/weights.safetensors"; echo x > "$W/single/notes.txt"
"$B" encode -q "$W/single/weights.safetensors" -o "$W/ps"
[ -f "$W/ps/model.safetensors" ] || fail "single-file pack lacks model.safetensors"
[ -e "$W/ps/notes.txt" ] && fail "single-file input: unrelated file copied"
"$B" decode -q "$W/ps" -o "$W/ds"
cmp -s "$W/z16/model.safetensors" "$W/ds/model.safetensors" || fail "single-file round trip"

# inspect knows packs
"$B" inspect "$W/p16a" > "$W/inspect.txt"
grep -q '^pack: tiled-csl version 1, 35 encoded tensors' "$W/inspect.txt" || fail "inspect shows no pack info"
"$B" inspect --json "$W/p16a" > "$W/inspect.json"
grep -q "\"padded_shape\"" "$W/inspect.json" || fail "inspect --json shows no pack info"
echo "ok"
