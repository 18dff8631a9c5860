#!/usr/bin/env bash
# (a record of the call: FPK_DS_CS_TPB and FPK_DS_CS_DBG were experiment knobs of 8855ba5, removed in 9912882)
# device run 31 (2026-12-04, fourth session): the fused kernel reworked after run 30 (each cluster-wide exchange
# costs ~10 us per block under full memory load): two exchanges instead of eight (histograms summed into rank 0,
# which sends b*; bin-b* candidates gathered into rank 0 with the selection bitmap; rank 0 resolves T and writes
# the ordered list alone; the three-pass path stays for a bin b* over 2048 keys). test_ds_attention on both
# paths, one shape split vs fused variants interleaved twice, the whole bench_ds on both paths, compute-sanitizer.
set -u
. scripts/gpu_env.sh
date -u
timeout 240 build-gpu/tests/gpu/test_ds_attention > /tmp/tds.log 2>&1; echo "test_ds_attention rc $?"
grep -E "FAIL|fused score|^ok" /tmp/tds.log | sort | uniq -c | sort -rn | head -8; grep -B3 FAIL /tmp/tds.log | head -30
B=build-gpu/bench/bench_ds
one() { # label, then env assignments
	local l=$1; shift
	env "$@" FPK_DS_ONLY=8,32768,32 $B > /tmp/one.txt 2>&1
	echo "$l: $(grep -E '^\| 8 \| 32K \| 32 \| [0-9]' /tmp/one.txt | cut -d'|' -f5,7,8,10,11) stages $(grep -E '^\| 8 \| 32K \| 32 \| r=d' /tmp/one.txt | cut -d'|' -f5-8 | tr '\n' ' ')"
}
for round in 1 2; do
	one split FPK_DS_SELECT=split
	one fused FPK_DS_SELECT=auto
	one tpb8192 FPK_DS_CS_TPB=8192
	one tpb2048 FPK_DS_CS_TPB=2048
	one score-only FPK_DS_CS_DBG=1
	one three-pass FPK_DS_CS_DBG=4
done
date -u
FPK_DS_SELECT=split timeout 150 $B > "$out/bench_split.txt" 2>&1; echo "split rc $?"
timeout 150 $B > "$out/bench_fused.txt" 2>&1; echo "fused rc $?"
for f in split fused; do echo "== $f"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \| [0-9]" "$out/bench_$f.txt"; done
for tool in memcheck racecheck synccheck; do
	timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/gpu/test_ds_attention quick > /tmp/$tool.log 2>&1; echo "$tool rc $?"; tail -1 /tmp/$tool.log
done
date -u
