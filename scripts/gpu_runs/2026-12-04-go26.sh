#!/usr/bin/env bash
# device run 26 (2026-12-04, third session): SpMM v8 (this build: the tile offsets of the next unit are loaded
# without a predicated move that waited for the load; ncu source profile of v7 in run 25) against v7 (ddd1fa8,
# .carry-final/v7): test_spmm on v8, bench_spmm on the four Llama-2-7B matrices at 80% (all N) and 4096 x 11008
# at 70/90%, libraries interleaved.
set -u
. scripts/gpu_env.sh
build-gpu/tests/gpu/test_spmm > /tmp/t.log 2>&1; echo "test_spmm v8 rc $?"; grep -E "cases|FAIL|chain" /tmp/t.log
libs="v7:$root/.carry-final/v7 v8:/work/main/build-gpu"
for cfg in 4096,4096,80 12288,4096,80 22016,4096,80 4096,11008,80 4096,11008,70 4096,11008,90; do
	for l in $libs; do
		n=${l%%:*}; d=${l#*:}
		LD_LIBRARY_PATH=$cjson:$d build-gpu/bench/bench_spmm --only $cfg,0 --out /tmp > /dev/null 2>&1 || echo "bench $n failed"
		echo "== $cfg $n"; grep -E "^\| [0-9]+ x" /tmp/spmm.md | cut -d'|' -f4-7 | tr '\n' ' '; echo
	done
done
