#!/usr/bin/env bash
# device run 18 (2026-12-04, second session), the final kernels (run 17's filter register cap, 4 blocks per SM,
# made the default): the whole GPU suite (ctest -L gpu), memcheck and racecheck on test_ds_attention's quick set,
# the demo, and bench_ds of main before (.carry-final/base, 85ecf91) and this build, one round each.
set -u
. scripts/gpu_env.sh
date -u
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > "$out/ctest_gpu.log" 2>&1; echo "ctest -L gpu rc $?")
grep -E "Test +#|tests passed" "$out/ctest_gpu.log"
for tool in memcheck racecheck; do
	compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > "$out/$tool.log" 2>&1; echo "$tool rc $?"; tail -1 "$out/$tool.log"
done
timeout 150 bash scripts/demo.sh build-gpu > "$out/demo.log" 2>&1; echo "demo rc $?"; tail -4 "$out/demo.log"
B=/work/main/build-gpu/bench/bench_ds
LD_LIBRARY_PATH=$cjson:$root/.carry-final/base $B > "$out/bench_base.txt" 2>&1; echo "base rc $?"
$B > "$out/bench_new.txt" 2>&1; echo "new rc $?"
for f in base new; do echo "== $f"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \| [0-9]" "$out/bench_$f.txt"; grep -E "^\| 8 \| 32K \| 32 \| r=d" "$out/bench_$f.txt"; done
date -u
