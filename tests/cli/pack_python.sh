#!/usr/bin/env bash
# pack_python.sh: a pack opens with the standard Python `safetensors` package (+ numpy) and every array reads, with
# the metadata the format promises. Skips (exit 0, with a message) when the module is missing, unless
# FPK_REQUIRE_PYTHON=1 (CI installs it), then fails.
set -euo pipefail
B=$FPK_BIN T=$FPK_TOOLS S=$FPK_SHARED/testdata
if ! python3 -c 'import safetensors.numpy, numpy' 2>/dev/null; then
	if [ "${FPK_REQUIRE_PYTHON:-0}" = 1 ]; then
		echo "FAIL: python3 with safetensors and numpy is required (FPK_REQUIRE_PYTHON=1)" >&2
		exit 1
	fi
	echo "skip: python3 module safetensors/numpy not installed (pip install safetensors numpy)"
	exit 0
fi
W=$FPK_TMP/pack_python; rm -rf "$W"; mkdir -p "$W"
"$T/zero_fraction" "$S/stories260K-fp16" "$W/z" 0.8
"$B" encode -q "$W/z" -o "$W/p"
python3 - "$W/p" "$W/z" <<'PY'
import json, sys, zlib
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file
pack, orig = sys.argv[1], sys.argv[2]
arrays = load_file(pack + "/model.safetensors")
dense = load_file(orig + "/model.safetensors")
with safe_open(pack + "/model.safetensors", framework="np") as f:
    meta = f.metadata()
assert meta["flashllm_pack.format"] == "tiled-csl", meta.get("flashllm_pack.format")
assert meta["flashllm_pack.version"] == "1"
enc = {k[len("flashllm_pack.tcsl."):]: json.loads(v) for k, v in meta.items() if k.startswith("flashllm_pack.tcsl.")}
assert len(enc) == 35, len(enc)
for name, d in enc.items():
    v, o = arrays[name + ".tcsl_values"], arrays[name + ".tcsl_offsets"]
    assert v.dtype == np.uint32 and o.dtype == np.int32, (v.dtype, o.dtype)
    assert v.shape == (d["n_entries"],) and o[0] == 0 and o[-1] == o[-2] and 4 * o[-2] == len(v)
    assert "%08x" % zlib.crc32(v.tobytes()) == d["crc32_values"]
    assert "%08x" % zlib.crc32(o.tobytes()) == d["crc32_offsets"]
    # decode in numpy from the spec and compare with the pruned input
    m, k = d["shape"]; mp, kp = d["padded_shape"]; tk = kp // 64
    w = np.zeros((mp, kp), dtype=np.uint16)
    for t in range(len(o) - 2):
        e = v[4 * o[t]:4 * o[t + 1]]
        loc = e >> 16; r = loc // 64; c = (loc % 64) ^ ((r % 8) * 8)
        w[(t // tk) * 128 + r, (t % tk) * 64 + c] = e & 0xffff
    want = dense[name].view(np.uint16)
    assert np.array_equal(w[:m, :k], want), name
for name, a in arrays.items():
    if not name.endswith((".tcsl_values", ".tcsl_offsets")):
        assert np.array_equal(a.view(np.uint8), dense[name].view(np.uint8)), name
print("python safetensors: %d arrays read, %d encoded tensors decoded" % (len(arrays), len(enc)))
PY
