#!/usr/bin/env python3
"""Plots frame time against batch size from a personaplex-bench JSON as SVG.

Usage: plot-batch.py BENCH.json OUT.svg [TITLE]

Median and p99 of one frame (Mimi encode + batched LM step + Mimi decode for
all conversations), with the 80 ms real-time line. p99 outliers (beyond twice
the largest median) are marked at the top with their value instead of being
drawn off the axis; labels stay inside the plot. Plain SVG, no plotting
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
    W, H, L, R, T, B = 640, 380, 60, 70, 60, 50
    # The axis covers the medians and the p99s that are not outliers (more
    # than three times the p99s' median, e.g. a graph capture in a short
    # run): those are marked at the top with their value, not drawn to scale.
    bound = 3 * sorted(p99)[len(p99) // 2]
    ymax = max(100.0, max([y for y in p99 if y <= bound] + med) * 1.15)
    xmax = max(xs)

    def px(x):
        return L + (W - L - R) * (x / xmax)

    def py(y):
        return H - B - (H - T - B) * (min(y, ymax) / ymax)

    def label(x, y, text, color, above=True):
        # Kept inside the plot: anchored at the end near the right edge.
        anchor, dx = ("end", -6) if px(x) > W - R - 40 else ("start", 5)
        return (f'<text x="{px(x) + dx}" y="{py(y) + (-6 if above else 14)}" text-anchor="{anchor}" '
                f'fill="{color}">{text}</text>')

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    step = 20 if ymax <= 160 else 50
    for y in range(0, int(ymax) + 1, step):
        svg.append(f'<line x1="{L}" y1="{py(y)}" x2="{W - R}" y2="{py(y)}" stroke="#ddd"/>')
        svg.append(f'<text x="{L - 6}" y="{py(y) + 4}" text-anchor="end">{y}</text>')
    for x in xs:
        svg.append(f'<text x="{px(x)}" y="{H - B + 16}" text-anchor="middle">{x}</text>')
    svg.append(f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle">conversations stepped together</text>')
    svg.append(f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">ms per 80 ms frame</text>')
    svg.append(f'<line x1="{L}" y1="{py(80)}" x2="{W - R}" y2="{py(80)}" stroke="#c00" stroke-dasharray="6,4"/>')
    svg.append(f'<text x="{W - 4}" y="{py(80) + 4}" text-anchor="end" fill="#c00">80 ms</text>')
    outliers = []
    for ys, color, name, above in ((p99, "#777", "p99", True), (med, "#06c", "median", False)):
        shown = [(x, y) for x, y in zip(xs, ys) if y <= ymax]
        pts = " ".join(f"{px(x)},{py(y)}" for x, y in shown)
        svg.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in zip(xs, ys):
            if y > ymax:
                outliers.append((x, y))
                continue
            svg.append(f'<circle cx="{px(x)}" cy="{py(y)}" r="3" fill="{color}"/>')
            svg.append(label(x, y, f"{y:.1f}", color, above))
    for x, y in outliers:
        top = py(ymax)
        svg.append(f'<path d="M {px(x) - 5} {top + 8} L {px(x)} {top - 1} L {px(x) + 5} {top + 8} Z" fill="#777"/>')
        svg.append(f'<text x="{px(x) + 9}" y="{top + 7}" fill="#777">p99 {y:.0f} ms</text>')
    legend = f'<tspan fill="#06c">● median</tspan>   <tspan fill="#777">● p99</tspan>'
    if outliers:
        legend += '   <tspan fill="#777">▲ p99 off scale (a few slow steps in a short run)</tspan>'
    svg.append(f'<text x="{W / 2}" y="40" text-anchor="middle" xml:space="preserve">{legend}</text>')
    svg.append("</svg>")
    open(out, "w").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
