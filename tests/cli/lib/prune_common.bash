# prune_common.bash: helpers shared by tests/cli/prune_*.sh (sourced, not a test itself).
set -euo pipefail
S32=$FPK_SHARED/testdata/stories260K
S16=$FPK_SHARED/testdata/stories260K-fp16
CHECK=$FPK_TOOLS/prune_check
work=$FPK_TMP/$(basename "$0" .sh)
rm -rf "$work"
mkdir -p "$work"

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect CODE NEEDLE CMD...: run CMD, require exit CODE and NEEDLE in its stderr
expect() {
	local code=$1 needle=$2 rc=0
	shift 2
	"$@" >"$work/stdout" 2>"$work/stderr" || rc=$?
	[ "$rc" -eq "$code" ] || { cat "$work/stderr"; fail "'$*' exited $rc, expected $code"; }
	grep -qF -- "$needle" "$work/stderr" || { cat "$work/stderr"; fail "'$*': message lacks '$needle'"; }
}

# no_output DIR: neither DIR nor a temporary DIR.tmp.* is left behind
no_output() {
	[ ! -e "$1" ] || fail "partial output '$1' left behind"
	local left
	left=$(ls -d "$1".tmp.* 2>/dev/null || true)
	[ -z "$left" ] || fail "temporary output '$left' left behind"
}

# zeros_of PATH NAME: exact zero count of tensor NAME, from `inspect --json`
zeros_of() {
	"$FPK_BIN" inspect --json "$1" | awk -v want="$2" '
		/"name":/ { gsub(/[",]/, "", $2); name = $2 }
		/"zeros":/ && name == want && !done { gsub(/,/, "", $2); print $2; done = 1 }'
}

# elements_of PATH NAME
elements_of() {
	"$FPK_BIN" inspect --json "$1" | awk -v want="$2" '
		/"name":/ { gsub(/[",]/, "", $2); name = $2 }
		/"elements":/ && name == want && !done { gsub(/,/, "", $2); print $2; done = 1 }'
}

# round S N: round(S * N) as the prune contract defines it (half away from zero)
round_sn() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%d\n", int(s * n + 0.5) }'; }
