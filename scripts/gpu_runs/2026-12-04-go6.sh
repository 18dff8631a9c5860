#!/usr/bin/env bash
# device run 6 (2026-12-04): after the review fixes (hook window cap, workspace cache, event timing): ctest -L gpu,
# memcheck of the short-context path, the timing runs for docs.
set -u
. scripts/gpu_env.sh
date -u
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > "$out/ctest_gpu.log" 2>&1; echo "ctest rc $?")
grep -E "Test +#|tests passed" "$out/ctest_gpu.log"; grep -E "^short|FAIL" "$out/ctest_gpu.log" | head
B=/work/main/build-gpu/flashllm-pack T=/work/shared/testdata
ts=$T/tinystories-sample/tinystories_sample.txt wk=$T/wikitext-2-raw/wiki.test.raw
$B calibrate --channels $T/stories260K --data $ts -o /tmp/ch.json --blocks 3 -q
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 $B verify --channels /tmp/ch.json $T/stories260K --data $wk \
	--max-tokens 12000 --context 16 --dense-below 4 --heavy-channels 4 --heavy-tokens 4 --device gpu -q --max-ppl-increase 100 > "$out/mc_short.log" 2>&1; echo "memcheck short rc $?"; tail -2 "$out/mc_short.log"
$B verify --channels /tmp/ch.json $T/stories260K --data $ts --heavy-channels 2,4 --heavy-tokens 1/4,1/8 --device gpu -q --max-ppl-increase 100 --json "$out/ts_gpu.json" > "$out/ts_gpu.txt" 2>&1
head -3 "$out/ts_gpu.txt"
timeout 120 $B verify --channels /tmp/ch.json $T/stories260K --data $wk --heavy-channels 4 --heavy-tokens 1/8 --device gpu -q --max-ppl-increase 100 > "$out/wkfull_gpu.txt" 2>&1; echo "rc $?"
cat "$out/wkfull_gpu.txt"
timeout 100 bash scripts/demo.sh build-gpu > "$out/demo.log" 2>&1; echo "demo rc $?"; grep -E "Double Sparsity|verify verdict" "$out/demo.log" | tail -2
date -u
