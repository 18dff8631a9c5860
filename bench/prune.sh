#!/usr/bin/env bash
# prune.sh: times `flashllm-pack prune` against `cp` (and `cp` + `sync`) on a generated Llama-2-7B-shaped fp16
# checkpoint (>= 2 GB), in the same run, and reports GB/s and peak RSS. Results go to docs/BENCHMARKS.md (## prune).
# Usage: bash bench/prune.sh [BUILD_DIR] [LAYERS] [ROUNDS]   (deletes the generated files when done)
set -euo pipefail
build=${1:-build}
layers=${2:-4}
rounds=${3:-3}
bin=$build/flashllm-pack
gen=$build/tests/tools/gen_checkpoint
work=${FPK_BENCH_DIR:-$build/bench-prune-work}
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
command -v /usr/bin/time >/dev/null || { echo "bench/prune.sh: needs /usr/bin/time (GNU time) for peak RSS" >&2; exit 2; }

"$gen" --out "$work/in" --preset llama7b --layers "$layers" >/dev/null
bytes=$(du -sb "$work/in" | cut -f1)
echo "input: Llama-2-7B shapes, $layers layers, fp16, $bytes bytes ($(nproc) cores, $(uname -r))"
sync

# wall seconds of a command (and its peak RSS in KB through GNU time)
timed() { /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null; cat "$work/t"; }

cp_t=() cps_t=() pr_t=() pr_rss=() ns_t=()
for r in $(seq "$rounds"); do
	rm -rf "$work/cp" "$work/out"; sync
	read -r t _ < <(timed cp -r "$work/in" "$work/cp")
	read -r s _ < <(timed sync)
	cp_t+=("$t"); cps_t+=("$(awk -v a="$t" -v b="$s" 'BEGIN { printf "%.2f", a + b }')")
	rm -rf "$work/cp"; sync
	read -r t rss < <(timed "$bin" prune "$work/in" -o "$work/out" --sparsity 0.5 -q)
	pr_t+=("$t"); pr_rss+=("$rss")
	rm -rf "$work/out"; sync
	read -r n _ < <(timed "$bin" prune "$work/in" -o "$work/out" --sparsity 0.5 -q --no-sync)
	ns_t+=("$n")
	sync
	echo "round $r: cp ${cp_t[-1]} s, cp+sync ${cps_t[-1]} s, prune (fsync included) $t s, prune --no-sync $n s, prune peak RSS $rss KB"
done
grep -A8 '"totals"' "$work/out/prune_report.json" | grep -E '"(targeted_elements|zeros_after)"' | tr -d '\t,' | sed 's/^/report: /'

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
c=$(median "${cp_t[@]}"); cs=$(median "${cps_t[@]}"); p=$(median "${pr_t[@]}"); rss=$(median "${pr_rss[@]}")
ns=$(median "${ns_t[@]}")
awk -v b="$bytes" -v c="$c" -v cs="$cs" -v p="$p" -v rss="$rss" -v ns="$ns" 'BEGIN {
	printf "median of %s: cp %.2f s (%.2f GB/s), cp+sync %.2f s (%.2f GB/s), prune %.2f s (%.2f GB/s), ", "'"$rounds"'", c, b / c / 1e9, cs, b / cs / 1e9, p, b / p / 1e9
	printf "prune/cp %.2fx, prune/(cp+sync) %.2fx, prune peak RSS %.0f MB\n", p / c, p / cs, rss / 1024
	printf "like for like without fsync: prune --no-sync %.2f s (%.2f GB/s), prune --no-sync / cp %.2fx\n", ns, b / ns / 1e9, ns / c }'
