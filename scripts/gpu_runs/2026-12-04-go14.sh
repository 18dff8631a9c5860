#!/usr/bin/env bash
# device run 14 (2026-12-04, second session): the resolve kernel keeps the gathered candidate list in shared memory
# when it has at most 6144 entries (the radix and output passes no longer read it back from global memory).
# The whole GPU test suite (ctest -L gpu) on it, memcheck, racecheck and synccheck on test_ds_attention's quick
# set, then bench_ds of main before (.carry-final/base, 4e2d33e) and this one interleaved twice.
set -u
. scripts/gpu_env.sh
date -u
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > "$out/ctest_gpu.log" 2>&1; echo "ctest -L gpu rc $?")
grep -E "Test +#|tests passed" "$out/ctest_gpu.log"
for tool in memcheck racecheck synccheck; do
	compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > "$out/$tool.log" 2>&1; echo "$tool rc $?"; tail -1 "$out/$tool.log"
done
B=/work/main/build-gpu/bench/bench_ds
for i in 1 2; do
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/base $B > "$out/bench_base_$i.txt" 2>&1; echo "base rc $?"
	$B > "$out/bench_new_$i.txt" 2>&1; echo "new rc $?"
done
for f in base_1 new_1 base_2 new_2; do echo "== $f"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \| [0-9]" "$out/bench_$f.txt" | cut -d'|' -f2-4,7,8,10,11; grep -E "^\| (1|8) \| (32|128)K \| (8|32) \| r=d" "$out/bench_$f.txt"; done
date -u
