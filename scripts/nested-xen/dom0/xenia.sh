# shellcheck shell=dash
# Helpers for a nested-Xen job (sourced by dom0's /init before it runs /job/job.sh).
# Runs under busybox ash in dom0; everything a job prints goes to the serial line.
#
# Results reach the host as marker lines on the serial line:
#
#   @@XENIA|<kind>|<domain or ->|<time or ->|<payload>
#
# kinds (times are seconds, two decimals):
#   dom0     -    <uptime>  a harness message (xenia_log)
#   ready    -    <uptime>  dom0 is ready: xenstored, xenconsoled, xenbr0 up
#   create   <d>  <uptime>  `xl create` of <d> started at <uptime>; payload "rc=<rc> secs=<duration>"
#   out      <d>  <since>   a line of dom0 output about <d> (xl create's output, xenia_run output)
#   con      <d>  <since>   a line of <d>'s console, streamed while it runs (<since>: seconds since
#                           `xl create` started, when dom0 read the line)
#   end      <d>  <since>   <d> ended: payload poweroff | crash | reboot | timeout | gone
#   dmesg    <d>  -         a line of `xl dmesg` after <d> crashed or timed out
#   log      <d>  -         a line of <d>'s whole console log (xenia_console, after the end)
#   logsum   <d>  -         "<lines> <sha256>" of the log lines above (each plus "\n"), so that the
#                           host can tell a complete copy from one garbled on the serial line
#   jobdone  -    <uptime>  job.sh finished; payload "rc=<exit status>"
#   fatal    -    <uptime>  dom0 could not get ready; payload: why
#
# Note: busybox ash runs its applets in preference to PATH, so the real tools copied into dom0
# are called by their full path where the difference matters.
#
# Domain names must match [A-Za-z0-9_.-]+ (they are used in file names and markers).
#
# libvirt: a scenario whose xl config has `xenia_libvirt = "/job/<app>.xml"` (a key only this
# harness reads; xl never sees that config) is created with `virsh create` of that domain XML
# instead of `xl create`, its name set to the scenario's. xenia_libvirtd starts libvirtd on
# the first such scenario (not at every boot: only those scenarios pay its start-up time).

XENIA_RUN=/run/xenia
XENIA_CONSOLE_DIR=/var/log/xen/console
mkdir -p "$XENIA_RUN"

# Seconds since dom0 booted.
xenia_now() { cut -d' ' -f1 /proc/uptime; }

# Seconds since the `xl create` of domain $1 started.
xenia_since() { awk -v t0="$(cat "$XENIA_RUN/$1.t0")" -v now="$(xenia_now)" 'BEGIN { printf "%.2f", now - t0 }'; }

# xenia_mark KIND DOMAIN TIME PAYLOAD
xenia_mark() { printf '@@XENIA|%s|%s|%s|%s\n' "$1" "$2" "$3" "$4"; }

# A harness message.
xenia_log() { xenia_mark dom0 - "$(xenia_now)" "$*"; }

# Prefix each line of stdin as KIND lines of domain $2 with time $3 ($1 = KIND).
xenia_prefix() {
    awk -v kind="$1" -v d="$2" -v t="$3" '{ sub(/\r+$/, ""); printf "@@XENIA|%s|%s|%s|%s\n", kind, d, t, $0; fflush() }'
}

# The value of `name = "..."` in an xl config.
xenia_cfg_name() { sed -n 's/^[[:space:]]*name[[:space:]]*=[[:space:]]*["'\'']\([^"'\'']*\)["'\''].*/\1/p' "$1" | head -n 1; }

xenia_check_name() {
    case $1 in
        "" | *[!A-Za-z0-9_.-]*) xenia_log "bad domain name '$1'"; return 1 ;;
    esac
}

# The value of `KEY = "..."` in an xl config ($1 = config, $2 = KEY).
xenia_cfg_key() { sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*[\"']\([^\"']*\)[\"'].*/\1/p" "$1" | head -n 1; }

XENIA_VIRSH="virsh -c xen:///"

# Start libvirtd (the libxl driver only) unless it runs already, and wait (at most 180 s) until
# `virsh -c xen:/// list` answers. Emits a dom0 line with the start time; on failure the tail of
# libvirtd's log, and returns 1.
xenia_libvirtd() {
    local t0 i=0 pid
    $XENIA_VIRSH list >/dev/null 2>&1 && return 0
    mkdir -p /etc/libvirt /var/log/libvirt/libxl /var/lib/libvirt/libxl /var/cache/libvirt /run/libvirt
    # Root over the local socket only: no TCP, no polkit (dom0 has neither polkit nor dbus).
    cat >/etc/libvirt/libvirtd.conf <<'CONF'
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
    t0=$(xenia_now)
    setsid /usr/sbin/libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirtd.pid \
        </dev/null >/var/log/libvirt/libvirtd.out 2>&1 &
    pid=$!
    while ! $XENIA_VIRSH list >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -ge 360 ] || ! kill -0 "$pid" 2>/dev/null; then
            xenia_log "libvirtd did not answer on xen:/// (after $i tries); xl info: $(xl info | grep -E 'hw_caps|virt_caps' | tr -s ' ' | tr '\n' ' ')"
            cat /var/log/libvirt/libvirtd.out /var/log/libvirt/libvirtd.log 2>/dev/null | tail -n 30 |
                while read -r l; do xenia_log "libvirtd: $l"; done
            return 1
        fi
        sleep 0.5
    done
    xenia_log "libvirtd ready after $(awk -v a="$t0" -v b="$(xenia_now)" 'BEGIN { printf "%.2f", b - a }') s"
    xenia_log "libvirt host CPU model: $($XENIA_VIRSH capabilities | sed -n 's#.*<model>\(.*\)</model>.*#\1#p' | head -n 1)"
}

# xenia_virsh_create CFG XML DOMAIN: `virsh create` of XML renamed to DOMAIN (the scenario's
# name), with a lifecycle event monitor whose "Stopped Shutdown" / "Crashed" lines tell
# xenia_shutdown_reason why the domain ended. Prints virsh's output; returns its status.
xenia_virsh_create() {
    local xml="$2" d="$3"
    [ "$xml" != /nonexistent/libvirtd-failed ] || { echo "libvirtd did not start"; return 1; }
    [ -f "$xml" ] || { echo "no libvirt domain XML $xml"; return 1; }
    grep -q '<name>[^<]*</name>' "$xml" || { echo "$xml has no <name>"; return 1; }
    sed "s#<name>[^<]*</name>#<name>$d</name>#" "$xml" >"$XENIA_RUN/$d.xml"
    echo "virsh create $xml (domain name set to $d)"
    : >"$XENIA_RUN/$d.events"
    $XENIA_VIRSH event --loop --event lifecycle >"$XENIA_RUN/$d.events" 2>&1 &
    echo $! >"$XENIA_RUN/$d.events.pid"
    # virsh registers for events once connected: give it a moment (it prints nothing before).
    sleep 1
    $XENIA_VIRSH create "$XENIA_RUN/$d.xml"
}

# Stop the event monitor of domain $1, if any.
xenia_stop_events() {
    [ -f "$XENIA_RUN/$1.events.pid" ] || return 0
    kill "$(cat "$XENIA_RUN/$1.events.pid")" 2>/dev/null
    rm -f "$XENIA_RUN/$1.events.pid"
}

# Start streaming domain $1's console log as `con` lines (stopped by xenia_stop_follow).
xenia_follow() {
    local d="$1"
    rm -f "$XENIA_RUN/$d.fifo"
    mkfifo "$XENIA_RUN/$d.fifo"
    # awk stamps each line when it arrives; it exits when tail is killed (EOF on the fifo).
    awk -v d="$d" -v t0="$(cat "$XENIA_RUN/$d.t0")" '{
            getline up < "/proc/uptime"; close("/proc/uptime"); split(up, u, " ")
            sub(/\r+$/, "")
            printf "@@XENIA|con|%s|%.2f|%s\n", d, u[1] - t0, $0; fflush()
        }' <"$XENIA_RUN/$d.fifo" &
    echo $! >"$XENIA_RUN/$d.awk.pid"
    # coreutils' tail (busybox ash would run its own applet for a bare `tail`): -F waits for
    # the file to appear, and inotify makes it react at once.
    /usr/bin/tail -F -n +1 -s 0.1 "$XENIA_CONSOLE_DIR/guest-$d.log" >"$XENIA_RUN/$d.fifo" 2>/dev/null &
    echo $! >"$XENIA_RUN/$d.tail.pid"
}

xenia_stop_follow() {
    local d="$1"
    [ -f "$XENIA_RUN/$d.tail.pid" ] || return 0
    kill "$(cat "$XENIA_RUN/$d.tail.pid")" 2>/dev/null
    # Let awk drain the fifo and exit (bounded wait).
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "$(cat "$XENIA_RUN/$d.awk.pid")" 2>/dev/null || break
        sleep 0.1
    done
    kill "$(cat "$XENIA_RUN/$d.awk.pid")" 2>/dev/null
    rm -f "$XENIA_RUN/$d.tail.pid" "$XENIA_RUN/$d.awk.pid" "$XENIA_RUN/$d.fifo"
}

# xenia_create CFG: `xl create CFG` (or `virsh create`, see libvirt above), streaming the
# domain's console while it runs.
# Emits `create` (and xl's output as `out` lines). Returns xl's exit status.
xenia_create() {
    local cfg="$1" d t0 rc secs xml
    d=$(xenia_cfg_name "$cfg")
    xml=$(xenia_cfg_key "$cfg" xenia_libvirt)
    xenia_check_name "$d" || return 1
    # Fresh state for this domain: no old console log, an empty hypervisor log ring.
    rm -f "$XENIA_CONSOLE_DIR/guest-$d.log" "/var/log/xen/xl-$d.log" "$XENIA_RUN/$d.events"
    xl dmesg -c >/dev/null 2>&1
    # libvirtd's start (the first time) is not part of the create's time; when it fails,
    # xenia_virsh_create says so as the create's output.
    [ -z "$xml" ] || xenia_libvirtd || xml=/nonexistent/libvirtd-failed
    t0=$(xenia_now)
    echo "$t0" >"$XENIA_RUN/$d.t0"
    xenia_follow "$d"
    if [ -n "$xml" ]; then
        xenia_virsh_create "$cfg" "$xml" "$d" >"$XENIA_RUN/$d.create.out" 2>&1
    else
        xl create "$cfg" >"$XENIA_RUN/$d.create.out" 2>&1
    fi
    rc=$?
    secs=$(xenia_since "$d")
    # When xl create returned (seconds after its start), for boot-time measurements.
    echo "$secs" >"$XENIA_RUN/$d.created"
    xenia_prefix out "$d" "$secs" <"$XENIA_RUN/$d.create.out"
    xenia_mark create "$d" "$t0" "rc=$rc secs=$secs"
    if [ "$rc" != 0 ]; then
        xenia_stop_follow "$d"
        xenia_stop_events "$d"
        tail -n 20 /var/log/xen/xen-hotplug.log 2>/dev/null | xenia_prefix out "$d" "$secs"
    fi
    return "$rc"
}

# The shutdown reason xl recorded for domain $1 (from the log of xl's monitoring process) as a
# word, or `unknown` while there is none.
xenia_shutdown_reason() {
    local code ev
    if [ -f "$XENIA_RUN/$1.events" ]; then
        # virsh: "event 'lifecycle' for domain 'D': Stopped Shutdown" (libvirt's libxl driver
        # reports a guest's poweroff so), "... Crashed ..." or "Stopped Crashed" for a crash.
        ev=$(grep "for domain '$1': " "$XENIA_RUN/$1.events" | sed 's/.*: //' | tail -n 1)
        case $ev in
            "Stopped Shutdown") echo poweroff; return ;;
            Crashed* | "Stopped Crashed") echo crash; return ;;
        esac
    fi
    code=$(sed -n 's/.*shut down, reason code \([0-9]*\).*/\1/p' "/var/log/xen/xl-$1.log" 2>/dev/null | tail -n 1)
    case $code in
        0) echo poweroff ;;
        1) echo reboot ;;
        2) echo suspend ;;
        3) echo crash ;;
        4) echo watchdog ;;
        5) echo soft_reset ;;
        *) echo unknown ;;
    esac
}

# xenia_wait_end DOMAIN TIMEOUT: wait until the domain has shut down (the reason comes from the
# log of xl's monitoring process: poweroff, crash, reboot, ...), is crashed (state c, kept by
# on_crash="preserve"), has vanished without a recorded reason (gone), or TIMEOUT seconds since
# its creation passed (timeout). Domains that did not power off get their `xl dmesg` printed and
# are destroyed. Emits `end`; returns 0 for poweroff and 1 otherwise.
xenia_wait_end() {
    local d="$1" limit="$2" outcome="" state reason missing=0 secs
    while [ -z "$outcome" ]; do
        reason=$(xenia_shutdown_reason "$d")
        state=$(xl list "$d" 2>/dev/null | awk 'NR == 2 { print $5 }')
        if [ "$reason" != unknown ]; then
            outcome=$reason
        elif [ -z "${state##*c*}" ] && [ -n "$state" ]; then
            outcome=crash
        elif [ -z "$state" ] && [ "$missing" -ge 20 ]; then
            # Not listed for 2 s and xl recorded no reason (xl list can miss a domain briefly
            # while its state changes).
            outcome=gone
        elif awk -v s="$(xenia_since "$d")" -v l="$limit" 'BEGIN { exit !(s >= l) }'; then
            outcome=timeout
        else
            [ -n "$state" ] && missing=0 || missing=$((missing + 1))
            sleep 0.1
        fi
    done
    secs=$(xenia_since "$d")
    # xenconsoled may still be copying the last output: give it a moment, then stop streaming.
    sleep 0.5
    xenia_stop_follow "$d"
    xenia_stop_events "$d"
    if [ "$outcome" != poweroff ]; then
        xenia_dmesg "$d"
        [ -f "$XENIA_RUN/$d.events" ] && $XENIA_VIRSH destroy "$d" >/dev/null 2>&1
        xl destroy "$d" >/dev/null 2>&1
    fi
    xenia_mark end "$d" "$secs" "$outcome"
    [ "$outcome" = poweroff ]
}

# Print what the hypervisor logged since domain $1 was created (all-zero stack lines dropped).
xenia_dmesg() {
    xl dmesg 2>/dev/null | grep -v -E '^\(XEN\)[[:space:]]+(0{16}[[:space:]]*)+$' | tail -n 80 |
        xenia_prefix dmesg "$1" -
}

# xenia_console DOMAIN: the domain's whole console log, plus a checksum line (see `logsum`).
xenia_console() {
    local d="$1" norm="$XENIA_RUN/$1.console"
    if [ -f "$XENIA_CONSOLE_DIR/guest-$d.log" ]; then
        awk '{ sub(/\r+$/, ""); print }' "$XENIA_CONSOLE_DIR/guest-$d.log" >"$norm"
    else
        : >"$norm"
    fi
    xenia_prefix log "$d" - <"$norm"
    xenia_mark logsum "$d" - "$(wc -l <"$norm" | tr -d ' ') $(sha256sum <"$norm" | cut -d' ' -f1)"
}

# xenia_run DOMAIN CMD...: run a dom0 command, its output as `out` lines of DOMAIN; then a
# dom0 line with how long it took ("run took <seconds> s: CMD", for finding slow steps).
xenia_run() {
    local d="$1" rc t0 t1
    shift
    read -r t0 _ </proc/uptime
    "$@" >"$XENIA_RUN/run.out" 2>&1
    rc=$?
    read -r t1 _ </proc/uptime
    { cat "$XENIA_RUN/run.out"; echo "[exit $rc] $*"; } | xenia_prefix out "$d" "$(xenia_since "$d" 2>/dev/null || echo -)"
    xenia_log "run took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s: $(printf '%s' "$*" | tr '\n' ' ')"
    return "$rc"
}

# xenia_scenario CFG TIMEOUT [STEPS]: create, run the dom0 script STEPS (sourced, with $d the
# domain name) if given, wait for the end, dump the console. Returns 0 on poweroff.
xenia_scenario() {
    local d rc
    d=$(xenia_cfg_name "$1")
    if xenia_create "$1"; then
        if [ -n "${3:-}" ]; then
            # shellcheck disable=SC1090
            . "$3"
        fi
        xenia_wait_end "$d" "$2"
        rc=$?
    else
        xenia_mark end "$d" "$(xenia_since "$d")" create-failed
        rc=1
    fi
    xenia_console "$d"
    return "$rc"
}

# xenia_drive N: print the block device (/dev/vdX) of the host file given as the Nth (from 0)
# `boot --drive`, found by its serial number xenia-disk<N>; waits up to 10 s for it. Returns 1
# when there is none.
xenia_drive() {
    local want="xenia-disk$1" s b i=0
    while [ "$i" -lt 100 ]; do
        for s in /sys/block/vd*/serial; do
            [ -r "$s" ] || continue
            [ "$(cat "$s")" = "$want" ] || continue
            b=${s%/serial}
            b=${b##*/}
            [ -b "/dev/$b" ] && { echo "/dev/$b"; return 0; }
        done
        i=$((i + 1))
        sleep 0.1
    done
    return 1
}

# xenia_use_drive CFG FILE N: in the xl config CFG, give the guest the Nth `boot --drive` (see
# xenia_drive) as the disk whose spec says `target=/job/FILE` (target= ends an xl disk spec, so
# a quote follows it). The guest then writes straight to the host's image file. Emits an `out`
# line for the domain; on failure a `fatal` line, and returns 1.
xenia_use_drive() {
    local cfg="$1" file="$2" n="$3" d dev pat
    d=$(xenia_cfg_name "$cfg")
    case $file in
        "" | *[!A-Za-z0-9._-]*)
            xenia_mark fatal - "$(xenia_now)" "disk file name '$file' is not [A-Za-z0-9._-]+"
            return 1
            ;;
    esac
    if ! dev=$(xenia_drive "$n"); then
        xenia_mark fatal - "$(xenia_now)" "disk $file: no virtio disk with serial xenia-disk$n in dom0"
        return 1
    fi
    # The name holds only [A-Za-z0-9._-]: with its dots escaped it is a literal pattern.
    pat="target=/job/$(echo "$file" | sed 's/\./\\./g')"
    if ! grep -q "${pat}[\"']" "$cfg"; then
        xenia_mark fatal - "$(xenia_now)" "disk $file: no target=/job/$file in $cfg"
        return 1
    fi
    sed -i "s#${pat}\([\"']\)#target=$dev\1#" "$cfg"
    xenia_mark out "$d" - "disk $file is the host's image file (QEMU drive $n, $dev in dom0)"
}
