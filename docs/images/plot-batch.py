#!/usr/bin/env python3
"""Plots frame time against batch size from a personaplex-bench JSON as SVG.

Usage: plot-batch.py BENCH.json OUT.svg [TITLE]

Median and p99 of one frame (Mimi encode + batched LM step + Mimi decode for
all conversations), with the 80 ms real-time line. Plain SVG, no plotting
library needed.
"""
import json
import sys


def main():
    bench = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "Frame time against conversations"
    runs = [b for b in bench["batches"] if "frame_ms" in b]
    xs = [b["batch"] for b in runs]
    med = [b["frame_ms"]["median"] for b in runs]
    p99 = [b["frame_ms"]["p99"] for b in runs]
    W, H, L, R, T, B = 640, 360, 60, 20, 40, 50
    # p99 points beyond the axis (a graph capture in a short run) are drawn at
    # its top, labelled with their value.
    ymax = min(140.0, max(100.0, max(p99) * 1.1))
    xmax = max(xs)

    def px(x):
        return L + (W - L - R) * (x / xmax)

    def py(y):
        return H - B - (H - T - B) * (min(y, ymax) / ymax)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    for y in range(0, int(ymax) + 1, 20):
        svg.append(f'<line x1="{L}" y1="{py(y)}" x2="{W - R}" y2="{py(y)}" stroke="#ddd"/>')
        svg.append(f'<text x="{L - 6}" y="{py(y) + 4}" text-anchor="end">{y}</text>')
    for x in xs:
        svg.append(f'<text x="{px(x)}" y="{H - B + 16}" text-anchor="middle">{x}</text>')
    svg.append(f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">conversations stepped together</text>')
    svg.append(f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">ms per 80 ms frame</text>')
    svg.append(f'<line x1="{L}" y1="{py(80)}" x2="{W - R}" y2="{py(80)}" stroke="#c00" stroke-dasharray="6,4"/>')
    svg.append(f'<text x="{W - R}" y="{py(80) - 4}" text-anchor="end" fill="#c00">real time (80 ms)</text>')
    for ys, color, name in ((p99, "#999", "p99"), (med, "#06c", "median")):
        pts = " ".join(f"{px(x)},{py(y)}" for x, y in zip(xs, ys))
        svg.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in zip(xs, ys):
            svg.append(f'<circle cx="{px(x)}" cy="{py(y)}" r="3" fill="{color}"/>')
            svg.append(f'<text x="{px(x) + 5}" y="{py(y) - 5}" fill="{color}">{y:.1f}</text>')
    svg.append(f'<text x="{L + 10}" y="{T + 10}" fill="#06c">median</text>')
    svg.append(f'<text x="{L + 70}" y="{T + 10}" fill="#999">p99</text>')
    svg.append("</svg>")
    open(out, "w").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
