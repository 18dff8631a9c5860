#!/usr/bin/env bash
# install-deps.sh: install what flashllm-pack needs to build (cmake, zlib, cJSON, pkg-config) when missing.
# As root it runs apt-get; otherwise it prints the exact command. Run: bash scripts/install-deps.sh
set -euo pipefail
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
[ -f /usr/include/cjson/cJSON.h ] || missing+=(libcjson-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}"; }
else
	echo "install-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
