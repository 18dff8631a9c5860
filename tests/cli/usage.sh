#!/usr/bin/env bash
# usage.sh: the command table, --help from the option tables, --version, and exit code 2 for usage errors.
set -uo pipefail
fail=0
expect() { # expect CODE CMD...
	local want=$1
	shift
	"$@" >"$FPK_TMP/usage.out" 2>&1
	local rc=$?
	if [ $rc -ne "$want" ]; then
		echo "FAIL: '$*' exited $rc, expected $want"
		cat "$FPK_TMP/usage.out"
		fail=1
	fi
}
expect 0 "$FPK_BIN" --version
grep -q '^flashllm-pack [0-9]' "$FPK_TMP/usage.out" || { echo "FAIL: --version output"; fail=1; }
expect 0 "$FPK_BIN" help
for c in prune encode decode calibrate verify inspect generate; do
	grep -q "^  $c " "$FPK_TMP/usage.out" || { echo "FAIL: help lacks $c"; fail=1; }
done
expect 2 "$FPK_BIN"
expect 2 "$FPK_BIN" no-such-command
expect 0 "$FPK_BIN" inspect --help
grep -q -- '--json' "$FPK_TMP/usage.out" || { echo "FAIL: inspect --help lacks --json"; fail=1; }
expect 0 "$FPK_BIN" help inspect
expect 2 "$FPK_BIN" inspect
expect 2 "$FPK_BIN" inspect a b
expect 2 "$FPK_BIN" inspect --no-such-option x
expect 2 "$FPK_BIN" inspect --threads abc x
expect 4 "$FPK_BIN" inspect /nonexistent/path
exit $fail
