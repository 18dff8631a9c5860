#!/usr/bin/env bash
# device run 8 (2026-12-04, second session): the selection split into a threshold step run by the last score block
# of each unit (b*, the bin b* keys gathered in shared memory, radix passes, per-chunk output offsets) and a
# parallel ordered compaction kernel; the score loop takes FPK_DS_SCORE_TOK tokens per thread and step.
# Correctness first (test_ds_attention, 15 shapes, bit-identical top-k; memcheck, racecheck, synccheck on the
# quick set), then bench_ds of the previous library (.carry-final/old), the new one (4 tokens, 5 blocks/SM) and
# a variant (.carry-final/var: 2 tokens, 6 blocks/SM), interleaved twice in the same run; ncu at the target shape.
set -u
. scripts/gpu_env.sh
date -u
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader
build-gpu/tests/gpu/test_ds_attention > "$out/test_ds.log" 2>&1; echo "test_ds_attention rc $?"; grep -E "FAIL|failed" "$out/test_ds.log" | head; tail -3 "$out/test_ds.log"
LD_LIBRARY_PATH=$cjson:$root/.carry-final/var build-gpu/tests/gpu/test_ds_attention > "$out/test_ds_var.log" 2>&1; echo "test_ds_attention (var) rc $?"
for tool in memcheck racecheck synccheck; do
	compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > "$out/$tool.log" 2>&1; echo "$tool rc $?"; tail -1 "$out/$tool.log"
done
B=/work/main/build-gpu/bench/bench_ds
for i in 1 2; do
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/old $B > "$out/bench_old_$i.txt" 2>&1; echo "old rc $?"
	$B > "$out/bench_new_$i.txt" 2>&1; echo "new rc $?"
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/var $B > "$out/bench_var_$i.txt" 2>&1; echo "var rc $?"
done
for f in old_1 new_1 var_1 old_2 new_2 var_2; do echo "== $f"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \|" "$out/bench_$f.txt" | grep -v 'r=d' | cut -d'|' -f2-4,7,8,10,11; grep -E "^\| (1|8) \| (32|128)K \| (8|32) \| r=d" "$out/bench_$f.txt"; done
FPK_DS_ONLY=8,32768,32 timeout 120 ncu --clock-control none -k regex:"ds_score_kernel|ds_compact_kernel" -c 4 --section SpeedOfLight --section LaunchStats --section Occupancy $B > "$out/ncu.txt" 2>&1
grep -E "ds_score|ds_compact|Duration|DRAM Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy" "$out/ncu.txt" | cut -c1-110
date -u
