#!/usr/bin/env bash
# prune_errors.sh: every bad input of issue 3 gets its message and exit code (2 usage, 3 bad data, 4 I/O) and leaves
# no partial OUT behind.
source "$(dirname "$0")/lib/prune_common.bash"
P=("$FPK_BIN" prune)
out=$work/out
# invalid sparsity
expect 2 "out of range" "${P[@]}" "$S32" -o "$out" --sparsity 1; no_output "$out"
expect 2 "out of range" "${P[@]}" "$S32" -o "$out" --sparsity -0.1; no_output "$out"
expect 2 "out of range" "${P[@]}" "$S32" -o "$out" --sparsity nan; no_output "$out"
expect 2 "expects a number" "${P[@]}" "$S32" -o "$out" --sparsity half; no_output "$out"
expect 2 "--sparsity S is required" "${P[@]}" "$S32" -o "$out"; no_output "$out"
expect 2 "out of range" "${P[@]}" "$S32" -o "$out" --sparsity 0.5 --sparsity-for '*q_proj*=1.5'; no_output "$out"
expect 2 "expected GLOB=S" "${P[@]}" "$S32" -o "$out" --sparsity 0.5 --sparsity-for '*q_proj*'; no_output "$out"
# unknown pattern or scope, bad combinations
expect 2 "unknown pattern '3:2'" "${P[@]}" "$S32" -o "$out" --pattern 3:2; no_output "$out"
expect 2 "unknown pattern '2-4'" "${P[@]}" "$S32" -o "$out" --pattern 2-4; no_output "$out"
expect 2 "unknown pattern '0:4'" "${P[@]}" "$S32" -o "$out" --pattern 0:4; no_output "$out"
expect 2 "contradicts --pattern" "${P[@]}" "$S32" -o "$out" --pattern 2:4 --sparsity 0.3; no_output "$out"
expect 2 "unknown scope 'layer'" "${P[@]}" "$S32" -o "$out" --sparsity 0.5 --scope layer; no_output "$out"
expect 2 "cannot be combined" "${P[@]}" "$S32" -o "$out" --pattern 2:4 --scope row; no_output "$out"
expect 2 "cannot be combined" "${P[@]}" "$S32" -o "$out" --sparsity 0.5 --scope global --sparsity-for '*=0.2'; no_output "$out"
# globs that match nothing, nothing targeted
expect 2 "--include 'nothing.*' matches no tensor" "${P[@]}" "$S32" -o "$out" --sparsity 0.5 --include 'nothing.*'; no_output "$out"
expect 2 "--exclude 'nothing.*' matches no tensor" "${P[@]}" "$S32" -o "$out" --sparsity 0.5 --exclude 'nothing.*'; no_output "$out"
expect 2 "--sparsity-for '*.norm.*' matches no targeted tensor" "${P[@]}" "$S32" -o "$out" --sparsity 0.5 --sparsity-for '*.norm.*=0.2'; no_output "$out"
expect 2 "no tensor of" "${P[@]}" "$S32" -o "$out" --sparsity 0.5 --exclude '*'; no_output "$out"
# OUT equal to IN, inside IN, containing IN; OUT existing without --force
cp -r "$S16" "$work/in"
chmod -R u+w "$work/in"
expect 2 "is the input or inside it" "${P[@]}" "$work/in" -o "$work/in" --sparsity 0.5
expect 2 "is the input or inside it" "${P[@]}" "$work/in" -o "$work/in/sub" --sparsity 0.5; no_output "$work/in/sub"
expect 2 "is the input or inside it" "${P[@]}" "$work/in/model.safetensors" -o "$work/in/model.safetensors" --sparsity 0.5
expect 2 "is inside the output" "${P[@]}" "$work/in" -o "$work" --sparsity 0.5 --force
[ -f "$work/in/model.safetensors" ] || fail "input damaged"
mkdir -p "$work/exists"; echo keep >"$work/exists/file"
expect 2 "already exists" "${P[@]}" "$S32" -o "$work/exists" --sparsity 0.5
[ "$(cat "$work/exists/file")" = keep ] || fail "existing OUT modified without --force"
"${P[@]}" "$S32" -o "$work/exists" --sparsity 0.5 --force -q
[ ! -e "$work/exists/file" ] && [ -f "$work/exists/model.safetensors" ] || fail "--force did not replace OUT"
# OUT given with a trailing slash is the same directory, built beside it (not inside) and renamed
"${P[@]}" "$S32" -o "$work/slash/" --sparsity 0.5 -q
[ -f "$work/slash/model.safetensors" ] && [ -z "$(ls -A "$work/slash" | grep tmp || true)" ] || fail "OUT with a trailing slash"
expect 2 "already exists" "${P[@]}" "$S32" -o "$work/slash/" --sparsity 0.5
# a missing input and a corrupt one
expect 4 "does not exist" "${P[@]}" "$work/missing" -o "$out" --sparsity 0.5; no_output "$out"
head -c 1000 "$S32/model.safetensors" >"$work/trunc.safetensors"
expect 3 "trunc.safetensors" "${P[@]}" "$work/trunc.safetensors" -o "$out" --sparsity 0.5; no_output "$out"
# unsupported dtype in a targeted tensor
"$FPK_TOOLS/st_poke" "$S32/model.safetensors" "$work/f64.safetensors" retype model.layers.1.mlp.up_proj.weight F64
expect 3 "tensor 'model.layers.1.mlp.up_proj.weight': dtype F64 cannot be pruned" \
	"${P[@]}" "$work/f64.safetensors" -o "$out" --sparsity 0.5; no_output "$out"
# ...but an untouched F64 tensor is fine and copied byte for byte
"${P[@]}" "$work/f64.safetensors" -o "$out" --sparsity 0.5 --exclude 'model.layers.1.mlp.up_proj.weight' -q
"$CHECK" "$work/f64.safetensors" "$out" >/dev/null || fail "untouched F64"
rm -rf "$out"
# N:M with a last dimension that is not a multiple of M (down_proj has 172 columns)
expect 3 "tensor 'model.layers.0.mlp.down_proj.weight': last dimension 172 is not a multiple of 8" \
	"${P[@]}" "$S32" -o "$out" --pattern 4:8; no_output "$out"
# NaN and Inf: an error naming tensor and flat index, unless allowed
"$FPK_TOOLS/st_poke" "$S16/model.safetensors" "$work/nan.safetensors" set model.layers.3.self_attn.k_proj.weight 777 nan \
	set model.layers.3.self_attn.k_proj.weight 900 inf
expect 3 "tensor 'model.layers.3.self_attn.k_proj.weight': NaN at flat index 777" \
	"${P[@]}" "$work/nan.safetensors" -o "$out" --sparsity 0.5; no_output "$out"
expect 3 "NaN at flat index 777" "${P[@]}" "$work/nan.safetensors" -o "$out" --sparsity 0.5 --scope row; no_output "$out"
expect 3 "NaN at flat index 777" "${P[@]}" "$work/nan.safetensors" -o "$out" --sparsity 0.5 --scope global; no_output "$out"
expect 3 "NaN at flat index 777" "${P[@]}" "$work/nan.safetensors" -o "$out" --pattern 2:4; no_output "$out"
"$FPK_TOOLS/st_poke" "$S16/model.safetensors" "$work/inf.safetensors" set model.layers.0.mlp.gate_proj.weight 5 -inf
expect 3 "-Inf at flat index 5" "${P[@]}" "$work/inf.safetensors" -o "$out" --sparsity 0.5; no_output "$out"
"${P[@]}" "$work/nan.safetensors" -o "$out" --sparsity 0.5 --allow-nonfinite -q || fail "--allow-nonfinite"
grep -q '"zeros_after":[[:space:]]*1024' "$out/prune_report.json" || fail "--allow-nonfinite counts"
rm -rf "$out"
# write errors: a path under /dev/full, and a full disk (a 256 KiB tmpfs, or a file-size limit where mounting is
# not permitted); both must exit 4 and leave nothing behind
expect 4 "" "${P[@]}" "$S32" -o /dev/full/out --sparsity 0.5
mnt=$work/tiny
mkdir -p "$mnt"
if mount -t tmpfs -o size=256k tmpfs "$mnt" 2>/dev/null; then
	trap 'umount "$mnt" 2>/dev/null || true' EXIT
	expect 4 "No space left on device" "${P[@]}" "$S32" -o "$mnt/out" --sparsity 0.5
	no_output "$mnt/out"
	[ -z "$(ls -A "$mnt")" ] || fail "files left on the full disk: $(ls -A "$mnt")"
	umount "$mnt"
	trap - EXIT
else
	rc=0
	(trap '' XFSZ; ulimit -f 256; exec "${P[@]}" "$S32" -o "$mnt/out" --sparsity 0.5) 2>"$work/stderr" || rc=$?
	[ "$rc" -eq 4 ] || { cat "$work/stderr"; fail "write past the file-size limit exited $rc, expected 4"; }
	grep -q "File too large" "$work/stderr" || fail "write error message"
	no_output "$mnt/out"
fi
echo ok
