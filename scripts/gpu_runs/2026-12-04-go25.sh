#!/usr/bin/env bash
# device run 25 (2026-12-04, third session): ncu source-level profile (SASS with executed-instruction counts and
# stall samples) of SpMM v7, spmm_kernel<f16, 8> on 22016 x 4096 at 80%, N = 8; main built with -lineinfo
# (.carry-final/li).
set -u
. scripts/gpu_env.sh
export LD_LIBRARY_PATH=$cjson:$root/.carry-final/li
ncu --set full --import-source yes -k regex:spmm_kernel --launch-skip 12 --launch-count 1 -o /tmp/rep \
	build-gpu/bench/bench_spmm --only 22016,4096,80,8 --out /tmp > /tmp/ncu.log 2>&1; echo "ncu rc $?"; tail -3 /tmp/ncu.log
ncu --import /tmp/rep.ncu-rep --page source --csv --print-source sass > "$out/src.csv" 2>&1; echo "src rc $?"
ncu --import /tmp/rep.ncu-rep --page details > "$out/details.txt" 2>&1; echo "details rc $?"
grep -E "Duration|Stall|Issue Slots|Executed Instructions  " "$out/details.txt" | head -20
