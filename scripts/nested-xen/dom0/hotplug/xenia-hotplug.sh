# shellcheck shell=dash
# Shared part of the test dom0's lean hotplug scripts (vif-bridge, block), sourced by them.
#
# libxl runs a device's script with the action as $1 (vif: online/offline, disk: add/remove)
# and the device's backend directory in XENBUS_PATH. Xen's own scripts (bash, with locking,
# logging and a sharing check that walks xenstore) take 6-10 s per device under QEMU/TCG, where
# every fork is slow; these do the same job for the configurations this harness creates with a
# handful of forks. Users' dom0s keep Xen's scripts: only the nested test VM installs these.
#
# A failure writes hotplug-error and hotplug-status = error (what Xen's scripts write, and what
# netback and libxl look at) and a message on stderr, and exits 1, so that `xl create` fails at
# once with the reason instead of waiting for its timeout. A script's stderr is the toolstack's
# (libxl runs it with xl's or libvirtd's descriptors; Xen's scripts send theirs to
# xen-hotplug.log instead): the message is in `xl create`'s output, which xenia_create reports
# as `out` lines, as is each run's timing line (hp_done).
#
# busybox ash prefers its own applets to PATH: the real tools are called by their full paths.

XENBUS_PATH=${XENBUS_PATH:?XENBUS_PATH not set (run by libxl)}
hp_name=${0##*/}
# When the script started (/proc/uptime: seconds with two decimals), for hp_done.
read -r hp_t0 _ </proc/uptime

# "xenia-hotplug: <script> <action> <backend path> <result> in <seconds> s" on stderr, without
# forking.
hp_done() {
    local t1 c0 c1
    read -r t1 _ </proc/uptime
    c0=${hp_t0%.*}${hp_t0#*.}
    c1=${t1%.*}${t1#*.}
    c1=$((c1 - c0))
    [ "$c1" -ge 0 ] || c1=0
    echo "xenia-hotplug: $hp_name $1 $XENBUS_PATH $2 in $((c1 / 100)).$((c1 / 10 % 10))$((c1 % 10)) s" >&2
}

hp_fail() {
    echo "$hp_name $1 $XENBUS_PATH: $2" >&2
    xenstore-write "$XENBUS_PATH/hotplug-error" "$2" "$XENBUS_PATH/hotplug-status" error
    hp_done "$1" failed
    exit 1
}

# Read the backend directory's own keys in one xenstore-ls (one fork) and set hp_<key> (dashes
# in the key become underscores: physical-device -> hp_physical_device) for the keys named in $@
# (in that form; others are ignored). Returns 1 when the directory cannot be read.
hp_read() {
    local out line key val want
    out=$(xenstore-ls "$XENBUS_PATH" 2>/dev/null) || return 1
    while IFS= read -r line; do
        # Top-level lines only: `key = "value"` (children are indented).
        case $line in " "* | "") continue ;; esac
        key=${line%% = *}
        while :; do
            case $key in *-*) key=${key%%-*}_${key#*-} ;; *) break ;; esac
        done
        val=${line#* = \"}
        val=${val%\"}
        for want in "$@"; do
            # $want comes from the script, never from xenstore: a safe variable name.
            [ "$key" = "$want" ] && eval "hp_$want=\$val"
        done
    done <<HP_EOF
$out
HP_EOF
    return 0
}
