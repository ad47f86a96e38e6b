#!/usr/bin/env python3
"""Read the serial log of a `scripts/bench` run and print its results as a table.

Usage: bench/report.py net|block|lifecycle LOG [--info KEY=VALUE ...]

Sources, all from the one nested boot the log records:
  * `@@XENIA|bench|-|<t>|<key> <value>` lines: what dom0 measured (bench/dom0/bench.sh)
  * `BENCH ...` lines on a guest's console (`con` lines while it ran, `log` lines of the dump
    after its end): what the guests measured (examples/netbench, examples/blkbench,
    bench/linux/init with benchtool)
  * --info: facts from the host (image sizes, settings)
A value that is not in the log is printed as "not measured" with the reason the log gives when
it gives one. Nothing is estimated. Exit status 0 when every row of both sides has a number.
"""

import argparse
import re
import sys

MARK = "@@XENIA|"
XENIA_DOMS = {"http", "netbench", "netbench-rx", "blkbench"}
LINUX_DOMS = {"linux-net", "linux-block"}


def parse(path):
    bench = {}
    guest = {"xenia": {}, "linux": {}}
    ends = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            at = line.find(MARK)
            if at < 0:
                continue
            parts = line[at + len(MARK):].rstrip("\n").split("|", 3)
            if len(parts) < 4:
                continue
            kind, dom, payload = parts[0], parts[1], parts[3]
            if kind == "bench":
                key, _, value = payload.partition(" ")
                bench[key] = value.strip()
            elif kind == "end":
                ends[dom] = payload
            elif kind in ("con", "log") and "BENCH " in payload:
                side = "xenia" if dom in XENIA_DOMS else "linux" if dom in LINUX_DOMS else None
                if side is None:
                    continue
                text = payload[payload.find("BENCH ") + 6:]
                words = text.split()
                if not words:
                    continue
                what = words[0]
                for w in words[1:]:
                    k, eq, v = w.partition("=")
                    if eq:
                        guest[side].setdefault(f"{what}.{k}", v)
                if what == "error" or what.startswith("benchtool:"):
                    guest[side].setdefault("error", text)
    return bench, guest, ends


def num(v):
    if v is None:
        return None
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|k|M)?", v)
    if not m:
        return None
    x = float(m.group(1))
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3, "k": 1e3, "M": 1e6}
    return x * scale.get(m.group(2), 1.0) if m.group(2) else x


def fmt(x, unit=""):
    if x is None:
        return "not measured"
    if x >= 100:
        s = f"{x:,.0f}"
    elif x >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return f"{s}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def table(rows, notes):
    head = ("metric", "Xenia", "Linux", "Xenia/Linux")
    cells = [head] + [(m, fmt(x, u), fmt(y, u), ratio(x, y) if r else "-") for m, x, y, u, r in rows]
    w = [max(len(c[i]) for c in cells) for i in range(4)]
    out = []
    for i, c in enumerate(cells):
        out.append("| " + " | ".join(c[j].ljust(w[j]) if j == 0 else c[j].rjust(w[j]) for j in range(4)) + " |")
        if i == 0:
            out.append("|-" + "-|-".join("-" * w[j] for j in range(4)) + "-|")
    print("\n".join(out))
    for n in notes:
        print(f"  note: {n}")


def why(bench, guest, ends, side, keys, doms):
    """Reasons a side's numbers are missing, from the log."""
    reasons = []
    for k in keys:
        if k in bench:
            reasons.append(f"{side}: {bench[k]}")
    if "error" in guest[side]:
        reasons.append(f"{side} guest: {guest[side]['error']}")
    for d in doms:
        if d in ends and ends[d] not in ("poweroff",):
            reasons.append(f"{d} ended: {ends[d]}")
    return reasons


def report_net(bench, guest, ends, info):
    x, l = "xenia", "linux"

    def b(side, key):
        return num(bench.get(f"{side}.{key}"))

    def g(side, key):
        return num(guest[side].get(key))

    conns, secs, mib = info.get("conns", "?"), info.get("secs", "?"), info.get("mib", "?")
    def min_mem(side):
        ok = [int(k.split(".")[2]) for k, v in bench.items() if k.startswith(f"{side}.mem.") and v == "ok"]
        return float(min(ok)) if ok else None

    def tried(side):
        return [int(k.split(".")[2]) for k in bench if k.startswith(f"{side}.mem.")]

    def boot(side):
        ready, created = b(side, "http.ready_secs"), b(side, "http.create_secs")
        return ready - created if ready is not None and created is not None else None

    xen_img, xen_elf = num(info.get("xenia_image")), num(info.get("xenia_image_elf"))
    lin_img = None
    if info.get("linux_kernel") and info.get("linux_initrd"):
        lin_img = float(info["linux_kernel"]) + float(info["linux_initrd"])
    slow = (f" + {info.get('slow_conns', '?')} slow + {info.get('huge_conns', '?')} huge-body conns"
            if any(k.endswith(".attack.slowloris") for k in bench) else "")
    rows = [
        (f"HTTP requests/s (wrk, keep-alive, {conns} conns, {secs} s)", b(x, "http.rps"), b(l, "http.rps"), "", True),
        ("HTTP latency p50 (ms)", b(x, "http.latency_p50"), b(l, "http.latency_p50"), "", True),
        ("HTTP latency p99 (ms)", b(x, "http.latency_p99"), b(l, "http.latency_p99"), "", True),
        ("HTTP requests/s (wrk, keep-alive, 256 conns)", b(x, "http256.rps"), b(l, "http256.rps"), "", True),
        (f"HTTP requests/s under attack ({info.get('syn_rate', '?')} spoofed SYN/s{slow})",
         b(x, "attack.rps"), b(l, "attack.rps"), "", True),
        ("HTTP latency p99 under attack (ms)", b(x, "attack.latency_p99"), b(l, "attack.latency_p99"), "", True),
        ("HTTP response size (bytes, headers + body)", b(x, "http.response_bytes"), b(l, "http.response_bytes"), "", False),
        (f"TCP bulk guest->dom0 MiB/s ({mib} MiB, timed by dom0)", b(x, "bulk.dom0_mibps"), b(l, "bulk.dom0_mibps"), "", True),
        (f"TCP bulk guest->dom0 MiB/s ({mib} MiB, timed by the guest)", g(x, "send.mibps"), g(l, "send.mibps"), "", True),
        (f"TCP bulk dom0->guest MiB/s ({mib} MiB, timed by dom0)", b(x, "bulk_rx.dom0_mibps"), b(l, "bulk_rx.dom0_mibps"), "", True),
        (f"TCP bulk dom0->guest MiB/s ({mib} MiB, timed by the guest)", g(x, "recv.mibps"), g(l, "sink.mibps"), "", True),
        ("image size as booted (KiB; Xenia: gzip ELF; Linux: vmlinuz + initramfs)",
         xen_img / 1024 if xen_img else None, lin_img / 1024 if lin_img else None, "", True),
        ("image size, ELF uncompressed (KiB; Xenia only)", xen_elf / 1024 if xen_elf else None,
         None, "", False),
        ("`xl create` returned -> first HTTP 200 (s)", boot(x), boot(l), "", True),
        ("`xl create` itself (s)", b(x, "http.create_secs"), b(l, "http.create_secs"), "", True),
        (f"idle guest CPU over {info.get('idle_secs', '?')} s (s, xl list Time)", b(x, "idle.cpu_secs"),
         b(l, "idle.cpu_secs"), "", False),
        ("smallest memory= serving HTTP (MiB)", min_mem(x), min_mem(l), "", True),
        ("memory= of the benchmark runs (MiB)", num(info.get("xenia_memory")), num(info.get("linux_memory")), "", False),
    ]
    notes = []
    for side in (x, l):
        t = tried(side)
        if t:
            res = ", ".join(f"{m}: {bench[f'{side}.mem.{m}']}" for m in sorted(t, reverse=True))
            if min_mem(side) is not None and min_mem(side) == min(t):
                res += " (it served at every size tried: the limit is lower)"
            notes.append(f"{side} memory probe (MiB: served?): {res}")
    xs, ls = bench.get("xenia.http.body_sha256"), bench.get("linux.http.body_sha256")
    if xs and ls:
        notes.append("same page body on both" if xs == ls else f"page bodies differ (sha256 {xs} vs {ls})")
    for side in (x, l):
        for k in ("http.non2xx", "http.socket_errors", "attack.non2xx", "attack.socket_errors"):
            if f"{side}.{k}" in bench:
                notes.append(f"{side} wrk {k.replace('.', ' ')}: {bench[f'{side}.{k}']}")
        for tool in ("synflood", "slowloris"):
            if f"{side}.attack.{tool}" in bench:
                notes.append(f"{side} attacker {tool}: {bench[f'{side}.attack.{tool}']}")
    for side, doms in ((x, ("http", "netbench", "netbench-rx")), (l, ("linux-net",))):
        notes += why(bench, guest, ends, side, [f"{side}.http.error", f"{side}.bulk.error", f"{side}.bulk_rx.error"], doms)
    for m in info.get("missing", "").split(","):
        if m:
            notes.append(f"Xenia: {m}")
    table(rows, notes)
    return all(r[1] is not None and r[2] is not None for r in rows if r[4])


def report_block(bench, guest, ends, info):
    x, l = "xenia", "linux"

    def g(side, key):
        return num(guest[side].get(key))

    mib, rsecs, qd = info.get("mib", "?"), info.get("rand_secs", "?"), info.get("qd", "?")
    rows = [
        (f"sequential write MiB/s (1 MiB requests, {mib} MiB + flush)", g(x, "blk.seq_write_mibps"), g(l, "blk.seq_write_mibps"), "", True),
        (f"sequential read MiB/s (1 MiB requests, {mib} MiB)", g(x, "blk.seq_read_mibps"), g(l, "blk.seq_read_mibps"), "", True),
        (f"random read IOPS (4 KiB, queue depth 1, {rsecs} s)", g(x, "blk.randread_iops"), g(l, "blk.randread_iops"), "", True),
        (f"random read IOPS (4 KiB, queue depth {qd}, {rsecs} s)", g(x, "blk.randread_qd_iops"), g(l, "blk.randread_qd_iops"), "", True),
    ]
    notes = []
    if "disk.bytes" in bench:
        notes.append(f"backing file: {int(bench['disk.bytes']) >> 20} MiB raw file in dom0's tmpfs (zeroed and rewritten in place for each guest)")
    notes.append("Linux: bench/tools/benchtool (O_DIRECT pread/pwrite on /dev/xvda, one request at a time, then "
                 f"{qd} in flight with Linux native AIO from one thread, as fio's libaio engine; "
                 "fio not used: its Debian package needs ceph/gluster/rdma libraries)")
    notes += why(bench, guest, ends, x, [], ("blkbench",))
    notes += why(bench, guest, ends, l, [], ("linux-block",))
    for m in info.get("missing", "").split(","):
        if m:
            notes.append(f"Xenia: {m}")
    table(rows, notes)
    return all(r[1] is not None and r[2] is not None for r in rows)


def report_lifecycle(bench, guest, ends, info):
    x, l = "xenia", "linux"

    def b(side, key, scale=1.0):
        v = num(bench.get(f"{side}.life.{key}"))
        return v * scale if v is not None else None

    def migrated(side):
        return f"{side}.life.fail.migrate-cmd" not in bench

    def mig(side, key):
        return b(side, key, 1e-3) if migrated(side) else None

    def attach_200(side):
        a, h = b(side, "attach_ms", 1e-3), b(side, "detach.http_secs")
        return a + h if a is not None and h is not None else None

    rows = [
        ("memory= (MiB, as xl list shows it)", b(x, "memory_mib"), b(l, "memory_mib"), "", False),
        ("`xl save` time (s)", b(x, "save_ms", 1e-3), b(l, "save_ms", 1e-3), "", True),
        ("`xl restore` time (s)", b(x, "restore_ms", 1e-3), b(l, "restore_ms", 1e-3), "", True),
        ("saved image size (bytes)", b(x, "restore.image_bytes"), b(l, "restore.image_bytes"), "", True),
        ("longest gap a client saw during save + restore (s)", b(x, "restore.gap_ms", 1e-3),
         b(l, "restore.gap_ms", 1e-3), "", True),
        ("`xl save -c` (checkpoint) time (s)", b(x, "ckpt_ms", 1e-3), b(l, "ckpt_ms", 1e-3), "", True),
        ("longest gap a client saw during the checkpoint (s)", b(x, "checkpoint.gap_ms", 1e-3),
         b(l, "checkpoint.gap_ms", 1e-3), "", True),
        ("live migration: longest gap a client saw (s)", mig(x, "migrate.gap_ms"), mig(l, "migrate.gap_ms"), "", True),
        ("live migration: `xl migrate` time (s)", mig(x, "migrate.cmd_ms"), mig(l, "migrate.cmd_ms"), "", True),
        ("`xl network-detach` time (s)", b(x, "detach_ms", 1e-3), b(l, "detach_ms", 1e-3), "", True),
        ("`xl network-attach` -> first HTTP 200 (s)", attach_200(x), attach_200(l), "", True),
        ("detach + attach -> first HTTP 200, in all (s)", b(x, "detach.cmd_ms", 1e-3), b(l, "detach.cmd_ms", 1e-3), "", True),
        ("longest gap a client saw during detach + attach (s)", b(x, "detach.gap_ms", 1e-3),
         b(l, "detach.gap_ms", 1e-3), "", True),
    ]
    notes = ["gaps: dom0's xenia-lifecycle-client asks GET /health on a new connection every 50 ms "
             "(2 s timeouts) and reports the longest time between two answers"]
    for side in (x, l):
        if f"{side}.life.error" in bench:
            notes.append(f"{side}: {bench[f'{side}.life.error']}")
        if f"{side}.life.fail.migrate-cmd" in bench:
            why_not = bench.get(f"{side}.life.migrate.error") or bench[f"{side}.life.fail.migrate-cmd"]
            notes.append(f"{side} live migration not measured: xl migrate failed: {why_not}")
        for step in ("checkpoint", "restore", "migrate", "detach"):
            if step != "migrate" and f"{side}.life.{step}.error" in bench:
                notes.append(f"{side} {step}: {bench[f'{side}.life.{step}.error']}")
            same = "kept connection answered again" if bench.get(f"{side}.life.{step}.same_connection") == "ok" else None
            after = bench.get(f"{side}.life.{step}.served_after_ms")
            if same or after:
                notes.append(f"{side} after {step}: " + ", ".join(
                    p for p in (same, f"a new connection answered {after} ms after the command" if after else None) if p))
        for k, v in sorted(bench.items()):
            if k.startswith(f"{side}.life.fail.") and k != f"{side}.life.fail.migrate-cmd":
                notes.append(f"{side} FAILED {k.split('.', 3)[3]}: {v}")
    if "virt_caps" in bench:
        notes.append(f"xl info virt_caps: {bench['virt_caps']}")
    for m in info.get("missing", "").split(","):
        if m:
            notes.append(f"Xenia: {m}")
    table(rows, notes)
    return all(r[1] is not None and r[2] is not None for r in rows if r[4])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["net", "block", "lifecycle"])
    ap.add_argument("log")
    ap.add_argument("--info", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    info = dict(i.split("=", 1) for i in a.info)
    bench, guest, ends = parse(a.log)
    report = {"net": report_net, "block": report_block, "lifecycle": report_lifecycle}[a.kind]
    complete = report(bench, guest, ends, info)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
