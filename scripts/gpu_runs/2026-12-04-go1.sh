#!/usr/bin/env bash
# device run 1 (2026-12-04): ctest -L gpu + memcheck (scripts/gpu_run.sh), memcheck of verify --channels on the GPU,
# the GPU verify --channels tables for docs, the demo.
set -u
. scripts/gpu_env.sh
date -u
bash scripts/gpu_run.sh > "$out/gpu_run.log" 2>&1; echo "gpu_run rc $?" | tee -a "$out/gpu_run.log"
tail -45 "$out/gpu_run.log"
B=/work/main/build-gpu/flashllm-pack T=/work/shared/testdata
ts=$T/tinystories-sample/tinystories_sample.txt wk=$T/wikitext-2-raw/wiki.test.raw
$B calibrate --channels $T/stories260K --data $ts -o /tmp/ch.json --blocks 3 -q
cp /tmp/ch.json "$out/"
echo "== memcheck verify --channels (qk 16-bit; k 4-bit)"
compute-sanitizer --tool memcheck --error-exitcode 9 $B verify --channels /tmp/ch.json $T/stories260K --data $ts \
	--max-tokens 1100 --heavy-channels 4 --heavy-tokens 1/4 --device gpu -q > "$out/mc_ch1.log" 2>&1; echo "rc $?"; tail -2 "$out/mc_ch1.log"
compute-sanitizer --tool memcheck --error-exitcode 9 $B verify --channels /tmp/ch.json $T/stories260K --data $ts \
	--max-tokens 1100 --heavy-channels 4 --heavy-tokens 1/4 --label-mode k --label-bits 4 --device gpu -q > "$out/mc_ch2.log" 2>&1; echo "rc $?"; tail -2 "$out/mc_ch2.log"
compute-sanitizer --tool racecheck --error-exitcode 9 $B verify --channels /tmp/ch.json $T/stories260K --data $ts \
	--max-tokens 600 --heavy-channels 4 --heavy-tokens 1/4 --device gpu -q > "$out/rc_ch.log" 2>&1; echo "racecheck rc $?"; tail -2 "$out/rc_ch.log"
echo "== docs tables (GPU and CPU, same settings as docs/double-sparsity.md)"
for dev in gpu cpu; do
	/usr/bin/time -f "%e s wall" $B verify --channels /tmp/ch.json $T/stories260K --data $ts --heavy-channels 2,4 --heavy-tokens 1/4,1/8 \
		--device $dev -q --max-ppl-increase 100 --json "$out/ts_$dev.json" > "$out/ts_$dev.txt" 2>&1
	/usr/bin/time -f "%e s wall" $B verify --channels /tmp/ch.json $T/stories260K --data $wk --max-tokens 4000 --heavy-channels 2,4 \
		--heavy-tokens 1/4,1/8 --device $dev -q --max-ppl-increase 100 --json "$out/wk_$dev.json" > "$out/wk_$dev.txt" 2>&1
done
cat "$out/ts_gpu.txt" "$out/wk_gpu.txt"
tail -1 "$out/ts_cpu.txt" "$out/wk_cpu.txt"
echo "== the whole WikiText-2 test set on the GPU (one setting)"
/usr/bin/time -f "%e s wall" $B verify --channels /tmp/ch.json $T/stories260K --data $wk --heavy-channels 4 --heavy-tokens 1/8 \
	--device gpu -q --max-ppl-increase 100 > "$out/wkfull_gpu.txt" 2>&1
cat "$out/wkfull_gpu.txt"
echo "== demo"
bash scripts/demo.sh build-gpu > "$out/demo.log" 2>&1; echo "demo rc $?"
sed -n '/6\/7/,$p' "$out/demo.log"
date -u
