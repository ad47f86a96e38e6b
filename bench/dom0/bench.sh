# shellcheck shell=dash
# dom0 side of scripts/bench (sourced by the generated /job/job.sh after dom0/xenia.sh; runs
# under busybox ash in the nested dom0). Every number comes from a measurement made here or
# by a guest; results go to the serial line as marker lines
#
#   @@XENIA|bench|-|<uptime>|<key> <value>
#
# which scripts/bench (bench/report.py) reads together with the guests' "BENCH ..." console
# lines. Settings come from the environment that job.sh sets:
#   BENCH_SECS BENCH_CONNS   wrk duration (s) and connections
#   BENCH_MIB                bulk TCP: MiB the guests send and receive; block: MiB of the
#                            sequential passes
#   BENCH_RAND_SECS          block: seconds of 4 KiB random reads
#   BENCH_DISK_MIB           block: size of each guest's backing file
#   BENCH_MEMS               memory sizes (MiB) tried for the http example, descending
#   BENCH_IDLE_SECS          seconds over which an idle guest's CPU time is measured
#   BENCH_LINUX_MEMS         memory sizes (MiB) tried for the Linux domU, descending
#   BENCH_SYN_RATE           spoofed SYNs a second during the attacked wrk run
#   BENCH_SLOW_CONNS         slow-head connections held during the attacked wrk run
#   BENCH_HUGE_CONNS         connections announcing a 1 MiB body (and sending none) held then
#   BENCH_ONLY               "xenia": net runs only the http example
# and the files present in /job (an absent Xenia example is reported as not measured).

B=/job/bench
WRK="$B/dom0/bin/wrk"

bench_result() { xenia_mark bench - "$(xenia_now)" "$1 $2"; }

# bench_state DOMAIN: its xl state flags (r, b, p, s, c, d), empty when it is gone.
bench_state() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }'; }

# Wait up to $2 seconds (dom0's clock) until $1 serves a page (into /tmp/bench-get; benchtool
# retries every 50 ms with 100 ms connects, so the time it returns is the time of the first
# answer within about 0.15 s); with $3, give up early when that domain crashed or went away.
bench_wait_http() {
    local end st
    end=$(awk -v l="$2" '{ printf "%d", $1 + l }' /proc/uptime)
    until "$B/benchtool" http "$1" 80 3 /tmp/bench-get >/dev/null; do
        [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ] || return 1
        if [ -n "${3:-}" ]; then
            st=$(bench_state "$3")
            [ -n "$st" ] && [ -n "${st##*c*}" ] || return 1
        fi
    done
}

# bench_http SIDE DOMAIN ADDR: the response size, then wrk's keep-alive load.
bench_http() {
    local side=$1 d=$2 addr=$3
    if ! bench_wait_http "$addr" 90 "$d"; then
        bench_result "$side.http.error" "no HTTP answer from $addr (state '$(bench_state "$d")' after $(xenia_since "$d") s)"
        return 1
    fi
    bench_result "$side.http.ready_secs" "$(xenia_since "$d")"
    bench_result "$side.http.create_secs" "$(cat "$XENIA_RUN/$d.created")"
    bench_result "$side.http.response_bytes" "$(wc -c </tmp/bench-get | tr -d ' ')"
    bench_result "$side.http.body_sha256" "$(awk 'body { print } /^\r?$/ { body = 1 }' /tmp/bench-get | sha256sum | cut -c1-16)"
    bench_wrk "$side.http" "$d" "$addr" "$BENCH_CONNS"
    bench_wrk "$side.http256" "$d" "$addr" 256
    bench_http_attack "$side" "$d" "$addr"
    bench_idle "$side" "$d"
}

# bench_time DOMAIN: its CPU seconds so far (xl list's Time column).
bench_time() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $6 }'; }

# bench_idle SIDE DOMAIN: CPU seconds the domain uses in BENCH_IDLE_SECS with no traffic (after
# 5 s for the last connections to close).
bench_idle() {
    local t0 t1
    sleep 5
    t0=$(bench_time "$2")
    sleep "$BENCH_IDLE_SECS"
    t1=$(bench_time "$2")
    [ -n "$t0" ] && [ -n "$t1" ] || return 0
    bench_result "$1.idle.cpu_secs" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
}

# bench_wrk KEY DOMAIN ADDR [CONNS]: wrk's keep-alive load on ADDR, results under KEY.*.
bench_wrk() {
    LD_LIBRARY_PATH=$B/dom0/lib "$WRK" -t1 -c"${4:-$BENCH_CONNS}" -d"${BENCH_SECS}s" --timeout 5s --latency \
        "http://$3:80/" >/tmp/bench-wrk.out 2>&1
    xenia_prefix out "$2" "$(xenia_since "$2")" </tmp/bench-wrk.out
    awk -v s="$1" '
        /^Requests\/sec:/ { print s ".rps " $2 }
        /^ +50% / { print s ".latency_p50 " $2 }
        /^ +99% / { print s ".latency_p99 " $2 }
        / requests in / { print s ".requests " $1 }
        /Non-2xx or 3xx responses:/ { print s ".non2xx " $NF }
        /Socket errors:/ { sub(/.*Socket errors: /, ""); print s ".socket_errors " $0 }
    ' /tmp/bench-wrk.out | while read -r k v; do bench_result "$k" "$v"; done
}

# bench_http_attack SIDE DOMAIN ADDR: the same wrk load while dom0 attacks ADDR: spoofed SYNs
# (xenia-synflood, BENCH_SYN_RATE a second from off-link addresses) and, when the tool is in
# the job, BENCH_SLOW_CONNS slow-head and BENCH_HUGE_CONNS huge-body connections
# (xenia-slowloris). Results under SIDE.attack.*.
bench_http_attack() {
    local side=$1 d=$2 addr=$3 secs=$((BENCH_SECS + 6)) pids=""
    [ -x "$B/xenia-synflood" ] || return 0
    "$B/xenia-synflood" "$addr" 80 "$BENCH_SYN_RATE" "$secs" >/tmp/bench-flood.out 2>&1 &
    pids="$!"
    if [ -x "$B/xenia-slowloris" ]; then
        "$B/xenia-slowloris" "$addr" 80 "$BENCH_SLOW_CONNS" "$BENCH_HUGE_CONNS" "$secs" >/tmp/bench-slow.out 2>&1 &
        pids="$pids $!"
    fi
    # Let the half-open and slow connections pile up before measuring.
    sleep 3
    bench_wrk "$side.attack" "$d" "$addr"
    # shellcheck disable=SC2086
    wait $pids
    for f in /tmp/bench-flood.out /tmp/bench-slow.out; do
        [ -f "$f" ] || continue
        xenia_prefix out "$d" "$(xenia_since "$d")" <"$f"
        tail -n 1 "$f" | while read -r tool rest; do bench_result "$side.attack.$tool" "$rest"; done
        rm -f "$f"
    done
}

# bench_sink_wait PID SECS: wait for the sink to end (it ends after one connection's EOF).
bench_sink_wait() {
    local i=0
    while kill -0 "$1" 2>/dev/null; do
        if [ "$i" -ge "$(($2 * 10))" ]; then
            kill "$1" 2>/dev/null
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
}

# bench_sink_result SIDE: the dom0-measured numbers of the last sink.
bench_sink_result() {
    xenia_prefix out bench - </tmp/bench-sink.out
    awk -v s="$1" '/^sink / { for (i = 2; i <= NF; i++) { split($i, kv, "="); print s ".bulk.dom0_" kv[1] " " kv[2] } }' \
        /tmp/bench-sink.out | while read -r k v; do bench_result "$k" "$v"; done
}

# bench_send_result SIDE: the dom0-measured numbers of the last dom0 -> guest send.
bench_send_result() {
    xenia_prefix out bench - </tmp/bench-send.out
    awk -v s="$1" '/^send / { for (i = 2; i <= NF; i++) { split($i, kv, "="); print s ".bulk_rx.dom0_" kv[1] " " kv[2] } }' \
        /tmp/bench-send.out | while read -r k v; do bench_result "$k" "$v"; done
}

# Stop a service guest: PV shutdown (bounded), else destroy; then record its end.
bench_stop() {
    xenia_run "$1" timeout 30 xl shutdown -w "$1" || xenia_run "$1" xl destroy "$1"
    xenia_wait_end "$1" 9999
    xenia_console "$1"
}

# bench_memory SIDE CFG ADDR WAIT MEMS: the guest of CFG as domain SIDE-mem with memory=M for
# each M of MEMS (descending) until one does not answer a request at ADDR within WAIT s.
bench_memory() {
    local side=$1 base=$2 addr=$3 wait=$4 mems=$5 m d="$1-mem" cfg="/tmp/$1-mem.xl" ok st
    for m in $mems; do
        sed -e "s/^memory *=.*/memory = $m/" -e "s/^name *=.*/name = \"$d\"/" "$base" >"$cfg"
        ok="fail (xl create failed)"
        if xenia_create "$cfg"; then
            if bench_wait_http "$addr" "$wait" "$d"; then
                ok=ok
            else
                st=$(bench_state "$d")
                case $st in
                    "") ok="fail (domain gone)" ;;
                    *c*) ok="fail (crashed)" ;;
                    *) ok="fail (no answer in $wait s)" ;;
                esac
            fi
            # A shutdown ends with a recorded reason at once; a destroyed domain is only
            # reported gone after xl list missed it for a while (slow under TCG).
            timeout 30 xl shutdown -w "$d" >/dev/null 2>&1 || xl destroy "$d" >/dev/null 2>&1
            xenia_wait_end "$d" 9999
            [ "$ok" = ok ] || xenia_console "$d"
            # xl's monitor records the shutdown before the domain is torn down: the next
            # create of the same name needs it gone.
            local i=0
            while [ -n "$(bench_state "$d")" ] && [ $i -lt 60 ]; do
                sleep 0.5
                i=$((i + 1))
            done
            xl destroy "$d" >/dev/null 2>&1
        fi
        bench_result "$side.mem.$m" "$ok"
        ip neigh flush dev xenbr0 2>/dev/null
        # Smaller sizes only matter while the larger ones work.
        [ "$ok" = ok ] || break
    done
}

bench_net() {
    local sink
    # (1) Xenia: the http example under load, then examples/netbench sending to dom0.
    if [ -f /job/http.xl ]; then
        if xenia_create /job/http.xl; then
            bench_http xenia http 10.0.0.2
            bench_stop http
        else
            bench_result xenia.http.error "xl create failed"
        fi
    fi
    # scripts/bench net --only xenia: the http example only.
    [ "${BENCH_ONLY:-}" != xenia ] || return 0
    if [ -f /job/netbench.xl ]; then
        "$B/benchtool" sink 5001 >/tmp/bench-sink.out 2>&1 &
        sink=$!
        if xenia_create /job/netbench.xl; then
            bench_sink_wait "$sink" 180 || bench_result xenia.bulk.error "sink did not finish in 180 s"
            bench_sink_result xenia
            xenia_wait_end netbench 240
            xenia_console netbench
        else
            kill "$sink" 2>/dev/null
            bench_result xenia.bulk.error "xl create failed"
        fi
        # dom0 -> guest: the same image receiving (bench_mode=recv, port 5003), dom0 sending.
        sed -e 's/^name *=.*/name = "netbench-rx"/' -e 's/^\(extra *= *"[^"]*\)"/\1 bench_mode=recv"/' \
            /job/netbench.xl >/tmp/netbench-rx.xl
        ip neigh flush dev xenbr0 2>/dev/null
        if xenia_create /tmp/netbench-rx.xl; then
            "$B/benchtool" send 10.0.0.2 5003 "$BENCH_MIB" >/tmp/bench-send.out 2>&1 ||
                bench_result xenia.bulk_rx.error "benchtool send failed"
            bench_send_result xenia
            xenia_wait_end netbench-rx 240
            xenia_console netbench-rx
        else
            bench_result xenia.bulk_rx.error "xl create failed"
        fi
    fi
    # (2) the Linux PV domU: nginx under the same load, then benchtool sending to dom0.
    ip neigh flush dev xenbr0 2>/dev/null
    if xenia_create /job/linux-net.xl; then
        bench_http linux linux-net 10.0.0.3
        "$B/benchtool" sink 5001 >/tmp/bench-sink.out 2>&1 &
        sink=$!
        if xenia_run linux-net "$B/benchtool" poke 10.0.0.3 5002 60; then
            bench_sink_wait "$sink" 180 || bench_result linux.bulk.error "sink did not finish in 180 s"
            bench_sink_result linux
        else
            kill "$sink" 2>/dev/null
            bench_result linux.bulk.error "could not trigger the sender"
        fi
        # dom0 -> guest: the domU's sink listens on 5003 once its send is done.
        "$B/benchtool" send 10.0.0.3 5003 "$BENCH_MIB" >/tmp/bench-send.out 2>&1 ||
            bench_result linux.bulk_rx.error "benchtool send failed"
        bench_send_result linux
        xenia_wait_end linux-net 300 || xl destroy linux-net >/dev/null 2>&1
        xenia_console linux-net
    else
        bench_result linux.http.error "xl create failed"
    fi
    # (3) the smallest memory each still serves with.
    [ ! -f /job/http.xl ] || bench_memory xenia /job/http.xl 10.0.0.2 30 "$BENCH_MEMS"
    bench_memory linux /job/linux-net.xl 10.0.0.3 120 "$BENCH_LINUX_MEMS"
    return 0
}

# bench_disk: the backing file for the next guest, fully written with zeros (not sparse). The
# same file is rewritten in place for each guest: a deleted file can stay held by its loop
# device for a while after the domain ends, and dom0's tmpfs has room for one.
bench_disk() {
    dd if=/dev/zero of=/tmp/bench-disk.img bs=1M count="$BENCH_DISK_MIB" conv=notrunc,fsync 2>/dev/null
    bench_result "disk.bytes" "$(wc -c </tmp/bench-disk.img | tr -d ' ')"
}

bench_block() {
    if [ -f /job/blkbench.xl ]; then
        bench_disk
        xenia_scenario /job/blkbench.xl 600
    fi
    bench_disk
    xenia_scenario /job/linux-block.xl 600
    rm -f /tmp/bench-disk.img
    return 0
}

# bench_life_client SIDE DOMAIN ADDR NAME CMD...: CMD under xenia-lifecycle-client (a kept
# keep-alive connection, a new-connection probe of /health every 50 ms); its lines become
# SIDE.life.* results: NAME.gap_ms (the longest gap between two answered probes), NAME.cmd_ms,
# NAME.answered, STEP_ms for each `--time STEP` inside CMD, NAME.image_bytes, NAME.http_secs
# (benchtool http's wait), NAME.served_after_ms and NAME.same_connection (the client's checks
# that passed) and fail.NAME-CHECK for each failed check. Returns the client's status.
bench_life_client() {
    local side=$1 d=$2 addr=$3 name=$4 rc
    shift 4
    timeout 300 /tmp/xenia-lifecycle-client "$addr" 80 "$name" -- "$@" >/tmp/life-client.out 2>&1
    rc=$?
    xenia_prefix out "$d" "$(xenia_since "$d")" </tmp/life-client.out
    [ "$rc" != 124 ] || bench_result "$side.life.$name.error" "timed out after 300 s (its last line: $(tail -n 1 /tmp/life-client.out))"
    awk -v s="$side.life" -v n="$name" '
        $1 == "measure" && $3 ~ /^gap_ms=/ { for (i = 3; i <= NF; i++) { split($i, kv, "="); print s "." n "." kv[1] " " kv[2] }; next }
        $1 == "measure" && $3 ~ /^ms=/ { sub(/^ms=/, "", $3); print s "." $2 "_ms " $3; next }
        $1 == "image-bytes" { print s "." n ".image_bytes " $2; next }
        $1 == "http" && $2 == "ok" { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "secs") print s "." n ".http_secs " kv[2] }; next }
        $1 == "ok" && $2 == n "-served-after" { print s "." n ".served_after_ms " $5; next }
        $1 == "ok" && $2 == n "-same-connection" { print s "." n ".same_connection ok"; next }
        $1 == "FAIL" { k = $2; $1 = ""; $2 = ""; sub(/^ +/, ""); print s ".fail." k " " $0 }
    ' /tmp/life-client.out | while read -r k v; do bench_result "$k" "$v"; done
    return "$rc"
}

# bench_life SIDE CFG ADDR: the lifecycle of one guest serving HTTP at ADDR: `xl save -c`
# (checkpoint), `xl save` + `xl restore`, a localhost `xl migrate` (xl's error is reported when
# it fails), `xl network-detach` + `xl network-attach` with the same MAC until the first HTTP
# 200; each under bench_life_client. Results under SIDE.life.*.
bench_life() {
    local side=$1 cfg=$2 addr=$3 d mac st C=/tmp/xenia-lifecycle-client S=/tmp/life
    d=$(xenia_cfg_name "$cfg")
    ip neigh flush dev xenbr0 2>/dev/null
    if ! xenia_create "$cfg"; then
        bench_result "$side.life.error" "xl create failed"
        return 1
    fi
    # No early exit on the domain's state here: twice the wait for the Linux domU ended early,
    # once it was up (an xl list that printed nothing for a moment, the state check's guess).
    if ! bench_wait_http "$addr" 120; then
        bench_result "$side.life.error" "no HTTP answer from $addr (state '$(bench_state "$d")' after $(xenia_since "$d") s)"
        xl destroy "$d" >/dev/null 2>&1
        xenia_wait_end "$d" 9999
        xenia_console "$d"
        return 1
    fi
    bench_result "$side.life.memory_mib" "$(xl list "$d" | awk 'NR == 2 { print $3 }')"
    # (1) checkpoint: the guest carries on.
    echo "$C --time ckpt -- xl save -c $d $S/life.save || exit 1" >/tmp/life-ckpt.sh
    echo "stat -c 'image-bytes %s' $S/life.save" >>/tmp/life-ckpt.sh
    bench_life_client "$side" "$d" "$addr" checkpoint sh /tmp/life-ckpt.sh
    rm -f "$S/life.save"
    # (2) save (the domain is gone) + restore (a new domain).
    echo "$C --time save -- xl save $d $S/life.save || exit 1" >/tmp/life-sr.sh
    echo "stat -c 'image-bytes %s' $S/life.save" >>/tmp/life-sr.sh
    echo "$C --time restore -- xl restore $S/life.save" >>/tmp/life-sr.sh
    bench_life_client "$side" "$d" "$addr" restore sh /tmp/life-sr.sh
    rm -f "$S/life.save"
    # (3) localhost live migration; when xl fails, its first error line is the reason.
    echo "xl migrate -s '' $d 'xl migrate-receive' >/tmp/life-migrate.out 2>&1; rc=\$?; cat /tmp/life-migrate.out; exit \$rc" >/tmp/life-mig.sh
    if ! bench_life_client "$side" "$d" "$addr" migrate sh /tmp/life-mig.sh &&
        grep -q "^FAIL migrate-cmd" /tmp/life-client.out; then
        bench_result "$side.life.migrate.error" "$(grep -m 1 -E 'rror|ailed' /tmp/life-migrate.out || tail -n 1 /tmp/life-migrate.out)"
    fi
    # (4) network detach + attach (the same MAC) until the first HTTP 200 on a new connection.
    mac=$(xl network-list "$d" 2>/dev/null | awk 'NR == 2 { print $3 }')
    if [ -n "$mac" ]; then
        # The Linux domU's /init gives eth0 its address again once poked (bench/linux/init).
        [ "$side" != linux ] || "$B/benchtool" poke "$addr" 5003 10
        echo "$C --time detach -- xl network-detach $d 0 || exit 1" >/tmp/life-det.sh
        echo "$C --time attach -- xl network-attach $d bridge=xenbr0 mac=$mac || exit 1" >>/tmp/life-det.sh
        echo "$B/benchtool http $addr 80 120 /tmp/life-get" >>/tmp/life-det.sh
        bench_life_client "$side" "$d" "$addr" detach sh /tmp/life-det.sh
    else
        bench_result "$side.life.detach.error" "no vif in xl network-list $d"
    fi
    # The end: Xenia powers off on request; the Linux domU's /init cannot, so it is destroyed.
    st=$(bench_state "$d")
    if [ "$side" = xenia ] && [ -n "$st" ]; then
        bench_stop "$d"
    else
        xl destroy "$d" >/dev/null 2>&1
        xenia_wait_end "$d" 9999
        xenia_console "$d"
    fi
    return 0
}

bench_lifecycle() {
    cp "$B/xenia-lifecycle-client" /tmp/xenia-lifecycle-client && chmod +x /tmp/xenia-lifecycle-client
    # The saved images get a tmpfs of their own (dom0's root file system is nearly full).
    mkdir -p /tmp/life
    mount -t tmpfs -o size=512m life /tmp/life
    free -m | xenia_prefix out bench -
    xl info | grep virt_caps | xenia_prefix out bench -
    bench_result "virt_caps" "$(xl info | awk -F': ' '/^virt_caps/ { print $2 }')"
    [ ! -f /job/http.xl ] || bench_life xenia /job/http.xl 10.0.0.2
    bench_life linux /job/linux-life.xl 10.0.0.3
    return 0
}
