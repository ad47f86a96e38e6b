#!/usr/bin/env bash
# Check the commands of the README's "Debugging a guest" section, as a user runs them.
#
# Usage: tests/run-panic-backtrace.sh [--keep]
#
#   --keep   keep the scratch directory (the runs' output) also on success
#
# Steps:
#   1. `scripts/run panic`: exit 1 (crashed); its output has the panic message, the guest's
#      `backtrace:` lines and the named stack, with `main` (`__xenia_user_main`) at the file:line
#      of the panic message;
#   2. `readelf -n target/xen/panic.xen | grep 'Build ID'`: the build id the crash printed, also
#      that of target/xen/panic.debug;
#   3. `scripts/symbolize target/xen/panic.debug < console.log`, console.log being the guest's
#      console alone (the run's output without the named stack): the same named stack again;
#   4. `scripts/run panic --cmdline crash=page-fault`: exit 1, a page fault at the address the
#      guest announced, and a named stack from `panic::read_word` through the spawned task
#      (`panic::faulting_task`) to the executor.
# Two boots of the nested VM (or two domains on a Xen dom0).
#
# Exit status 0 when all checks pass, 1 with a message saying which one failed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

keep=
while [ $# -gt 0 ]; do
    case $1 in
        --keep) keep=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/xenia-panic-bt.XXXXXX")
ok=
cleanup() {
    if [ -n "$ok" ] && [ -z "$keep" ]; then rm -rf "$scratch"; else echo "kept $scratch" >&2; fi
}
trap cleanup EXIT

fail() {
    echo "run-panic-backtrace: FAILED: $*" >&2
    for f in "$scratch"/*.out; do
        [ -f "$f" ] || continue
        echo "--- ${f##*/}:" >&2
        cat "$f" >&2
    done
    exit 1
}

cd "$root"

# run NAME ARGS...: scripts/run panic ARGS, stdout in NAME.out, stderr in NAME.err; must crash.
run() {
    local name=$1 rc=0
    shift
    echo "run-panic-backtrace: scripts/run panic $*" >&2
    scripts/run panic --timeout 60 "$@" >"$scratch/$name.out" 2>"$scratch/$name.err" || rc=$?
    tr -d '\r' <"$scratch/$name.out" >"$scratch/$name.tmp" && mv "$scratch/$name.tmp" "$scratch/$name.out"
    [ "$rc" = 1 ] || { tail -n 30 "$scratch/$name.err" >&2; fail "scripts/run panic $* exited $rc, want 1 (crash)"; }
}

# named FILE: the named frames (`   N: function (file:line)`) after the stack header in FILE.
named() {
    awk '/^stack backtrace \(/ { on = 1; next } on && /^ *[0-9]+: / { print; next } { on = 0 }' "$1"
}

# 1. The panic.
run panic
out=$scratch/panic.out
site=$(sed -n 's/^panicked at \([^:]*:[0-9]*\):.*/\1/p' "$out" | head -n 1)
[ -n "$site" ] || fail "no 'panicked at FILE:LINE' line"
grep -q "^stack backtrace (build-id [0-9a-f]*, target/xen/panic.debug):" "$out" ||
    fail "no named stack from target/xen/panic.debug"
named "$out" | grep -q "__xenia_user_main.* ($site)\$" || fail "no frame of main at $site"
named "$out" | grep -q ": core::panicking::panic_fmt " || fail "no frame of core::panicking::panic_fmt"

# 2. The build id.
id=$(sed -n 's/^backtrace: build-id \([0-9a-f]*\)$/\1/p' "$out" | head -n 1)
[ -n "$id" ] || fail "no build id line"
image_id=$(readelf -n target/xen/panic.xen | grep 'Build ID' | awk '{ print $3 }')
debug_id=$(readelf -n target/xen/panic.debug | grep 'Build ID' | awk '{ print $3 }')
[ "$image_id" = "$id" ] || fail "target/xen/panic.xen has build id '$image_id', the crash '$id'"
[ "$debug_id" = "$id" ] || fail "target/xen/panic.debug has build id '$debug_id', the crash '$id'"

# 3. A saved console, symbolized again.
awk '/^stack backtrace/ { on = 1; next } on && /^ *[0-9]+: / { next } { on = 0; print }' \
    "$out" >"$scratch/console.log"
grep -q '^backtrace: end' "$scratch/console.log" || fail "console.log has no backtrace"
scripts/symbolize target/xen/panic.debug <"$scratch/console.log" >"$scratch/resymbolized.out"
diff <(named "$out") <(named "$scratch/resymbolized.out") >&2 ||
    fail "scripts/symbolize of the saved console differs from scripts/run's"
[ -n "$(named "$out")" ] || fail "no named frames"

# 4. A page fault in a spawned task.
run fault --cmdline crash=page-fault
out=$scratch/fault.out
addr=$(sed -n 's/^about to read \(0x[0-9a-f]*\) in a spawned task$/\1/p' "$out")
[ -n "$addr" ] || fail "no 'about to read ADDR' line"
grep -q "^xenia: fatal page fault (vector 14) .* cr2 $addr\$" "$out" || fail "no page fault at $addr"
named "$out" | awk '
    / panic::read_word \(examples\/panic\/src\/main.rs:[0-9]+\)$/ && !a { a = NR }
    / panic::faulting_task::\{\{closure\}\} / && a && !b { b = NR }
    / xenia::exec::/ && b && !c { c = NR }
    END { exit !(a && b && c) }' || fail "no read_word, faulting_task, executor frames in that order"

ok=1
echo "run-panic-backtrace: all checks passed" >&2
