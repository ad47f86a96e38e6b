#!/usr/bin/env bash
# Check that `scripts/run kv` keeps an acknowledged write when it is stopped with a signal.
#
# Usage: tests/run-kv-persistence.sh [--port P] [--signal INT|TERM] [--wait S] [--keep]
#
#   --port P       host port forwarded to the store's port 80 (default: a free one picked by
#                  the kernel, so that a user's 8080 is left alone)
#   --signal SIG   how the runs are stopped (default INT, i.e. Ctrl-C)
#   --wait S       seconds a run may take to serve /kv (default 600)
#   --keep         keep the scratch directory (disk image, run logs) also on success
#
# Steps, each timed:
#   1. `scripts/run kv --port P:80` with XENIA_DISK_DIR a fresh scratch directory (a user's
#      target/xen/kv-disks is not touched), until GET /kv answers;
#   2. PUT /kv/<random key> with a random value (201 expected);
#   3. SIGINT (or --signal) to scripts/run's process only; it must exit with 128+signal, and
#      the run's QEMU (found by its drive's path) must be gone;
#   4. scripts/run kv again with the same disk directory, GET the key: the value must match;
#   5. the signal again, this time to scripts/run's whole process group, as a terminal's
#      Ctrl-C does; same checks as in 3.
# scripts/run is started in a process group of its own with SIGINT at its default action, as a
# terminal starts a foreground command (a background job of a script would ignore SIGINT).
#
# Exit status 0 when all checks pass, 1 with a message saying which one failed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

port=
sig=INT
wait_s=600
keep=
while [ $# -gt 0 ]; do
    case $1 in
        --port) port=${2:?--port needs a number}; shift 2 ;;
        --signal) sig=${2:?--signal needs INT or TERM}; shift 2 ;;
        --wait) wait_s=${2:?--wait needs seconds}; shift 2 ;;
        --keep) keep=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $sig in
    INT) sig_status=130 ;;
    TERM) sig_status=143 ;;
    *) echo "error: --signal must be INT or TERM" >&2; exit 2 ;;
esac
command -v curl >/dev/null || { echo "error: curl is needed (apt-get install curl)" >&2; exit 2; }
if [ -z "$port" ]; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/xenia-kv-persist.XXXXXX")
disk_dir=$scratch/disks
run_pid=
started=$(date +%s.%N)

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[%6s s] %s\n' "$(secs "$started" "$(now)")" "$*"; }

fail() {
    say "FAIL: $*"
    local f
    for f in "$scratch"/run*.err; do
        [ -f "$f" ] || continue
        echo "--- last lines of ${f##*/} (scripts/run's stderr):"
        tail -n 25 "$f"
    done
    echo "--- scratch directory kept: $scratch"
    if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
        kill -TERM "$run_pid" 2>/dev/null || true
        wait "$run_pid" 2>/dev/null || true
    fi
    exit 1
}
trap 'fail "interrupted"' INT TERM

# The QEMU processes of this check's runs: the only ones with our drive's path.
our_qemus() { pgrep -f -- "qemu-system-x86_64 .*file=$disk_dir/kv-disk.img" || true; }

# start_run N: scripts/run kv in the background (pid in run_pid), output in run<N>.out/.err.
start_run() {
    [ -z "$(our_qemus)" ] || fail "a QEMU with $disk_dir is running before run $1"
    XENIA_DISK_DIR=$disk_dir python3 -c '
import os, signal, sys
os.setpgid(0, 0)  # a process group of its own, like a foreground job of a terminal
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])
' "$root/scripts/run" kv --port "$port:80" >"$scratch/run$1.out" 2>"$scratch/run$1.err" &
    run_pid=$!
}

# wait_serving N: until GET /kv answers (or the run ends, or --wait passes).
wait_serving() {
    local t0 deadline status=0
    t0=$(now)
    deadline=$(( $(date +%s) + wait_s ))
    until curl -sf -m 5 -o /dev/null "http://localhost:$port/kv"; do
        if ! kill -0 "$run_pid" 2>/dev/null; then
            wait "$run_pid" || status=$?
            run_pid=
            fail "run $1 ended (status $status) before it served /kv"
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "run $1 did not serve http://localhost:$port/kv within $wait_s s"
        sleep 1
    done
    say "run $1 serves http://localhost:$port/kv ($(secs "$t0" "$(now)") s after start)"
}

# stop_run N pid|group: send the signal, wait for scripts/run, check its status and its QEMU.
stop_run() {
    local n=$1 to=$2 t0 status=0 qemus left q
    qemus=$(our_qemus)
    [ -n "$qemus" ] || fail "run $n: no QEMU process with $disk_dir found while it serves"
    t0=$(now)
    if [ "$to" = group ]; then
        kill -s "$sig" -- "-$run_pid"
    else
        kill -s "$sig" "$run_pid"
    fi
    for _ in $(seq 1 600); do
        kill -0 "$run_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$run_pid" 2>/dev/null; then
        kill -s KILL -- "-$run_pid" 2>/dev/null || true
        fail "run $n: scripts/run still running 60 s after SIG$sig to its $to (killed its group)"
    fi
    wait "$run_pid" || status=$?
    run_pid=
    say "run $n: SIG$sig to scripts/run's $to: exit status $status after $(secs "$t0" "$(now)") s"
    [ "$status" = "$sig_status" ] || fail "run $n: scripts/run exited with $status, expected $sig_status"
    left=$(our_qemus)
    for q in $qemus; do
        [ ! -d "/proc/$q" ] || left+=" $q"
    done
    [ -z "$left" ] || fail "run $n: QEMU process(es) ${left//$'\n'/ } still there after scripts/run exited"
    say "run $n: its QEMU (pid $(echo "$qemus" | tr '\n' ' ' | sed 's/ $//')) is gone"
}

say "scratch $scratch, host port $port, signal SIG$sig"
key=persist-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
value=value-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

start_run 1
wait_serving 1
t0=$(now)
code=$(curl -s -m 30 -o "$scratch/put.body" -w '%{http_code}' -X PUT --data-binary "$value" \
    "http://localhost:$port/kv/$key") || fail "PUT /kv/$key: curl failed"
[ "$code" = 201 ] || fail "PUT /kv/$key answered $code ($(cat "$scratch/put.body")), expected 201"
say "PUT /kv/$key = $value: 201 in $(secs "$t0" "$(now)") s"
stop_run 1 process

start_run 2
wait_serving 2
code=$(curl -s -m 30 -o "$scratch/get.body" -w '%{http_code}' "http://localhost:$port/kv/$key") ||
    fail "GET /kv/$key: curl failed"
[ "$code" = 200 ] || fail "after the restart GET /kv/$key answered $code, expected 200 (the write was lost)"
got=$(cat "$scratch/get.body")
[ "$got" = "$value" ] || fail "after the restart GET /kv/$key = '$got', expected '$value'"
say "after the restart GET /kv/$key = the value PUT before SIG$sig"
stop_run 2 group

trap - INT TERM
say "PASS (total $(secs "$started" "$(now)") s)"
if [ -n "$keep" ]; then
    echo "scratch directory kept: $scratch"
else
    rm -rf "$scratch"
fi
