#!/usr/bin/env bash
# device run 28 (2026-12-04, third session), after the review: the chain test gained a ping-pong phase (each
# kernel writes the buffer the previous one reads), FPK_PDL=0 now also turns off the DS launches' PDL, cp_wait got
# a memory clobber (sm_90 code byte-identical). test_spmm on main and on a mutant whose SpMM never waits
# (.carry-final/mut, must fail), test_ds_attention (quick) and test_decode_gpu on main.
set -u
. scripts/gpu_env.sh
build-gpu/tests/gpu/test_spmm > /tmp/t.log 2>&1; echo "test_spmm main rc $?"; grep -E "cases|FAIL|chain" /tmp/t.log
LD_LIBRARY_PATH=$cjson:$root/.carry-final/mut FPK_SPMM_QUICK=1 build-gpu/tests/gpu/test_spmm > /tmp/m.log 2>&1
echo "test_spmm mutant rc $? (must be non-zero)"; grep -E "FAIL (chain|ping)" /tmp/m.log | head -4
FPK_QUICK=1 build-gpu/tests/gpu/test_ds_attention > /tmp/d.log 2>&1; echo "test_ds_attention rc $?"; tail -1 /tmp/d.log
FPK_PDL=0 FPK_QUICK=1 build-gpu/tests/gpu/test_ds_attention > /tmp/d0.log 2>&1; echo "test_ds_attention FPK_PDL=0 rc $?"; tail -1 /tmp/d0.log
build-gpu/tests/gpu/test_decode_gpu > /tmp/e.log 2>&1; echo "test_decode_gpu rc $?"; tail -1 /tmp/e.log
