#!/usr/bin/env bash
# gpu_run.sh: run on the GPU machine over a build made elsewhere (see docs/BENCHMARKS.md "how GPU runs are made"):
# ctest -L gpu, compute-sanitizer memcheck on the kernel tests, then the benchmarks named in $FPK_BENCH.
# The carried folder .carry-final holds build-gpu (programs, libflashllmpack.so, ctest files) and shared/testdata;
# ctest files name /work/main/build-gpu/..., so that path is made to resolve here.
# Usage (device): bash scripts/gpu_run.sh [ctest-regex]
set -uo pipefail
. scripts/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
cd /work/main/build-gpu || exit 1
rc=0
ctest -L gpu ${1:+-R "$1"} --output-on-failure 2>&1 | tee "$out/ctest_gpu.log" | tail -40
grep -q "100% tests passed" "$out/ctest_gpu.log" || rc=1
for t in tests/gpu/test_spmm tests/gpu/test_ds_attention tests/gpu/test_attn_prefill; do
	[ -x "$t" ] || continue
	echo "== compute-sanitizer memcheck $t (quick mode)"
	FPK_QUICK=1 FPK_SPMM_QUICK=1 compute-sanitizer --tool memcheck --error-exitcode 9 "$t" >"$out/memcheck_$(basename $t).log" 2>&1
	c=$?
	tail -3 "$out/memcheck_$(basename $t).log"
	[ $c -eq 0 ] || rc=1
done
exit $rc
