#!/usr/bin/env bash
# device run 20 (2026-12-04, third session): programmatic dependent launch (kernels/fpk_pdl.cuh) in the SpMM and
# in the decode engine's kernels. Correctness: test_spmm, test_decode_gpu, test_ds_attention (quick). Timing, the
# same binary with FPK_PDL=0 (off) and on, interleaved: bench_spmm on the four Llama-2-7B matrices at 80%
# (all N), and bench_decode (both models, sparsity 0 and 0.8, batch 8/16/32, context 512/2048).
set -u
. scripts/gpu_env.sh
date -u
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader
for t in test_spmm test_decode_gpu; do
	build-gpu/tests/gpu/$t > "$out/$t.log" 2>&1; echo "$t rc $?"; tail -2 "$out/$t.log"
done
FPK_QUICK=1 build-gpu/tests/gpu/test_ds_attention > "$out/test_ds.log" 2>&1; echo "test_ds_attention rc $?"; tail -1 "$out/test_ds.log"
S=build-gpu/bench/bench_spmm
for shape in 4096,4096 12288,4096 22016,4096 4096,11008; do
	for p in 0 1; do
		mkdir -p "$out/spmm_${shape}_$p"
		FPK_PDL=$p $S --only $shape,80,0 --out "$out/spmm_${shape}_$p" > /dev/null 2>&1 || echo "bench_spmm $shape pdl $p failed"
		echo "== $shape pdl=$p"; grep -E "^\| " "$out/spmm_${shape}_$p/spmm.md" | tail -n +3 | cut -d'|' -f2-7
	done
done
D=build-gpu/bench/bench_decode
for p in 0 1; do
	FPK_PDL=$p $D --model all --sparsity 0,0.8 --batch 8,16,32 --ctx 512,2048 --csv "$out/decode_$p.csv" --md "$out/decode_$p.md" > "$out/decode_$p.log" 2>&1; echo "decode pdl=$p rc $?"
done
for p in 0 1; do echo "== decode pdl=$p"; cut -d, -f1,4-13 "$out/decode_$p.csv"; done
date -u
