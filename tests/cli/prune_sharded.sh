#!/usr/bin/env bash
# prune_sharded.sh: sharded model directories (layout, index, other files kept), tied embeddings pruned once,
# --include/--exclude/--sparsity-for, global scope over mixed dtypes, OPT and Qwen2 names.
source "$(dirname "$0")/lib/prune_common.bash"
G=$FPK_TOOLS/gen_checkpoint
in=$work/qwen
"$G" --out "$in" --arch qwen2 --layers 3 --hidden 128 --heads 4 --kv-heads 2 --intermediate 320 --vocab 256 \
	--dtype bf16 --shards 3 --tied-copy --seed 3 >/dev/null
echo '{"tok": 1}' >"$in/tokenizer.json"
mkdir -p "$in/extra/deeper"; echo data >"$in/extra/deeper/notes.txt"
out=$work/qwen-out
"$FPK_BIN" prune "$in" -o "$out" --sparsity 0.5 -q
"$CHECK" "$in" "$out" >/dev/null || fail "sharded default"
for f in model-00001-of-00003.safetensors model-00002-of-00003.safetensors model-00003-of-00003.safetensors \
	model.safetensors.index.json config.json tokenizer.json extra/deeper/notes.txt; do
	[ -f "$out/$f" ] || fail "'$f' missing from OUT"
done
cmp -s "$in/extra/deeper/notes.txt" "$out/extra/deeper/notes.txt" || fail "nested file not copied"
# the index is rewritten but maps every tensor to the same shard
diff <(grep '"model\.' "$in/model.safetensors.index.json" | sort) <(grep '"model\.' "$out/model.safetensors.index.json" | sort) \
	|| fail "index weight_map changed"
grep -q '"total_size"' "$out/model.safetensors.index.json" || fail "index lost total_size"
# biases, norms, embeddings and lm_head are never default targets
for t in model.layers.0.self_attn.q_proj.bias model.embed_tokens.weight lm_head.weight model.norm.weight; do
	[ "$(zeros_of "$out" "$t")" -eq 0 ] || fail "'$t' was pruned by default"
done
# tied embeddings: including embed_tokens prunes lm_head (its exact copy) identically, counted once
out=$work/tied
"$FPK_BIN" prune "$in" -o "$out" --sparsity 0.3 --include 'model.embed_tokens.weight' --json >"$work/tied.json"
"$CHECK" "$in" "$out" >/dev/null || fail "tied"
grep -q '"tied_to":[[:space:]]*"model.embed_tokens.weight"' "$work/tied.json" || fail "lm_head not reported as tied"
n=$(elements_of "$in" model.embed_tokens.weight)
[ "$(zeros_of "$out" lm_head.weight)" -eq "$(round_sn 0.3 "$n")" ] || fail "lm_head count"
grep -A3 '"totals"' "$work/tied.json" | grep -q '"targeted_tensors":[[:space:]]*2' || fail "targeted count"
grep -A5 '"totals"' "$work/tied.json" | grep -q "\"targeted_elements\":[[:space:]]*$n," || fail "tied copy counted twice"
# global scope over the tied pair: one threshold, the copy identical
out=$work/tied-global
"$FPK_BIN" prune "$in" -o "$out" --sparsity 0.4 --scope global --include '*embed_tokens*' --include '*mlp*' -q
"$CHECK" "$in" "$out" >/dev/null || fail "tied global"
# --sparsity-for: per-module sparsity, the last matching rule wins; --exclude removes targets
out=$work/rules
"$FPK_BIN" prune "$in" -o "$out" --sparsity 0.2 --sparsity-for '*.mlp.*=0.7' --sparsity-for '*.down_proj.*=0.55' \
	--exclude '*.layers.2.*' -q
"$CHECK" "$in" "$out" >/dev/null || fail "rules"
for t in model.layers.0.mlp.up_proj.weight:0.7 model.layers.1.mlp.down_proj.weight:0.55 \
	model.layers.1.self_attn.o_proj.weight:0.2 model.layers.2.mlp.up_proj.weight:0; do
	name=${t%:*} s=${t#*:}
	z=$(zeros_of "$out" "$name")
	[ "$z" -eq "$(round_sn "$s" "$(elements_of "$in" "$name")")" ] || fail "'$name': $z zeros, expected sparsity $s"
done
# global scope across dtypes: an F32 + F16 mix gets one threshold over |x|
"$FPK_TOOLS/st_poke" "$S32/model.safetensors" "$work/mixed.safetensors" retype model.layers.0.mlp.up_proj.weight F16 \
	retype model.layers.3.self_attn.q_proj.weight BF16
out=$work/mixed
"$FPK_BIN" prune "$work/mixed.safetensors" -o "$out" --sparsity 0.45 --scope global -q
"$CHECK" "$work/mixed.safetensors" "$out" >/dev/null || fail "global mixed dtypes"
# OPT names (fc1/fc2, out_proj; embed_positions and LayerNorms untouched), f16, pre-sparse input
in=$work/opt
"$G" --out "$in" --arch opt --layers 2 --hidden 128 --heads 4 --intermediate 512 --vocab 200 --max-pos 64 \
	--dtype f16 --sparsity 0.3 >/dev/null
for scope in tensor row global; do
	out=$work/opt-$scope
	"$FPK_BIN" prune "$in" -o "$out" --sparsity 0.5 --scope $scope -q
	"$CHECK" "$in" "$out" >/dev/null || fail "opt $scope"
done
grep -q '"name":[[:space:]]*"model.decoder.layers.1.fc2.weight",' "$work/opt-row/prune_report.json" || fail "opt names"
[ "$(zeros_of "$work/opt-tensor" model.decoder.embed_positions.weight)" -eq 0 ] || fail "embed_positions pruned"
# already sparser than asked: nothing more is pruned, nothing is un-pruned
out=$work/opt-low
"$FPK_BIN" prune "$in" -o "$out" --sparsity 0.1 -q
"$CHECK" "$in" "$out" >/dev/null || fail "opt already sparse"
t=model.decoder.layers.0.fc1.weight
[ "$(zeros_of "$out" $t)" -eq "$(zeros_of "$in" $t)" ] || fail "already-sparse tensor changed"
echo ok
