#!/usr/bin/env bash
# device run 34 (2026-12-04, fourth session): a GPU that refuses the fused kernel's attributes now falls back to
# the split path instead of failing the workspace; on the H200 nothing changes: test_ds_attention (all modes) and
# one bench_ds shape on the default.
set -u
. scripts/gpu_env.sh
timeout 240 build-gpu/tests/gpu/test_ds_attention > /tmp/tds.log 2>&1; echo "test_ds_attention rc $?"
grep -cE "^ok" /tmp/tds.log; grep -c "clusters of" /tmp/tds.log; grep -B3 FAIL /tmp/tds.log | head
FPK_DS_ONLY=8,8192,32 build-gpu/bench/bench_ds | grep -E "^\| 8 \| 8K \| 32 \| [0-9]"
