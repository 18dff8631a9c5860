#!/usr/bin/env bash
# device run 33 (2026-12-04, fourth session), after the final read of the change: the radix passes, the bin scans
# and the ordered output of the split and fused paths now share find_bin / radix_hist / radix_pass / ordered_take.
# test_ds_attention (split / fused / default), compute-sanitizer on the quick set, bench_ds on the default and on
# the split path (must match run 32), the GPU suite.
set -u
. scripts/gpu_env.sh
date -u
timeout 240 build-gpu/tests/gpu/test_ds_attention > /tmp/tds.log 2>&1; echo "test_ds_attention rc $?"
grep -cE "^ok" /tmp/tds.log; grep -B3 FAIL /tmp/tds.log | head -30
for tool in memcheck racecheck synccheck; do
	timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > /tmp/$tool.log 2>&1; echo "$tool rc $?"; tail -1 /tmp/$tool.log
done
for m in split auto; do
	FPK_DS_SELECT=$m timeout 150 build-gpu/bench/bench_ds > "$out/bench_$m.txt" 2>&1; echo "$m rc $?"
	grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \| [0-9]" "$out/bench_$m.txt"
done
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > /tmp/ctest_gpu.log 2>&1; echo "ctest -L gpu rc $?")
grep -E "tests passed" /tmp/ctest_gpu.log
date -u
