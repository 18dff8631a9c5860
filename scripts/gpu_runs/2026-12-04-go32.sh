#!/usr/bin/env bash
# device run 32 (2026-12-04, fourth session): the fused kernel as a shape-chosen path (only when all clusters are
# resident at once; run 31: it wins at short contexts and loses where blocks wait for slots). test_ds_attention on
# split / fused / default, the whole bench_ds under each (same run), compute-sanitizer on the quick set, the GPU
# suite and the demo on the default.
set -u
. scripts/gpu_env.sh
date -u
timeout 240 build-gpu/tests/gpu/test_ds_attention > /tmp/tds.log 2>&1; echo "test_ds_attention rc $?"
grep -E "FAIL|fused score|^ok" /tmp/tds.log | sort | uniq -c | sort -rn | head -8; grep -B3 FAIL /tmp/tds.log | head -30
B=build-gpu/bench/bench_ds
for m in split fused auto; do
	FPK_DS_SELECT=$m timeout 150 $B > "$out/bench_$m.txt" 2>&1; echo "$m rc $?"
done
for m in split fused auto; do echo "== $m"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \| [0-9]" "$out/bench_$m.txt"; done
for tool in memcheck racecheck synccheck; do
	timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > /tmp/$tool.log 2>&1; echo "$tool rc $?"; tail -1 /tmp/$tool.log
done
date -u
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > /tmp/ctest_gpu.log 2>&1; echo "ctest -L gpu rc $?")
grep -E "Test +#|tests passed" /tmp/ctest_gpu.log
timeout 150 bash scripts/demo.sh build-gpu > /tmp/demo.log 2>&1; echo "demo rc $?"; tail -6 /tmp/demo.log
date -u
