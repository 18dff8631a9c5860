#!/usr/bin/env bash
# device run 24 (2026-12-04, third session), main at ddd1fa8 (PDL + SpMM v7): the whole GPU suite, the demo, the
# whole decode sweep (bench_decode defaults), bench_ds (FPK_PDL on), then the whole SpMM sweep (bench_spmm).
set -u
. scripts/gpu_env.sh
date -u
(cd /work/main/build-gpu && ctest -L gpu --output-on-failure > /tmp/ctest_gpu.log 2>&1; echo "ctest -L gpu rc $?")
grep -E "Test +#|tests passed" /tmp/ctest_gpu.log
timeout 150 bash scripts/demo.sh build-gpu > /tmp/demo.log 2>&1; echo "demo rc $?"; tail -6 /tmp/demo.log
build-gpu/bench/bench_decode --csv "$out/decode_h200.csv" --md "$out/decode_h200.md" > /tmp/decode.log 2>&1; echo "decode rc $?"
build-gpu/bench/bench_ds > "$out/bench_ds.txt" 2>&1; echo "bench_ds rc $?"; grep -E "^\| 8 \| 32K \| 32 \| [0-9]" "$out/bench_ds.txt"
date -u
mkdir -p /tmp/sp && timeout 330 build-gpu/bench/bench_spmm --out /tmp/sp > /tmp/spmm.log 2>&1; echo "bench_spmm rc $?"
cp /tmp/sp/spmm.csv "$out/spmm_h200.csv"; cp /tmp/sp/spmm.md "$out/spmm_h200.md"; tail -12 /tmp/sp/spmm.md
date -u
