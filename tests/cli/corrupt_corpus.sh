#!/usr/bin/env bash
# corrupt_corpus.sh: every file of the generated corrupt corpus must be rejected by `inspect` with exit code 3 and
# a message naming the problem; the valid control file must pass. Run: ctest -R cli_corrupt_corpus
set -euo pipefail
dir=$FPK_TMP/corrupt
rm -rf "$dir"
"$FPK_TOOLS/gen_corrupt" "$dir"
fail=0
n=0
while IFS=$'\t' read -r name expect; do
	n=$((n + 1))
	set +e
	out=$("$FPK_BIN" inspect "$dir/$name" 2>&1 >/dev/null)
	rc=$?
	set -e
	if [ "$expect" = OK ]; then
		[ $rc -eq 0 ] || { echo "FAIL $name: expected success, got $rc: $out"; fail=1; }
		continue
	fi
	if [ $rc -ne 3 ]; then
		echo "FAIL $name: expected exit 3, got $rc: $out"
		fail=1
	elif ! grep -qF -- "$expect" <<<"$out"; then
		echo "FAIL $name: message lacks '$expect': $out"
		fail=1
	else
		echo "ok   $name: $out"
	fi
done <"$dir/cases.tsv"
[ $n -ge 20 ] || { echo "FAIL: only $n cases"; fail=1; }
exit $fail
