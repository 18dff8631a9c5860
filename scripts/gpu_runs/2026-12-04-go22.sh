#!/usr/bin/env bash
# device run 22 (2026-12-04, third session): SpMM with 2 or 4 ring vectors per thread per chunk (SPMM_VPT, same
# 32 KB in flight, half / a quarter of the chunk-loop iterations) against main (VPT 1), same binaries, libraries
# switched with LD_LIBRARY_PATH: test_spmm on each, then bench_spmm on the four Llama-2-7B matrices at 80% (all
# N), interleaved; and ncu's warp-state (stall) breakdown of main's kernel on 22016 x 4096, 80%, N = 8.
set -u
. scripts/gpu_env.sh
date -u
libs="main:/work/main/build-gpu vpt2:$root/.carry-final/vpt2 vpt4:$root/.carry-final/vpt4"
for l in $libs; do
	n=${l%%:*}; d=${l#*:}
	LD_LIBRARY_PATH=$cjson:$d build-gpu/tests/gpu/test_spmm > "$out/t.log" 2>&1; echo "test_spmm $n rc $?"; grep -E "cases" "$out/t.log"
done
for shape in 4096,4096 12288,4096 22016,4096 4096,11008; do
	for l in $libs; do
		n=${l%%:*}; d=${l#*:}
		LD_LIBRARY_PATH=$cjson:$d build-gpu/bench/bench_spmm --only $shape,80,0 --out /tmp > /dev/null 2>&1 || echo "bench $n failed"
		echo "== $shape $n"; grep -E "^\| [0-9]+ x" /tmp/spmm.md | cut -d'|' -f2-7
	done
done
ncu --section WarpStateStats --section InstructionStats -k regex:spmm_kernel --launch-skip 12 --launch-count 1 \
	build-gpu/bench/bench_spmm --only 22016,4096,80,8 --out /tmp > /tmp/ncu.txt 2>&1; echo "ncu rc $?"
grep -E "Stall|stall|Warp Cycles|Executed Instructions|Issued Instructions|Avg. Active" /tmp/ncu.txt | head -40
date -u
