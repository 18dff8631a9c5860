#!/usr/bin/env bash
# device run 17 (2026-12-04, second session): register caps on the filter kernel (72 registers, 3 blocks of 256
# threads per SM): var = __launch_bounds__(256, 4) (at most 64 registers), var2 = (256, 5) (48 registers, 32 B
# of spills). Each variant's
# test_ds_attention first, then bench_ds of main (.carry-final/base, 85ecf91 = 6014a65) and both variants interleaved twice.
set -u
. scripts/gpu_env.sh
date -u
for v in base var var2; do
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/$v build-gpu/tests/gpu/test_ds_attention > "$out/test_ds_$v.log" 2>&1; echo "test_ds_attention ($v) rc $?"
done
B=/work/main/build-gpu/bench/bench_ds
for i in 1 2; do
	for v in base var var2; do
		LD_LIBRARY_PATH=$cjson:$root/.carry-final/$v $B > "$out/bench_${v}_$i.txt" 2>&1; echo "$v rc $?"
	done
done
for i in 1 2; do for v in base var var2; do f=${v}_$i; echo "== $f"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \| [0-9]" "$out/bench_$f.txt" | cut -d'|' -f2-4,7,8,10,11; grep -E "^\| 8 \| (32|128)K \| 32 \| r=d" "$out/bench_$f.txt"; done; done
date -u
