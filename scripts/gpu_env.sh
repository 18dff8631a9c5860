# gpu_env.sh: source it on the GPU machine, from the repository root, with .carry-final and .cjson carried
# (docs/BENCHMARKS.md "How GPU runs are made"). The carried build names /work/main/build-gpu and /work/shared
# (ctest files, test paths), so those paths are made to resolve here; sets root, out (the $OUT folder), cjson and
# LD_LIBRARY_PATH (cJSON, libflashllmpack.so).
root=$PWD
out=${OUT:-/tmp/out}
mkdir -p "$out"
[ -e build-gpu ] || ln -s "$root/.carry-final/build-gpu" build-gpu
if [ "$root" != /work/main ]; then
	mkdir -p /work
	[ -e /work/main ] || ln -s "$root" /work/main
fi
[ -e /work/shared ] || ln -s "$root/.carry-final/shared" /work/shared
cjson=$root/.cjson/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$cjson:/work/main/build-gpu:${LD_LIBRARY_PATH:-}
