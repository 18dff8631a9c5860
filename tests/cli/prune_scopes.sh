#!/usr/bin/env bash
# prune_scopes.sh: tensor, row and global scope and 2:4 on the real stories260K (fp32) and stories260K-fp16: exact
# zero counts, kept values bit-identical, order and tie rules, untouched tensors byte-identical (tests/tools/prune_check).
source "$(dirname "$0")/lib/prune_common.bash"
for m in "$S32" "$S16"; do
	tag=$(basename "$m")
	for s in 0 0.37 0.5 0.9; do
		for scope in tensor row global; do
			out=$work/$tag-$scope-$s
			"$FPK_BIN" prune "$m" -o "$out" --sparsity "$s" --scope "$scope" -q
			"$CHECK" "$m" "$out" >/dev/null || fail "$tag --scope $scope --sparsity $s"
		done
	done
	for p in 2:4 1:4 1:2 3:4; do
		out=$work/$tag-p${p/:/-}
		"$FPK_BIN" prune "$m" -o "$out" --pattern "$p" -q
		"$CHECK" "$m" "$out" >/dev/null || fail "$tag --pattern $p"
	done
	# independent of the checker: inspect's zero count of one tensor is round(S*n)
	t=model.layers.2.mlp.down_proj.weight
	n=$(elements_of "$m" "$t")
	z=$(zeros_of "$work/$tag-tensor-0.37" "$t")
	[ "$z" -eq "$(round_sn 0.37 "$n")" ] || fail "$tag $t: $z zeros, expected round(0.37*$n)"
	z=$(zeros_of "$work/$tag-p2-4" "$t")
	[ "$z" -eq $((n / 2)) ] || fail "$tag 2:4 $t: $z zeros, expected $((n / 2))"
	# S = 0 adds no zeros (the input has none)
	"$FPK_BIN" inspect --json "$work/$tag-tensor-0" | grep -q '"zeros":[[:space:]]*[1-9]' && fail "$tag: S=0 made zeros"
	# every other file is copied byte for byte (config, tokenizer, sub-folders)
	(cd "$m" && find . -type f ! -name model.safetensors) | while read -r f; do
		cmp -s "$m/$f" "$work/$tag-row-0.5/$f" || fail "$tag: '$f' not copied"
	done
	[ -s "$work/$tag-row-0.5/prune_report.json" ] || fail "no prune_report.json"
	grep -q '"version":' "$work/$tag-row-0.5/prune_report.json" || fail "report lacks the version"
	grep -q '"command":[[:space:]]*"flashllm-pack prune ' "$work/$tag-row-0.5/prune_report.json" || fail "report lacks the command"
done
# the checker itself must catch a wrong output: a row-scope result checked against a tensor-scope report
cp "$work/stories260K-tensor-0.5/prune_report.json" "$work/stories260K-row-0.5/prune_report.json"
if "$CHECK" "$S32" "$work/stories260K-row-0.5" 2>/dev/null; then fail "prune_check accepted a wrong output"; fi
echo ok
