#!/usr/bin/env bash
# device run 19 (2026-12-04, second session), main at 577b170 (after the review): the selection self-check
# (fpk_ds_workspace_faults), the bounded score-block count, two new GPU test shapes. The whole GPU suite
# (ctest -L gpu) and memcheck on test_ds_attention's quick set.
set -u
. scripts/gpu_env.sh
date -u
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > "$out/ctest_gpu.log" 2>&1; echo "ctest -L gpu rc $?")
grep -E "Test +#|tests passed" "$out/ctest_gpu.log"
grep -E "case 1[45]|L20000|L24576" "$out/ctest_gpu.log" | head -6
compute-sanitizer --tool memcheck --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > "$out/memcheck.log" 2>&1; echo "memcheck rc $?"; tail -1 "$out/memcheck.log"
date -u
