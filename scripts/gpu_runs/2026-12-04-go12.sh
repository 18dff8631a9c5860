#!/usr/bin/env bash
# device run 12 (2026-12-04, second session): the score stage's grid and loop, three variants of main at 89cf51c
# (carried as .carry-final/base): var = chunks sized for 16 score blocks per SM instead of 8 (FPK_DS_SCORE_WAVE),
# var2 = 32 per SM, var3 = 16-bit labels scored 2 tokens per thread and step (FPK_DS_HTOK=2). Each variant's
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
