#!/usr/bin/env bash
# device run 16 (2026-12-04, second session): the demo (make demo's pipeline on the GPU build) and bench_ds once
# more on the final kernels (main at 187ae45; kernels as of 85ecf91).
set -u
. scripts/gpu_env.sh
date -u
timeout 150 bash scripts/demo.sh build-gpu > "$out/demo.log" 2>&1; echo "demo rc $?"; tail -14 "$out/demo.log"
build-gpu/bench/bench_ds > "$out/bench_ds.txt" 2>&1; echo "bench_ds rc $?"
grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \| [0-9]" "$out/bench_ds.txt"
date -u
