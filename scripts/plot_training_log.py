#!/usr/bin/env python3
"""Draw a training run's loss curve from its log.csv as an SVG (standard library only).

    python3 scripts/plot_training_log.py training/log.csv docs/training-loss.svg

Answer loss and padding loss against training tokens (millions), log-scaled loss axis. Rows
that repeat a step after a resume are taken once (the last).
"""

from __future__ import annotations

import csv
import math
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = {}
    with open(sys.argv[1]) as f:
        for row in csv.DictReader(f):
            rows[int(row["step"])] = row
    steps = sorted(rows)
    if not steps:
        sys.exit(f"{sys.argv[1]}: no rows")
    tokens = [int(rows[s]["tokens"]) / 1e6 for s in steps]
    series = [("answer loss", "#1f77b4", [float(rows[s]["answer_loss"]) for s in steps]),
              ("padding loss", "#ff7f0e", [float(rows[s]["pad_loss"]) for s in steps])]
    width, height, left, bottom, top, right = 720, 400, 60, 40, 20, 140
    values = [v for _, _, ys in series for v in ys if v > 0]
    low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    x_max = max(tokens) or 1

    def x(t):
        return left + (width - left - right) * t / x_max

    def y(v):
        v = max(v, 10 ** low)
        return top + (height - top - bottom) * (high - math.log10(v)) / max(high - low, 1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for e in range(low, high + 1):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(10 ** e):.1f}" y2="{y(10 ** e):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(10 ** e) + 4:.1f}" text-anchor="end">1e{e}</text>')
    for i in range(6):
        t = x_max * i / 5
        out.append(f'<text x="{x(t):.1f}" y="{height - bottom + 16}" text-anchor="middle">{t:.0f}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">training tokens (millions)</text>')
    for i, (name, color, ys) in enumerate(series):
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(tokens, ys))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/>')
        out.append(f'<text x="{width - right + 10}" y="{top + 16 + 18 * i}" fill="{color}">{name}</text>')
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
