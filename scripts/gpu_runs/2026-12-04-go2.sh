#!/usr/bin/env bash
# device run 2 (2026-12-04): the fixed verify_channels_gpu test (all of it), racecheck of verify --channels on the
# GPU, the docs tables on the GPU, the whole WikiText-2 test set, the demo.
set -u
. scripts/gpu_env.sh
date -u
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > "$out/ctest_gpu.log" 2>&1; echo "ctest rc $?")
grep -E "Test +#|tests passed|FAIL" "$out/ctest_gpu.log"
B=/work/main/build-gpu/flashllm-pack T=/work/shared/testdata
ts=$T/tinystories-sample/tinystories_sample.txt wk=$T/wikitext-2-raw/wiki.test.raw
$B calibrate --channels $T/stories260K --data $ts -o /tmp/ch.json --blocks 3 -q
echo "== racecheck verify --channels (120 tokens)"
timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 $B verify --channels /tmp/ch.json $T/stories260K --data $ts \
	--max-tokens 120 --heavy-channels 4 --heavy-tokens 1/4 --device gpu -q --max-ppl-increase 100 > "$out/rc_ch.log" 2>&1; echo "racecheck rc $?"; tail -3 "$out/rc_ch.log"
echo "== docs tables (GPU)"
/usr/bin/time -f "%e s wall" $B verify --channels /tmp/ch.json $T/stories260K --data $ts --heavy-channels 2,4 --heavy-tokens 1/4,1/8 \
	--device gpu -q --max-ppl-increase 100 --json "$out/ts_gpu.json" > "$out/ts_gpu.txt" 2>&1
/usr/bin/time -f "%e s wall" $B verify --channels /tmp/ch.json $T/stories260K --data $wk --max-tokens 4000 --heavy-channels 2,4 \
	--heavy-tokens 1/4,1/8 --device gpu -q --max-ppl-increase 100 --json "$out/wk_gpu.json" > "$out/wk_gpu.txt" 2>&1
cat "$out/ts_gpu.txt" "$out/wk_gpu.txt"
echo "== demo"
timeout 120 bash scripts/demo.sh build-gpu > "$out/demo.log" 2>&1; echo "demo rc $?"
sed -n '/6\/7/,$p' "$out/demo.log" | tail -12
echo "== the whole WikiText-2 test set on the GPU (one setting)"
timeout 170 /usr/bin/time -f "%e s wall" $B verify --channels /tmp/ch.json $T/stories260K --data $wk --heavy-channels 4 --heavy-tokens 1/8 \
	--device gpu -q --max-ppl-increase 100 > "$out/wkfull_gpu.txt" 2>&1; echo "rc $?"
cat "$out/wkfull_gpu.txt"
date -u
