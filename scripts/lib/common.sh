# shellcheck shell=bash
# Shared helpers of the scripts in scripts/ (sourced, not executed).
#
# Provides:
#   XENIA_ROOT            absolute path of the repository
#   xenia_info/warn/die   messages on stderr
#   xenia_examples        names of the examples (dirs under examples/ with a Cargo.toml)
#   xenia_need_packages   install Debian packages that provide missing commands
#   xenia_on_xen_dom0     true when running in a real Xen control domain
#   xenia_cargo_xenia     build cargo-xenia and print its path

XENIA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export XENIA_ROOT

xenia_info() { printf '%s\n' "$*" >&2; }
xenia_warn() { printf 'warning: %s\n' "$*" >&2; }
xenia_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Print the example names, one a line, sorted.
xenia_examples() {
    local d
    for d in "$XENIA_ROOT"/examples/*/; do
        [ -f "$d/Cargo.toml" ] && basename "$d"
    done | sort
}

# Fail with the list of examples unless $1 is one of them.
xenia_check_example() {
    local ex=$1
    if [ -z "$ex" ] || [ ! -f "$XENIA_ROOT/examples/$ex/Cargo.toml" ]; then
        {
            [ -n "$ex" ] && printf "error: unknown example '%s'\n" "$ex"
            printf 'examples:\n'
            xenia_examples | sed 's/^/  /'
        } >&2
        exit 1
    fi
}

# apt-get update at most once per process tree (marker in the environment).
xenia_apt_update_once() {
    if [ "${XENIA_APT_UPDATED:-}" != 1 ]; then
        xenia_info "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || xenia_die "apt-get update failed"
        export XENIA_APT_UPDATED=1
    fi
}

# xenia_need_packages CMD:PKG ...
# For every CMD that is not found (also looking in /sbin and /usr/sbin), install PKG with
# apt-get. Runs apt-get update once first when the package index is missing or stale.
xenia_need_packages() {
    local spec cmd pkg missing=()
    for spec in "$@"; do
        cmd=${spec%%:*}
        pkg=${spec#*:}
        if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    # De-duplicate while keeping order.
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
    [ "$(id -u)" = 0 ] || xenia_die "missing host packages (${missing[*]}); run as root or install them"
    command -v apt-get >/dev/null || xenia_die "missing host packages (${missing[*]}) and no apt-get"
    xenia_info "installing host packages: ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2 </dev/null; then
        xenia_apt_update_once
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >&2 </dev/null || xenia_die "apt-get install ${missing[*]} failed"
    fi
}

# The guest target (x86_64-unknown-none) of the toolchain rust-toolchain.toml pins. rustup
# installs a pinned toolchain with its targets, but not when that toolchain was installed before
# without them: then `cargo build --target` fails with "can't find crate for `core`". Adds it.
xenia_need_guest_target() {
    local sysroot
    sysroot=$(cd "$XENIA_ROOT" && rustc --print sysroot 2>/dev/null) ||
        xenia_die "rustc is not working here (install Rust with rustup: https://rustup.rs)"
    [ -d "$sysroot/lib/rustlib/x86_64-unknown-none" ] && return 0
    command -v rustup >/dev/null 2>&1 ||
        xenia_die "the Rust target x86_64-unknown-none is missing and there is no rustup to add it"
    xenia_info "adding the guest target: rustup target add x86_64-unknown-none"
    (cd "$XENIA_ROOT" && rustup target add x86_64-unknown-none >&2 </dev/null) ||
        xenia_die "rustup target add x86_64-unknown-none failed"
}

# True when this machine is a real Xen control domain with the xl toolstack.
xenia_on_xen_dom0() {
    [ -r /proc/xen/capabilities ] && grep -q control_d /proc/xen/capabilities 2>/dev/null &&
        command -v xl >/dev/null 2>&1
}

# Build this checkout's cargo-xenia (cargo's output on stderr) and print the binary's path: the
# scripts build and run through it, so there is one implementation of both.
xenia_cargo_xenia() {
    (cd "$XENIA_ROOT" && cargo build --quiet -p cargo-xenia >&2) ||
        xenia_die "cannot build cargo-xenia (cargo build -p cargo-xenia)"
    printf '%s\n' "$(xenia_target_dir)/debug/cargo-xenia"
}

# Cargo's target directory (honours CARGO_TARGET_DIR like cargo does).
xenia_target_dir() {
    local t=${CARGO_TARGET_DIR:-$XENIA_ROOT/target}
    case $t in /*) ;; *) t=$XENIA_ROOT/$t ;; esac
    printf '%s\n' "$t"
}
