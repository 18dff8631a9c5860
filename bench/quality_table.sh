#!/usr/bin/env bash
# quality_table.sh: stories260K perplexity after pruning, as users ask for it: sparsity x scope (tensor, row) x
# dtype (fp32, fp16), on the TinyStories sample and on WikiText-2 test, each number computed by `verify --eval`
# (pack vs its pruned dense checkpoint, same engine). Prints a markdown table.
# Usage: bench/quality_table.sh BUILD_DIR [WIKI_TOKENS (default 20000)]
# Environment: FPK_DEVICE (verify --device: auto, gpu or cpu; default auto), FPK_DTYPES (default "fp32 fp16"),
# FPK_SCOPES (default "tensor row"), FPK_SPARSITIES (percent, default "0 30 50 60 70 80 90").
set -euo pipefail
build=${1:-build}
wiki_tokens=${2:-20000}
bin=$build/flashllm-pack
T=${FPK_SHARED:-../shared}/testdata
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
ts=$T/tinystories-sample/tinystories_sample.txt
wk=$T/wikitext-2-raw/wiki.test.raw
field() { awk -v r="$1" -v c="$2" '$1 == r {print $c}'; }
device=${FPK_DEVICE:-auto}
echo "| sparsity | scope | dtype | TinyStories ppl (pack) | TinyStories ppl (pruned dense) | WikiText-2 ppl (pack) | WikiText-2 ppl (pruned dense) | pack == pruned |"
echo "|---|---|---|---|---|---|---|---|"
for dt in ${FPK_DTYPES:-fp32 fp16}; do
	src=$T/stories260K
	enc=(--dtype f16)
	[ $dt = fp16 ] && { src=$T/stories260K-fp16; enc=(); }
	for scope in ${FPK_SCOPES:-tensor row}; do
		for s in ${FPK_SPARSITIES:-0 30 50 60 70 80 90}; do
			[ $s = 0 ] && [ $scope = row ] && continue
			p=$w/p_${dt}_${scope}_$s
			"$bin" prune "$src" -o "$p" --sparsity 0.$s --scope $scope -q --force 2>/dev/null ||
				"$bin" prune "$src" -o "$p" --sparsity 0 --scope $scope -q --force
			"$bin" encode "$p" -o "$p.pack" --min-sparsity 0 "${enc[@]}" -q --force
			a=$("$bin" verify "$p.pack" --against "$p" --eval "$ts" --batch 1 --device "$device" -q || true)
			b=$("$bin" verify "$p.pack" --against "$p" --eval "$wk" --max-tokens "$wiki_tokens" --batch 1 --device "$device" -q || true)
			okA=$(grep -c '^eval PASS' <<<"$a" || true)
			okB=$(grep -c '^eval PASS' <<<"$b" || true)
			echo "| $s% | $scope | $dt | $(field pack 3 <<<"$a") | $(field against 3 <<<"$a") | $(field pack 3 <<<"$b") | $(field against 3 <<<"$b") | $([ "$okA$okB" = 11 ] && echo yes || echo "no ($okA$okB)") |"
		done
	done
done
