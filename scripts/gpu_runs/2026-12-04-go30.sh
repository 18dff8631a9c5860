#!/usr/bin/env bash
# (a record of the call: FPK_DS_CS_TPB, FPK_DS_CS_DBG and the FPK_CS_MINB variant libraries were experiment knobs of
# commit 1f6133d and its working tree, removed in 9912882; this script does not reproduce on later commits)
# device run 30 (2026-12-04, fourth session): why the fused score + select kernel is slow (run 29: 193 us for
# score + select at B = 8, L = 32K, Hkv = 32 against 88 us split). FPK_DS_CS_DBG=1|2|3 stops the kernel after the
# scoring, after the first radix pass, after all three (timing only: the selection is then wrong), at 4096 and
# 8192 keys per block; then ncu (launch statistics, occupancy, warp states) of the fused kernel.
set -u
. scripts/gpu_env.sh
date -u
B=build-gpu/bench/bench_ds
one() { # label, then env assignments
	local l=$1; shift
	env "$@" FPK_DS_ONLY=8,32768,32 $B > /tmp/one.txt 2>&1
	echo "$l: $(grep -E '^\| 8 \| 32K \| 32 \| [0-9]' /tmp/one.txt | cut -d'|' -f5,7,8,10,11) stages $(grep -E '^\| 8 \| 32K \| 32 \| r=d' /tmp/one.txt | cut -d'|' -f5-8 | tr '\n' ' ')"
}
one split FPK_DS_SELECT=split
for t in 4096 8192; do
	for d in 0 1 2 3; do one "tpb $t dbg $d" FPK_DS_CS_TPB=$t FPK_DS_CS_DBG=$d; done
done
FPK_DS_ONLY=8,32768,32 timeout 150 ncu --clock-control none -k regex:ds_scsel -c 2 --section SpeedOfLight --section LaunchStats \
	--section Occupancy --section WarpStateStats --section SchedulerStats $B > "$out/ncu.txt" 2>&1; echo "ncu rc $?"
grep -E "ds_scsel|Duration|DRAM Throughput|Registers Per|Grid Size|Cluster|Achieved Occupancy|Theoretical Occupancy|Stall|Eligible|Issued Warp|Waves Per SM|Block Limit|Warp Cycles" "$out/ncu.txt" | head -60
date -u
