#!/usr/bin/env bash
# bench_calibrate.sh: issue 6's calibration benchmark on the GPU: a 32-layer Llama-2-7B-shaped fp16 checkpoint
# written by tests/tools/gen_checkpoint, then bench_calibrate (256 blocks x 512 tokens). Usage: bench_calibrate.sh BIN_DIR TOOLS_DIR [WORK_DIR]
set -euo pipefail
bin=$1; tools=$2; work=${3:-/tmp/fpk_bench_cal}
mkdir -p "$work"
if [ ! -f "$work/llama32/model.safetensors" ]; then
  t0=$(date +%s.%N)
  "$tools/gen_checkpoint" --out "$work/llama32" --preset llama7b --layers 32 --dtype f16
  echo "checkpoint written in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s: $(du -sh "$work/llama32" | cut -f1)"
fi
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(page cache not dropped: weights may come from memory)"
"$bin/bench_calibrate" "$work/llama32" --blocks 256 --block-len 512
