#!/usr/bin/env bash
# device run 3 (2026-12-04): bench_ds on the H200 (same-run table), then ncu of the four DS stages at
# B=8 L=32K Hkv=32 (the shape of the 8x target) to pin down why the selection is slow.
set -u
. scripts/gpu_env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader
B=$root/.carry-final/build-gpu/bench/bench_ds
date -u
timeout 240 $B > "$out/bench_ds.txt" 2>&1; echo "bench_ds rc $?"
cat "$out/bench_ds.txt"
export FPK_DS_ONLY=8,32768,32
S="--metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis"
i=0
for k in 'regex:ds_score_kernel' 'regex:ds_(filter|select)_kernel' 'regex:ds_attn_kernel'; do
	i=$((i+1))
	timeout 120 ncu --clock-control none -k "$k" -c 4 $S $B > "$out/ncu_$i.txt" 2>&1; echo "ncu $k rc $?"
	grep -E "ds_.*_kernel|Duration|Memory Throughput|DRAM Throughput|Compute \(SM\)|Registers Per|Block Size|Grid Size|Achieved Occupancy|Theoretical Occupancy|Stall|Eligible|Issued Warp|No Eligible|Waves Per SM|Dynamic Shared|Static Shared" "$out/ncu_$i.txt" | head -80
done
date -u
