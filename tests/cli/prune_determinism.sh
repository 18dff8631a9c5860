#!/usr/bin/env bash
# prune_determinism.sh: the same input gives the same bytes for 1, 2 and 3 threads, in every scope, and a dry run
# reports the same counts and writes nothing.
source "$(dirname "$0")/lib/prune_common.bash"
"$FPK_TOOLS/gen_checkpoint" --out "$work/in" --layers 2 --hidden 256 --heads 4 --kv-heads 2 --intermediate 640 \
	--vocab 300 --dtype bf16 --seed 7 --shards 2 >/dev/null
for m in "$S16" "$work/in"; do
	for args in "--sparsity 0.6" "--sparsity 0.6 --scope row" "--sparsity 0.6 --scope global" "--pattern 2:4"; do
		ref=
		for th in 1 2 3; do
			out=$work/out-$th
			rm -rf "$out"
			# shellcheck disable=SC2086
			"$FPK_BIN" prune "$m" -o "$out" $args --threads "$th" -q
			"$CHECK" "$m" "$out" >/dev/null || fail "$m $args --threads $th"
			sum=$(cd "$out" && cat $(ls *.safetensors) | cksum)
			[ -z "$ref" ] || [ "$sum" = "$ref" ] || fail "$m $args: --threads $th gives other bytes"
			ref=$sum
		done
		# --no-sync changes durability only, never bytes
		rm -rf "$work/out-ns"
		# shellcheck disable=SC2086
		"$FPK_BIN" prune "$m" -o "$work/out-ns" $args --no-sync -q
		sum=$(cd "$work/out-ns" && cat $(ls *.safetensors) | cksum)
		[ "$sum" = "$ref" ] || fail "$m $args: --no-sync gives other bytes"
		# shellcheck disable=SC2086
		"$FPK_BIN" prune "$m" --dry-run $args --json >"$work/dry.json"
		grep -q '"dry_run":[[:space:]]*true' "$work/dry.json" || fail "dry run not marked"
		a=$(grep -A8 '"totals"' "$work/dry.json" | grep '"zeros_after"')
		b=$(grep -A8 '"totals"' "$work/out-3/prune_report.json" | grep '"zeros_after"')
		[ "$a" = "$b" ] || fail "$m $args: dry run says $a, the real run $b"
	done
done
echo ok
