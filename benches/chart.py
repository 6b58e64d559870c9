#!/usr/bin/env python3
"""Draws benches/roundtrip.svg: cost of one message (seal + open) against payload size,
for each rpcseal mode and each peer, from the results of

    cargo bench --bench envelope -- roundtrip/
    python3 benches/chart.py [--note TEXT] [--criterion DIR] [--out FILE]

It reads criterion's own output (target/criterion/**/new/{benchmark,estimates}.json: the
median of each benchmark), needs only the Python standard library, and writes a
self-contained SVG (log-log axes). The note under the title says on what machine, when and
with which command the figures were measured; by default it is read off this machine.
"""

import argparse
import datetime
import glob
import json
import math
import os
import platform
import sys
from xml.sax.saxutils import escape

# Series in drawing order: (criterion function id, legend label, colour, dash): dash is
# False (solid), True (dashed) or "dot" (dotted).
SERIES = [
    ("rpcseal_mac", "rpcseal, MAC mode", "#1b6ac9", False),
    ("rpcseal_signed", "rpcseal, signed mode", "#0a8f5a", False),
    ("rpcseal_sign-only", "rpcseal, sign-only mode", "#7a3fb8", False),
    ("rpcseal_mac_xwing", "rpcseal, MAC mode, X-Wing session", "#1b6ac9", "dot"),
    ("floor_mac", "floor: the crates, no envelope", "#1b6ac9", True),
    ("hybrid_hpke_ed25519", "HPKE seal + Ed25519 per message", "#d1495b", False),
    ("age_x25519", "age, one X25519 recipient", "#e08a1e", False),
    ("sealed_box", "sealed box (crypto_box)", "#6b6b6b", False),
]

W, H = 960, 600
LEFT, RIGHT, TOP, BOTTOM = 90, 310, 80, 70


def machine_note():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    day = datetime.date.today().isoformat()
    return (
        f"{model}, {cores} cores, {day}; "
        "cargo bench --bench envelope -- roundtrip/ (median per message)"
    )


def load(criterion_dir):
    """{function_id: {size: median_ns}} for the roundtrip/<size> groups."""
    data = {}
    pattern = os.path.join(criterion_dir, "**", "new", "benchmark.json")
    for path in glob.glob(pattern, recursive=True):
        with open(path) as f:
            bench = json.load(f)
        group = bench.get("group_id", "")
        if not group.startswith("roundtrip/"):
            continue
        try:
            size = int(group.split("/", 1)[1])
        except ValueError:
            continue
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            median = json.load(f)["median"]["point_estimate"]
        data.setdefault(bench["function_id"], {})[size] = median
    return data


def fmt_size(n):
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n // div} {unit}"
    return f"{n} B"


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:g} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:g} \u00b5s"
    return f"{ns:g} ns"


def draw(data, note):
    sizes = sorted({s for series in data.values() for s in series})
    times = [t for series in data.values() for t in series.values()]
    if not sizes or not times:
        sys.exit("no roundtrip/<size> results under the criterion directory: run the bench first")
    x0, x1 = math.log10(sizes[0]), math.log10(sizes[-1])
    y0 = math.floor(math.log10(min(times)))
    y1 = math.ceil(math.log10(max(times)))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(size):
        return LEFT + (math.log10(size) - x0) / (x1 - x0 or 1) * pw

    def py(ns):
        return TOP + ph - (math.log10(ns) - y0) / (y1 - y0 or 1) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="30" font-size="18" font-weight="bold">'
        "One message, seal + open: time against payload size (log-log, lower is better)</text>",
        f'<text x="{LEFT}" y="52" fill="#555">{escape(note)}</text>',
    ]
    # Grid and axes.
    for d in range(y0, y1 + 1):
        y = py(10**d)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{fmt_time(10**d)}</text>'
        )
    for s in sizes:
        x = px(s)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#eee"/>')
        out.append(
            f'<text x="{x:.1f}" y="{TOP + ph + 20}" text-anchor="middle">{fmt_size(s)}</text>'
        )
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>'
    )
    out.append(
        f'<text x="{LEFT + pw / 2}" y="{H - 20}" text-anchor="middle">payload size</text>'
    )
    # Series and legend.
    ly = TOP + 10
    for fid, label, colour, dashed in SERIES:
        series = data.get(fid)
        if not series:
            continue
        pts = [(px(s), py(t)) for s, t in sorted(series.items())]
        dash = {True: ' stroke-dasharray="6 4"', "dot": ' stroke-dasharray="2 3"'}.get(dashed, "")
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>')
        lx = LEFT + pw + 20
        out.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 28}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{lx + 36}" y="{ly + 4}">{escape(label)}</text>')
        ly += 24
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--criterion", default=os.path.join(here, "..", "target", "criterion"))
    ap.add_argument("--out", default=os.path.join(here, "roundtrip.svg"))
    ap.add_argument("--note", default=None, help="machine, date and command under the title")
    args = ap.parse_args()
    svg = draw(load(args.criterion), args.note or machine_note())
    with open(args.out, "w") as f:
        f.write(svg)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
