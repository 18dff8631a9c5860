#!/usr/bin/env bash
# (a record of the call: FPK_DS_CS_TPB, FPK_DS_CS_DBG and the FPK_CS_MINB variant libraries were experiment knobs of
# commit 1f6133d and its working tree, removed in 9912882; this script does not reproduce on later commits)
# device run 29 (2026-12-04, fourth session): go28's pending checks (the SpMM chain test's ping-pong phase on main,
# the no-wait mutant must fail), then the fused score + select kernel (one thread-block cluster per unit, the keys
# in shared memory): test_ds_attention on both selection paths, one shape (B = 8, L = 32K, Hkv = 32) split vs fused
# and the register / cluster-size variants interleaved twice, the whole bench_ds on both paths, and
# compute-sanitizer on the quick set (both paths).
set -u
. scripts/gpu_env.sh
date -u
build-gpu/tests/gpu/test_spmm > /tmp/t.log 2>&1; echo "test_spmm main rc $?"; grep -E "cases|FAIL|chain|ping" /tmp/t.log | head -6
LD_LIBRARY_PATH=$cjson:$root/.carry-final/mut FPK_SPMM_QUICK=1 build-gpu/tests/gpu/test_spmm > /tmp/m.log 2>&1
echo "test_spmm mutant rc $? (must be non-zero)"; grep -E "FAIL (chain|ping)" /tmp/m.log | head -4
timeout 240 build-gpu/tests/gpu/test_ds_attention > /tmp/tds.log 2>&1; echo "test_ds_attention rc $?"
grep -E "FAIL|fused score|^ok" /tmp/tds.log | sort | uniq -c | sort -rn | head -12; grep -B3 FAIL /tmp/tds.log | head -30
B=build-gpu/bench/bench_ds
one() { # label, then env assignments
	local l=$1; shift
	env "$@" FPK_DS_ONLY=8,32768,32 $B > /tmp/one.txt 2>&1
	echo "$l: $(grep -E '^\| 8 \| 32K \| 32 \| [0-9]' /tmp/one.txt | cut -d'|' -f5,7,8,10,11) stages $(grep -E '^\| 8 \| 32K \| 32 \| r=d' /tmp/one.txt | cut -d'|' -f5-8 | tr '\n' ' ')"
}
for round in 1 2; do
	one split FPK_DS_SELECT=split
	one fused FPK_DS_SELECT=auto
	one minb5 LD_LIBRARY_PATH=$cjson:$root/.carry-final/cs5
	one minb6 LD_LIBRARY_PATH=$cjson:$root/.carry-final/cs6
	one tpb2048 FPK_DS_CS_TPB=2048
	one tpb8192 FPK_DS_CS_TPB=8192
done
date -u
FPK_DS_SELECT=split timeout 150 $B > "$out/bench_split.txt" 2>&1; echo "split rc $?"
timeout 150 $B > "$out/bench_fused.txt" 2>&1; echo "fused rc $?"
for f in split fused; do echo "== $f"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \| [0-9]" "$out/bench_$f.txt"; done
for tool in memcheck racecheck synccheck; do
	timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > /tmp/$tool.log 2>&1; echo "$tool rc $?"; tail -1 /tmp/$tool.log
done
date -u
