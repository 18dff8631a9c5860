#!/usr/bin/env bash
# device run 27 (2026-12-04, third session), main with SpMM v8 (PDL + 4-vector chunks + offsets fix): the whole GPU
# suite, memcheck and racecheck on test_spmm (quick set + chain), the demo, the whole decode sweep and the whole
# SpMM sweep (both with their defaults).
set -u
. scripts/gpu_env.sh
date -u
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > /tmp/ctest_gpu.log 2>&1; echo "ctest -L gpu rc $?")
grep -E "Test +#|tests passed" /tmp/ctest_gpu.log
for tool in memcheck racecheck; do
	FPK_SPMM_QUICK=1 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_spmm > /tmp/s.log 2>&1
	echo "$tool test_spmm rc $?"; tail -1 /tmp/s.log
done
timeout 150 bash scripts/demo.sh build-gpu > /tmp/demo.log 2>&1; echo "demo rc $?"; tail -6 /tmp/demo.log
build-gpu/bench/bench_decode --csv "$out/decode_h200.csv" --md "$out/decode_h200.md" > /tmp/decode.log 2>&1; echo "decode rc $?"
date -u
mkdir -p /tmp/sp && timeout 200 build-gpu/bench/bench_spmm --out /tmp/sp > /tmp/spmm.log 2>&1; echo "bench_spmm rc $?"
cp /tmp/sp/spmm.csv "$out/spmm_h200.csv"; cp /tmp/sp/spmm.md "$out/spmm_h200.md"; tail -9 /tmp/sp/spmm.md
date -u
