#!/usr/bin/env bash
set -u
# device run 5 (2026-12-04): the second filter variant (first-tile prefetch, registers capped at 64) vs the old library
. scripts/gpu_env.sh
$root/.carry-final/build-gpu/tests/gpu/test_ds_attention > "$out/test_ds.log" 2>&1; echo "test_ds_attention rc $?"; tail -1 "$out/test_ds.log"
B=$root/.carry-final/build-gpu/bench/bench_ds
for i in 1 2; do
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/old $B > "$out/bench_old_$i.txt" 2>&1; echo "old rc $?"
	$B > "$out/bench_new_$i.txt" 2>&1; echo "new rc $?"
done
for f in old_1 new_1 old_2 new_2; do echo "== $f"; grep -E "^\| 8 \| 32K \| 32 \||^\| 1 \| 32K \| 32 \|" "$out/bench_$f.txt"; done
FPK_DS_ONLY=8,32768,32 timeout 100 ncu --clock-control none -k regex:ds_filter_kernel -c 2 --section SpeedOfLight --section LaunchStats --section Occupancy $B > "$out/ncu_filter.txt" 2>&1
grep -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy" "$out/ncu_filter.txt"
