#!/usr/bin/env bash
# An app made by `cargo xenia new` outside this repository runs on real Xen and answers HTTP.
#
# Usage: tests/run-cargo-xenia-new.sh [--keep]
#
#   --keep   keep the scratch directory (the app and the runs' output) also on success
#
# Steps: build cargo-xenia; `cargo xenia new $TMPDIR/.../webapp`; in the app, `cargo xenia test
# --release`: one boot of the nested VM runs the app's own scenario (xenia-scenarios.toml as
# `new` wrote it): dom0 fetches http://10.0.0.2/ with busybox wget and must get "hello from
# webapp", then `xl shutdown` must power the domain off. The app builds in this repository's
# target directory (CARGO_TARGET_DIR) so that the runtime's dependencies are compiled once.
#
# Exit status 0 when the scenario passes, 1 otherwise.
set -euo pipefail
# shellcheck source=../scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

keep=
while [ $# -gt 0 ]; do
    case $1 in
        --keep) keep=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/xenia-new-app.XXXXXX")
ok=
cleanup() {
    if [ -n "$ok" ] && [ -z "$keep" ]; then rm -rf "$scratch"; else echo "kept $scratch" >&2; fi
}
trap cleanup EXIT

cargo_xenia=$(xenia_cargo_xenia)
target=$(xenia_target_dir)
"$cargo_xenia" xenia new "$scratch/webapp"
cd "$scratch/webapp"
status=0
CARGO_TARGET_DIR=$target "$cargo_xenia" xenia test --release | tee "$scratch/test.out" || status=$?
if [ "$status" != 0 ] || ! grep -q '^ok   http$' "$scratch/test.out"; then
    echo "FAIL: cargo xenia test of a new app (status $status)" >&2
    exit 1
fi
ok=1
echo "ok: a cargo xenia new app answered HTTP in nested Xen and powered off"
