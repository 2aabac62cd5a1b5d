#!/usr/bin/env python3
"""Writes docs/PERFORMANCE.md and the throughput chart (SVG, drawn here with no
plotting library) from bench/compare.sh's results.jsonl and meta.json.

Usage: report.py --results R.jsonl --meta META.json --svg OUT.svg --out OUT.md [--notes NOTES.md]
"""

import argparse
import json
import math
import os
from collections import defaultdict

TARGETS = {
    # metric: (comparison, bound) on Corral ÷ ZooKeeper
    "throughput_1": (">=", 2.0),
    "throughput_3": (">=", 3.0),
    "p99": ("<=", 0.5),
    "cpu": ("<=", 0.25),
    "rss": ("<=", 0.25),
    "restart": ("<=", 0.25),
    "fanout": ("<=", 0.25),
}
OP_ORDER = ["create", "get", "set", "exists", "children", "delete", "mixed"]


def ratio(c, z):
    if c is None or z is None or z == 0:
        return None
    return c / z


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def met(metric, r):
    if r is None:
        return "–"
    cmp, bound = TARGETS[metric]
    ok = r >= bound if cmp == ">=" else r <= bound
    return "✅" if ok else "❌"


def target_text(metric):
    cmp, bound = TARGETS[metric]
    return f"{'≥' if cmp == '>=' else '≤'} {bound:g}×"


def n(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def mib(b):
    return None if b is None else b / 1048576.0


def geomean(values):
    values = [v for v in values if v]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def load_results(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def svg_chart(points, path, title):
    """points: {(server, op): {sessions: ops_s}} → a line chart, x = sessions (log2)."""
    width, height = 760, 420
    left, right, top, bottom = 80, 170, 40, 50
    sessions = sorted({s for series in points.values() for s in series})
    if not sessions:
        return False
    ymax = max(v for series in points.values() for v in series.values()) or 1
    magnitude = 10 ** math.floor(math.log10(ymax))
    step = magnitude if ymax / magnitude > 4 else magnitude / 2
    ytop = math.ceil(ymax / step) * step
    xs = [math.log2(s) for s in sessions]
    xmin, xmax = min(xs), max(xs)
    if xmax == xmin:
        xmax = xmin + 1

    def px(s):
        return left + (math.log2(s) - xmin) / (xmax - xmin) * (width - left - right)

    def py(v):
        return top + (1 - v / ytop) * (height - top - bottom)

    colors = {"create": "#1f77b4", "get": "#2ca02c", "set": "#d62728", "exists": "#9467bd",
              "children": "#8c564b", "delete": "#e377c2", "mixed": "#7f7f7f"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>']
    y = 0
    while y <= ytop + 1e-9:
        out.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{width - right}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:,.0f}</text>')
        y += step
    for s in sessions:
        out.append(f'<line x1="{px(s):.1f}" y1="{top}" x2="{px(s):.1f}" y2="{height - bottom}" stroke="#eee"/>')
        out.append(f'<text x="{px(s):.1f}" y="{height - bottom + 18}" text-anchor="middle">{s}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
               f'sessions (each with 8 requests in flight)</text>')
    out.append(f'<text x="18" y="{(top + height - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 18 {(top + height - bottom) / 2})">operations per second</text>')
    out.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>')
    legend_y = top + 10
    for (server, op) in sorted(points, key=lambda k: (OP_ORDER.index(k[1]) if k[1] in OP_ORDER else 99, k[0])):
        series = points[(server, op)]
        color = colors.get(op, "black")
        dash = "" if server == "corral" else ' stroke-dasharray="6,4"'
        coords = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in sorted(series.items()))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{coords}"/>')
        marker = "circle" if server == "corral" else "rect"
        for s, v in sorted(series.items()):
            if marker == "circle":
                out.append(f'<circle cx="{px(s):.1f}" cy="{py(v):.1f}" r="3.5" fill="{color}"/>')
            else:
                out.append(f'<rect x="{px(s) - 3.5:.1f}" y="{py(v) - 3.5:.1f}" width="7" height="7" fill="white" stroke="{color}"/>')
        lx = width - right + 12
        out.append(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 26}" y2="{legend_y}" stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 32}" y="{legend_y + 4}">{op} · {"Corral" if server == "corral" else "ZooKeeper"}</text>')
        legend_y += 18
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--svg", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--notes")
    a = ap.parse_args()

    meta = json.load(open(a.meta))
    rows = load_results(a.results)
    load = defaultdict(dict)  # (nodes, op, sessions) -> server -> report
    fanout, memory = {}, {}
    for row in rows:
        r = row["report"]
        if row["kind"] == "load":
            load[(row["nodes"], r["op"], r["sessions"])][row["server"]] = r
        elif row["kind"] == "fanout":
            fanout[row["server"]] = r
        elif row["kind"] == "memory":
            memory[row["server"]] = row

    matrix_sessions = [int(s) for s in meta["sessions"].split()]
    L = []
    w = L.append
    w("# Corral performance, side by side with Apache ZooKeeper")
    w("")
    w("Written by `bench/compare.sh` (do not edit by hand: rerun it; the profile notes at")
    w("the end come from `bench/PROFILE-NOTES.md`). Ratios are Corral ÷ ZooKeeper; a")
    w("target is met when the ratio is on the right side of the bound. Every figure is")
    w("reported, met or not.")
    w("")
    if meta.get("smoke"):
        w("> **Smoke run** (`--smoke`): 1-second runs and 1k znodes, to keep the script")
        w("> working. These figures mean nothing.")
        w("")
    w("## Where and how")
    w("")
    w(f"- Date: {meta['date']}")
    w(f"- Machine: {meta['nproc']} cores ({meta['cpu']}), {meta['memory']}, kernel {meta['kernel']}")
    w(f"- Disk (data and logs of both servers): {meta['disk']}; {meta['dsync']}")
    w(f"- Load average when the run started: {meta['loadavg']}. **The machine has 2 cores shared")
    w("  with other engineers' builds**, and the load generator runs on the same 2 cores as the")
    w("  server; each Corral/ZooKeeper pair below was run back to back, so both saw similar")
    w("  conditions, but absolute figures are noisy and low.")
    w(f"- Apache ZooKeeper {meta['zookeeper']} (Debian package), {meta['java']}, `-Xmx2g`, JVM defaults")
    w("  otherwise; fsync on (its default `forceSync=yes`).")
    w(f"- Corral {meta['corral']}, release build; fsync on (group-commit `fdatasync`, always on).")
    w("- Both get the same zoo.cfg (tickTime=2000, snapCount default 100000, maxClientCnxns=0,")
    w("  admin server off), data and transaction log in one directory on the same disk,")
    base = int(meta.get("port_base", 23100))
    w(f"  loopback ports {base + 1} (Corral) and {base + 2} (ZooKeeper); 3-node: clients on")
    w(f"  {base + 11}–{base + 13} (Corral) and {base + 41}–{base + 43} (ZooKeeper).")
    w("")
    w("Command:")
    w("")
    w("```sh")
    w(f"bench/compare.sh {meta.get('args', '')}".rstrip())
    w("```")
    w("")
    w("Each throughput run is")
    w("")
    w("```sh")
    w(f"corral bench --hosts HOST:PORT --op OP --sessions N --inflight {meta['inflight']} --size {meta['size']} \\")
    w(f"    --duration {meta['duration']} --warmup {meta['warmup']} --server-pid PID --json")
    w("```")
    w("")
    w("N sessions (one TCP connection each) × 8 requests in flight each, "
      f"{meta['size']}-byte payloads, {meta['warmup']} s warm-up then {meta['duration']} s measured. "
      "get/set/exists use 1000 pre-created nodes picked at random; children lists a node with 10 "
      "children; create makes new nodes; delete removes nodes pre-created (untimed) before the run. "
      "The nodes a create or delete run leaves are deleted after its measured window (untimed, "
      "by `corral bench` itself), so that every run finds both servers holding the same tree "
      "(until this was done, the faster server made more nodes in each create run and then "
      "paid for bigger snapshots in every later write run). "
      "Server CPU is utime+stime of the server process(es) from `/proc/PID/stat` over the measured "
      "window, divided by the operations completed in it.")
    w("")

    # ---- summary against the targets
    w("## Targets (Corral ÷ ZooKeeper)")
    w("")
    w("| target | bound | figure | met |")
    w("|---|---|---|---|")

    def summarize(nodes, metric, getter, label, bound_metric=None):
        ratios = []
        for (nd, op, s), servers in sorted(load.items()):
            if nd != nodes or s not in matrix_sessions or "corral" not in servers or "zookeeper" not in servers:
                continue
            r = ratio(getter(servers["corral"]), getter(servers["zookeeper"]))
            if r is not None:
                ratios.append((op, s, r))
        if not ratios:
            return
        bm = bound_metric or metric
        ok = sum(1 for _, _, r in ratios if met(bm, r) == "✅")
        g = geomean([r for _, _, r in ratios])
        worst = min(ratios, key=lambda t: t[2]) if TARGETS[bm][0] == ">=" else max(ratios, key=lambda t: t[2])
        w(f"| {label} | {target_text(bm)} | geometric mean {fmt_ratio(g)}; worst {fmt_ratio(worst[2])} "
          f"({worst[0]} ×{worst[1]}); met in {ok} of {len(ratios)} runs | {met(bm, g)} |")

    thr = lambda r: r["throughput_ops_s"]
    p99 = lambda r: (r.get("latency_us") or {}).get("p99")
    cpu = lambda r: (r.get("server") or {}).get("cpu_us_per_op")
    summarize(1, "throughput_1", thr, "throughput, 1 node")
    summarize(3, "throughput_3", thr, "throughput, 3 nodes")
    summarize(1, "p99", p99, "p99 latency, 1 node")
    summarize(3, "p99", p99, "p99 latency, 3 nodes")
    summarize(1, "cpu", cpu, "server CPU per op, 1 node")
    summarize(3, "cpu", cpu, "server CPU per op, 3 nodes")
    if "corral" in memory and "zookeeper" in memory:
        c, z = memory["corral"], memory["zookeeper"]
        r = ratio(c["rss_full"], z["rss_full"])
        w(f"| RSS with {c['znodes']:,} znodes | {target_text('rss')} | {n(mib(c['rss_full']))} MiB ÷ "
          f"{n(mib(z['rss_full']))} MiB = {fmt_ratio(r)} | {met('rss', r)} |")
        r = ratio(c["restart_ms"], z["restart_ms"])
        w(f"| restart to serving, {c['znodes']:,} znodes | {target_text('restart')} | {n(c['restart_ms'])} ms ÷ "
          f"{n(z['restart_ms'])} ms = {fmt_ratio(r)} | {met('restart', r)} |")
    if "corral" in fanout and "zookeeper" in fanout:
        c, z = fanout["corral"]["fanout"], fanout["zookeeper"]["fanout"]
        r = ratio(c["median_ms"], z["median_ms"])
        w(f"| watch fan-out to {c['watchers']:,} sessions (median round) | {target_text('fanout')} | "
          f"{n(c['median_ms'], 1)} ms ÷ {n(z['median_ms'], 1)} ms = {fmt_ratio(r)} | {met('fanout', r)} |")
    w("")
    w("The summary rows use the main matrix (sessions " + ", ".join(map(str, matrix_sessions)) +
      "); a ✅ on a geometric mean does not mean every run met the bound — see the tables.")
    w("")

    # ---- per-run tables
    for nodes in (1, 3):
        keys = sorted((k for k in load if k[0] == nodes),
                      key=lambda k: (k[2], OP_ORDER.index(k[1]) if k[1] in OP_ORDER else 99))
        if not keys:
            continue
        tm = "throughput_1" if nodes == 1 else "throughput_3"
        w(f"## {nodes}-node: throughput, latency, CPU per operation")
        w("")
        if nodes == 3:
            w("Both ensembles run at the same time on loopback (3 Corral and 3 ZooKeeper processes on the "
              "2 cores; the one not under load only heartbeats). Clients get all three members in the "
              "connect string and spread over them at random; server CPU is summed over the three "
              "members.")
            w("")
        w("| op | sessions | Corral ops/s | ZooKeeper ops/s | ratio | Corral p99 µs | ZooKeeper p99 µs | ratio | "
          "Corral CPU µs/op | ZooKeeper CPU µs/op | ratio |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for k in keys:
            s = load[k]
            c, z = s.get("corral"), s.get("zookeeper")
            if not c or not z:
                continue
            rt, rp, rc = ratio(thr(c), thr(z)), ratio(p99(c), p99(z)), ratio(cpu(c), cpu(z))
            w(f"| {k[1]} | {k[2]} | {n(thr(c))} | {n(thr(z))} | {fmt_ratio(rt)} {met(tm, rt)} | "
              f"{n(p99(c))} | {n(p99(z))} | {fmt_ratio(rp)} {met('p99', rp)} | "
              f"{n(cpu(c), 1)} | {n(cpu(z), 1)} | {fmt_ratio(rc)} {met('cpu', rc)} |")
        w("")
        w(f"Latency in µs (p50 / p99 / p99.9 / max), errors, and the load generator's own CPU:")
        w("")
        w("| op | sessions | Corral p50 / p99 / p99.9 / max | ZooKeeper p50 / p99 / p99.9 / max | errors C / Z | bench CPU s C / Z |")
        w("|---|---|---|---|---|---|")
        for k in keys:
            s = load[k]
            c, z = s.get("corral"), s.get("zookeeper")
            if not c or not z:
                continue

            def lat(r):
                l = r.get("latency_us") or {}
                return " / ".join(n(l.get(q)) for q in ("p50", "p99", "p999", "max"))

            w(f"| {k[1]} | {k[2]} | {lat(c)} | {lat(z)} | {c['errors']} / {z['errors']} | "
              f"{c['client_cpu_s']:.1f} / {z['client_cpu_s']:.1f} |")
        w("")

    # ---- chart
    points = defaultdict(dict)
    for (nodes, op, s), servers in load.items():
        if nodes != 1 or op not in ("create", "get", "set"):
            continue
        for server, r in servers.items():
            points[(server, op)][s] = r["throughput_ops_s"]
    if svg_chart(points, a.svg, "1-node throughput against sessions (solid: Corral, dashed: ZooKeeper)"):
        rel = os.path.relpath(a.svg, os.path.dirname(os.path.abspath(a.out)))
        w("## Throughput against sessions (1 node)")
        w("")
        w(f"![throughput against sessions]({rel})")
        w("")
        w("The points at 1, 16 and 64 sessions were measured after the main matrix, so both servers "
          "held more nodes by then (every create run and delete pre-fill leaves its nodes); Corral's "
          "writes slow down with the tree size, see the profile notes.")
        w("")
        w("| op | sessions | Corral ops/s | ZooKeeper ops/s | ratio |")
        w("|---|---|---|---|---|")
        for op in ("create", "get", "set"):
            ss = sorted(set(points.get(("corral", op), {})) | set(points.get(("zookeeper", op), {})))
            for s in ss:
                c, z = points[("corral", op)].get(s), points[("zookeeper", op)].get(s)
                w(f"| {op} | {s} | {n(c)} | {n(z)} | {fmt_ratio(ratio(c, z))} |")
        w("")

    # ---- memory and restart
    if memory:
        w("## Memory and restart (1 node)")
        w("")
        c0 = next(iter(memory.values()))
        w(f"{c0['znodes']:,} znodes of {meta['size']} bytes created with `corral bench --op fill --count "
          f"{c0['znodes']} --sessions 8 --inflight 32` (1000 children per parent) on a fresh server; "
          "RSS is VmRSS from `/proc/PID/status` 2 s after the fill. Then `kill -9`, start again, and "
          "time until `corral bench --op probe` has read the last node created. ZooKeeper's RSS is "
          "mostly its Java heap (`-Xmx2g`, G1), so it depends on when the collector last ran and how "
          "far the heap grew; its RSS after the restart (the same data, loaded in one go) is the "
          "steadier figure.")
        w("")
        w("| | Corral | ZooKeeper | ratio |")
        w("|---|---|---|---|")
        c, z = memory.get("corral"), memory.get("zookeeper")

        def row(label, key, conv=lambda v: v, digits=0):
            cv = conv(c[key]) if c else None
            zv = conv(z[key]) if z else None
            w(f"| {label} | {n(cv, digits)} | {n(zv, digits)} | {fmt_ratio(ratio(cv, zv))} |")

        row("RSS empty, MiB", "rss_empty", mib)
        row(f"RSS with {c0['znodes']:,} znodes, MiB", "rss_full", mib)
        row("RSS after restart, MiB", "rss_restart", mib)
        row("data directory after the fill, MiB", "disk_bytes", mib)
        row("restart to serving, ms", "restart_ms")
        cf = c["report"]["throughput_ops_s"] if c else None
        zf = z["report"]["throughput_ops_s"] if z else None
        w(f"| fill rate, creates/s | {n(cf)} | {n(zf)} | {fmt_ratio(ratio(cf, zf))} |")
        w("")

    if fanout:
        w("## Watch fan-out (1 node)")
        w("")
        c0 = next(iter(fanout.values()))["fanout"]
        w(f"{c0['watchers']:,} sessions each set a data watch (getData with watch) on one node; one more "
          "session sets its data; the figure is the time from sending that setData until the last of "
          f"the {c0['watchers']:,} watchers has its event, per round (`corral bench --op watch-fanout "
          f"--sessions {c0['watchers']}`).")
        w("")
        w("| | Corral | ZooKeeper | ratio |")
        w("|---|---|---|---|")
        c = fanout.get("corral", {}).get("fanout")
        z = fanout.get("zookeeper", {}).get("fanout")
        for label, key in (("median round, ms", "median_ms"), ("fastest round, ms", "min_ms"),
                           ("slowest round, ms", "max_ms")):
            cv, zv = (c or {}).get(key), (z or {}).get(key)
            w(f"| {label} | {n(cv, 1)} | {n(zv, 1)} | {fmt_ratio(ratio(cv, zv))} |")
        fc = ", ".join(f"{v:.1f}" for v in (c or {}).get("rounds_ms", []))
        fz = ", ".join(f"{v:.1f}" for v in (z or {}).get("rounds_ms", []))
        w(f"| every round, ms | {fc} | {fz} | |")
        w(f"| missed watches | {(c or {}).get('missed', '–')} | {(z or {}).get('missed', '–')} | |")
        w("")

    if not any(k[0] == 3 for k in load):
        w("3-node ensembles were not measured in this run (`bench/compare.sh --ensemble` adds them).")
        w("")

    if a.notes and os.path.exists(a.notes):
        with open(a.notes) as f:
            w(f.read().rstrip())
        w("")

    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
