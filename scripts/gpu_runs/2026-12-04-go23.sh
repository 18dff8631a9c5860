#!/usr/bin/env bash
# device run 23 (2026-12-04, third session): SpMM v7 (ring chunks of 4 vectors per thread at N <= 32, 2 at N = 64;
# this build) against the previous main (2b01e06, PDL, 1 vector per thread: .carry-final/head), same binaries:
# test_spmm (all 272 cases + the chain) and memcheck/racecheck (quick set) on v7; bench_spmm on the four
# Llama-2-7B matrices at 70/80/90% (all N), libraries interleaved; bench_decode both libraries (both models,
# sparsity 0/0.8, batch 8/16/32, context 512).
set -u
. scripts/gpu_env.sh
date -u
build-gpu/tests/gpu/test_spmm > /tmp/t.log 2>&1; echo "test_spmm v7 rc $?"; grep -E "cases|^ok|FAIL" /tmp/t.log
for tool in memcheck racecheck; do
	FPK_SPMM_QUICK=1 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_spmm > /tmp/s.log 2>&1
	echo "$tool rc $?"; tail -1 /tmp/s.log
done
libs="head:$root/.carry-final/head v7:/work/main/build-gpu"
for shape in 4096,4096 12288,4096 22016,4096 4096,11008; do
	for sp in 70 80 90; do
		for l in $libs; do
			n=${l%%:*}; d=${l#*:}
			LD_LIBRARY_PATH=$cjson:$d build-gpu/bench/bench_spmm --only $shape,$sp,0 --out /tmp > /dev/null 2>&1 || echo "bench $n failed"
			echo "== $shape $sp $n"; grep -E "^\| [0-9]+ x" /tmp/spmm.md | cut -d'|' -f4-7 | tr '\n' ' '; echo
		done
	done
done
for l in $libs; do
	n=${l%%:*}; d=${l#*:}
	LD_LIBRARY_PATH=$cjson:$d build-gpu/bench/bench_decode --model all --sparsity 0,0.8 --batch 8,16,32 --ctx 512 --csv "$out/decode_$n.csv" --md /tmp/d.md > /tmp/d.log 2>&1; echo "decode $n rc $?"
	cut -d, -f1,4-10 "$out/decode_$n.csv"
done
date -u
