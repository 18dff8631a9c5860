#!/usr/bin/env bash
# device run 21 (2026-12-04, third session), programmatic dependent launch in the SpMM and the decode engine:
# 1. the new chain test must fail on a mutant library whose SpMM never calls fpk_pdl_wait (.carry-final/mut);
# 2. the whole GPU suite (ctest -L gpu) and compute-sanitizer memcheck on test_spmm and test_ds_attention (quick);
# 3. the whole decode sweep on the H200 (bench_decode defaults), bench_ds with FPK_PDL=0 and on (the dense
#    attention baseline is now launched with PDL), ncu sections of one SpMM (22016 x 4096, 80%, N = 8), the demo.
set -u
. scripts/gpu_env.sh
date -u
for r in 1 2 3; do
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/mut FPK_SPMM_QUICK=1 build-gpu/tests/gpu/test_spmm > "$out/mut_$r.log" 2>&1
	echo "mutant run $r rc $? (must be non-zero)"; grep -m2 -E "FAIL chain|failed" "$out/mut_$r.log"
done
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > "$out/ctest_gpu.log" 2>&1; echo "ctest -L gpu rc $?")
grep -E "Test +#|tests passed" "$out/ctest_gpu.log"
for t in test_spmm test_ds_attention; do
	FPK_QUICK=1 FPK_SPMM_QUICK=1 compute-sanitizer --tool memcheck --error-exitcode 9 build-gpu/tests/gpu/$t > "$out/memcheck_$t.log" 2>&1
	echo "memcheck $t rc $?"; tail -1 "$out/memcheck_$t.log"
done
build-gpu/bench/bench_decode --csv "$out/decode_h200.csv" --md "$out/decode_h200.md" > "$out/decode_h200.log" 2>&1; echo "decode rc $?"
tail -5 "$out/decode_h200.log"
for p in 0 1; do
	FPK_PDL=$p build-gpu/bench/bench_ds > "$out/bench_ds_$p.txt" 2>&1; echo "bench_ds pdl=$p rc $?"
	grep -E "^\| 8 \| 32K \| 32 \| [0-9]" "$out/bench_ds_$p.txt"
done
ncu --section SpeedOfLight --section MemoryWorkloadAnalysis --section SchedulerStats --section WarpStateStats \
	--section Occupancy -k regex:spmm_kernel --launch-skip 12 --launch-count 1 \
	build-gpu/bench/bench_spmm --only 22016,4096,80,8 --out /tmp > "$out/ncu_spmm.txt" 2>&1; echo "ncu rc $?"
grep -E "Duration|DRAM Throughput|Memory Throughput|Issue Slots Busy|Active Warps Per|Eligible Warps|No Eligible|Shared|L1/TEX Hit|Achieved Occupancy|Warp Cycles Per Issued" "$out/ncu_spmm.txt" | head -30
timeout 150 bash scripts/demo.sh build-gpu > "$out/demo.log" 2>&1; echo "demo rc $?"; tail -6 "$out/demo.log"
date -u
