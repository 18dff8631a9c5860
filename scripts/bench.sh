#!/usr/bin/env bash
# bench.sh: runs every benchmark program in BUILD/bench (called by `make bench`); results go to docs/BENCHMARKS.md
# by hand, with the command and the GPU. Usage: scripts/bench.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
for b in "$build"/bench/*; do
	[ -x "$b" ] || continue
	echo "== $b"
	"$b"
done
