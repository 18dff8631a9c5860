#!/usr/bin/env bash
# device run 4 (2026-12-04): the filter kernel with prefetched score tiles: correctness (test_ds_attention: labels
# and top-k bit-identical with the C twins; memcheck), the verify --channels GPU test, then bench_ds new vs old
# library in the same run (twice, interleaved) and ncu of the filter.
set -u
. scripts/gpu_env.sh
date -u
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > "$out/ctest_gpu.log" 2>&1; echo "ctest rc $?")
grep -E "Test +#|tests passed" "$out/ctest_gpu.log"
FPK_DS_QUICK=1 compute-sanitizer --tool memcheck --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention > "$out/mc_ds.log" 2>&1; echo "memcheck rc $?"; tail -1 "$out/mc_ds.log"
FPK_DS_QUICK=1 compute-sanitizer --tool racecheck --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention > "$out/rc_ds.log" 2>&1; echo "racecheck rc $?"; tail -1 "$out/rc_ds.log"
B=/work/main/build-gpu/bench/bench_ds
for i in 1 2; do
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/old $B > "$out/bench_old_$i.txt" 2>&1; echo "old rc $?"
	$B > "$out/bench_new_$i.txt" 2>&1; echo "new rc $?"
done
for f in old_1 new_1 old_2 new_2; do echo "== $f"; grep -E "^\| (1|8) \| (32|128)K \| 32 \||^\| 8 \| 32K \| 8 \|" "$out/bench_$f.txt"; grep -E "^\| 8 \| 32K \| 32 \| r=d/16" "$out/bench_$f.txt"; done
FPK_DS_ONLY=8,32768,32 timeout 100 ncu --clock-control none -k regex:ds_filter_kernel -c 2 --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats $B > "$out/ncu_filter.txt" 2>&1
grep -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Eligible Warps" "$out/ncu_filter.txt"
date -u
