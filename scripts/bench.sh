#!/usr/bin/env bash
# bench.sh: the benchmarks (called by `make bench`); numbers go to docs/BENCHMARKS.md with the command and machine.
# GPU benchmarks run when the build has them and a GPU answers. Large-disk benchmarks (a 2 GB prune input, a 13 GB
# calibration model) and the quality table run only when asked: FPK_BENCH_LARGE=1, FPK_BENCH_QUALITY=1.
# Usage: scripts/bench.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
out=$build/bench-out
mkdir -p "$out"
gpu=0
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && gpu=1
run() { echo; echo "== $*"; "$@"; }
run "$build/bench/bench_encode"
if [ $gpu = 1 ] && [ -x "$build/bench/bench_spmm" ]; then
	run "$build/bench/bench_spmm" --out "$out" --threads "$(nproc)"
	run "$build/bench/bench_ds"
	# decode throughput (issue 8): dense vs Tiled-CSL in one run, Llama-2-7B and OPT-30B shapes (a few minutes;
	# FPK_DECODE_ARGS=--quick for a 2-layer smoke run)
	run "$build/bench/bench_decode" --threads "$(nproc)" --csv "$out/decode.csv" --md "$out/decode.md" ${FPK_DECODE_ARGS:-}
else
	echo; echo "== GPU benchmarks (bench_spmm, bench_ds, bench_decode) skipped: $([ $gpu = 1 ] && echo 'built without CUDA' || echo 'no GPU')"
fi
if [ "${FPK_BENCH_LARGE:-0}" = 1 ]; then
	run bash bench/prune.sh "$build"
	[ $gpu = 1 ] && run bash bench/bench_calibrate.sh "$build/bench" "$build/tests/tools"
fi
if [ "${FPK_BENCH_QUALITY:-0}" = 1 ]; then
	run bash bench/quality_table.sh "$build"
fi
