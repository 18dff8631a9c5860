#!/usr/bin/env bash
# device run 11 (2026-12-04, second session), on top of run 10 (main at 2409949, carried as .carry-final/base):
# the filter gets its own chunks of at most 4096 tokens (one round trip of loads per block; the score kernel's
# chunks stay as they were) and the sparse attention loads the token indices two steps ahead of use. Variant
# (.carry-final/var): filter chunks of at most 2048. Correctness first (test_ds_attention, 15 shapes;
# memcheck, racecheck, synccheck on the quick set; the verify --channels GPU test), then bench_ds of base, new
# and var interleaved twice in the same run (old = main at 9cb186c once), and ncu of filter and resolve.
set -u
. scripts/gpu_env.sh
date -u
build-gpu/tests/gpu/test_ds_attention > "$out/test_ds.log" 2>&1; echo "test_ds_attention rc $?"; grep -E "FAIL|failed" "$out/test_ds.log" | head; tail -1 "$out/test_ds.log"
LD_LIBRARY_PATH=$cjson:$root/.carry-final/var build-gpu/tests/gpu/test_ds_attention > "$out/test_ds_var.log" 2>&1; echo "test_ds_attention (var) rc $?"
for tool in memcheck racecheck synccheck; do
	compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > "$out/$tool.log" 2>&1; echo "$tool rc $?"; tail -1 "$out/$tool.log"
done
(cd /work/main/build-gpu && ctest -R verify_channels_gpu --output-on-failure > "$out/ctest_vc.log" 2>&1; echo "ctest verify_channels_gpu rc $?"; grep -E "tests passed|Passed|Failed" "$out/ctest_vc.log" | tail -2)
B=/work/main/build-gpu/bench/bench_ds
LD_LIBRARY_PATH=$cjson:$root/.carry-final/old $B > "$out/bench_old_1.txt" 2>&1; echo "old rc $?"
for i in 1 2; do
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/base $B > "$out/bench_base_$i.txt" 2>&1; echo "base rc $?"
	$B > "$out/bench_new_$i.txt" 2>&1; echo "new rc $?"
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/var $B > "$out/bench_var_$i.txt" 2>&1; echo "var rc $?"
done
for f in old_1 base_1 new_1 var_1 base_2 new_2 var_2; do echo "== $f"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \|" "$out/bench_$f.txt" | grep -v 'r=d' | cut -d'|' -f2-4,7,8,10,11; grep -E "^\| (1|8) \| (32|128)K \| (8|32) \| r=d" "$out/bench_$f.txt"; done
FPK_DS_ONLY=8,32768,32 timeout 120 ncu --clock-control none -k regex:"ds_filter_kernel|ds_select_kernel" -c 4 --section SpeedOfLight --section LaunchStats --section Occupancy $B > "$out/ncu.txt" 2>&1
grep -E "ds_filter|ds_select|Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy" "$out/ncu.txt" | cut -c1-110
date -u
