#!/usr/bin/env bash
# device run 7 (2026-12-04, second session): score and selection fused into one launch (the last score block of a
# unit selects) and 4 tokens per thread in the score loop. Correctness first (test_ds_attention: labels and top-k
# bit-identical with the C twins, 15 shapes; memcheck and racecheck on the quick set), then bench_ds of the
# previous library (.carry-final/old) and the new one interleaved twice in the same run, then ncu of the new
# fused kernel at the target shape.
set -u
. scripts/gpu_env.sh
date -u
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader
build-gpu/tests/gpu/test_ds_attention > "$out/test_ds.log" 2>&1; echo "test_ds_attention rc $?"; grep -E "FAIL|case 14|failed" "$out/test_ds.log" | head; tail -2 "$out/test_ds.log"
compute-sanitizer --tool memcheck --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > "$out/mc_ds.log" 2>&1; echo "memcheck rc $?"; tail -1 "$out/mc_ds.log"
compute-sanitizer --tool racecheck --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > "$out/rc_ds.log" 2>&1; echo "racecheck rc $?"; tail -1 "$out/rc_ds.log"
compute-sanitizer --tool synccheck --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > "$out/sc_ds.log" 2>&1; echo "synccheck rc $?"; tail -1 "$out/sc_ds.log"
B=/work/main/build-gpu/bench/bench_ds
for i in 1 2; do
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/old $B > "$out/bench_old_$i.txt" 2>&1; echo "old rc $?"
	$B > "$out/bench_new_$i.txt" 2>&1; echo "new rc $?"
done
for f in old_1 new_1 old_2 new_2; do echo "== $f"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \|" "$out/bench_$f.txt" | grep -v 'r=d'; grep -E "^\| 8 \| 32K \| 32 \| r=d" "$out/bench_$f.txt"; done
FPK_DS_ONLY=8,32768,32 timeout 100 ncu --clock-control none -k regex:ds_score_kernel -c 2 --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats $B > "$out/ncu_score.txt" 2>&1
grep -E "Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Eligible Warps" "$out/ncu_score.txt"
date -u
