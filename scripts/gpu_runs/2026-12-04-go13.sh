#!/usr/bin/env bash
# device run 13 (2026-12-04, second session): three more variants of main (16-bit labels now 2 tokens per step, from run 12)
# (carried as .carry-final/base): var = 4 tokens per step for 16-bit labels (FPK_DS_HTOK=4), var2 = 4 for
# quantized labels (FPK_DS_QTOK=4), var3 = a 256-thread resolve kernel (FPK_DS_SEL_THREADS=256). Each variant's
# test_ds_attention first (15 shapes, top-k bit-identical with the C twins), then bench_ds of base and the three
# variants interleaved twice in the same run.
set -u
. scripts/gpu_env.sh
date -u
for v in base var var2 var3; do
	LD_LIBRARY_PATH=$cjson:$root/.carry-final/$v build-gpu/tests/gpu/test_ds_attention > "$out/test_ds_$v.log" 2>&1; echo "test_ds_attention ($v) rc $?"
done
B=/work/main/build-gpu/bench/bench_ds
for i in 1 2; do
	for v in base var var2 var3; do
		LD_LIBRARY_PATH=$cjson:$root/.carry-final/$v $B > "$out/bench_${v}_$i.txt" 2>&1; echo "$v rc $?"
	done
done
for i in 1 2; do for v in base var var2 var3; do f=${v}_$i; echo "== $f"; grep -E "^\| (1|8) \| (8|32|128)K \| (8|32) \|" "$out/bench_$f.txt" | grep -v 'r=d' | cut -d'|' -f2-4,7,8,10,11; grep -E "^\| (1|8) \| (32|128)K \| (8|32) \| r=d" "$out/bench_$f.txt"; done; done
date -u
