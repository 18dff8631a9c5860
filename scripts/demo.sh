#!/usr/bin/env bash
# demo.sh: the main job on an embedded default input (called by `make demo`). Usage: scripts/demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
bin=$build/flashllm-pack
work=$build/demo
rm -rf "$work"
mkdir -p "$work"
"$build/tests/tools/gen_checkpoint" --out "$work/dense" --preset demo
"$bin" inspect "$work/dense"
