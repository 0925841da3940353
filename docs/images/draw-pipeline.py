#!/usr/bin/env python3
"""Draws a pipeline for people from a GStreamer graph dump, as SVG.

Usage: draw-pipeline.py GRAPH.dot OUT.svg [TITLE]

GRAPH.dot: a dump of GST_DEBUG_DUMP_DOT_DIR. The picture keeps the elements
the pipeline names (bins such as decodebin as one box, their insides left
out), each with its kind and the few settings that matter (file, caps,
text unit, ...), linked left to right, at page width (720 px); queues,
converters, resamplers and caps filters are left out, their links joined. Plain SVG
from the standard library: no graphviz needed.
"""
import html
import re
import sys

WIDTH = 720
KEEP = ("location", "text-unit", "is-live", "bitrate", "tags", "host", "port")
# Plumbing left out of the picture (its links joined across it).
PLUMBING = ("GstQueue", "GstAudioConvert", "GstAudioResample", "GstCapsFilter", "GstTagInject")


def contract(elements, edges):
    """Leaves the plumbing out, linking what was before it to what was after."""
    for e in [e for e, (kind, _, _) in elements.items() if kind in PLUMBING]:
        before = [a for a, b in edges if b == e]
        after = [b for a, b in edges if a == e]
        edges = [(a, b) for a, b in edges if e not in (a, b)]
        for a in before:
            for b in after:
                if (a, b) not in edges:
                    edges.append((a, b))
        del elements[e]
    return elements, edges


def parse(path):
    """Top-level elements {id: (kind, name, props)} and links [(a, b)]."""
    elements, owner, links, stack = {}, {}, [], []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        m = re.match(r"subgraph (cluster_\S+) \{", line)
        if m:
            stack.append(m.group(1))
            continue
        if line == "}" and stack:
            stack.pop()
            continue
        if len(stack) == 1 and line.startswith('label="') and stack[0] not in elements:
            lines = line[len('label="'):-2].split("\\n")
            if len(lines) >= 2 and lines[0] != "Legend":
                elements[stack[0]] = (lines[0].strip("<>"), lines[1], lines[3:])
            continue
        m = re.match(r"(\w+) -> (\w+)(.*)", line)
        if m:
            if "invis" not in m.group(3):
                links.append((m.group(1), m.group(2)))
            continue
        m = re.match(r"(\w+) \[", line)
        if m and stack:
            owner[m.group(1)] = stack[0]
    edges = []
    for a, b in links:
        ea, eb = owner.get(a), owner.get(b)
        if ea in elements and eb in elements and ea != eb and (ea, eb) not in edges:
            edges.append((ea, eb))
    return elements, edges


def describe(kind, name, props):
    """(title, detail) of an element."""
    short = kind[3:].lower() if kind.startswith("Gst") else kind.lower()
    title = short if re.sub(r"\d+$", "", name) == short else f"{short} ({name})"
    details = []
    for p in props:
        key, _, value = p.partition("=")
        if key not in KEEP:
            continue
        value = value.replace("\\", "").strip('"')
        value = re.sub(r"\(\w+\)", "", value)  # caps field types
        if key == "location":
            value = value.rsplit("/", 1)[-1]
        details.append(value if key == "caps" else f"{key}={value}")
    return title, ", ".join(details)


def layout(elements, edges):
    """Column and row of each element: columns by longest path, rows by the
    mean row of the predecessors."""
    col = {e: 0 for e in elements}
    for _ in elements:
        for a, b in edges:
            col[b] = max(col[b], col[a] + 1)
    columns = {}
    for e in elements:
        columns.setdefault(col[e], []).append(e)
    row = {}
    for c in sorted(columns):
        for i, e in enumerate(columns[c]):
            preds = [row[a] for a, b in edges if b == e and a in row]
            row[e] = (sum(preds) / len(preds) if preds else i, i)
        columns[c].sort(key=lambda e: row[e])
        taken = -1.0
        for e in columns[c]:
            # At least one row apart from the one above.
            r = max(row[e][0], taken + 1)
            row[e] = r
            taken = r
    return col, row


def fit(text, chars):
    return text if len(text) <= chars else text[:max(chars - 1, 1)] + "…"


def main():
    elements, edges = contract(*parse(sys.argv[1]))
    out = sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else ""
    col, row = layout(elements, edges)
    ncols = max(col.values()) + 1
    nrows = int(max(row.values())) + 1
    gap = 14
    bw = min(150, (WIDTH - 20 - gap * (ncols - 1)) / ncols)
    bh, vgap, top = 40, 24, 36 if title else 10
    height = top + nrows * (bh + vgap) + 20
    chars = int(bw / 5.6)

    def x(e):
        return 10 + col[e] * (bw + gap)

    def y(e):
        return top + row[e] * (bh + vgap)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
           f'viewBox="0 0 {WIDTH} {height:.0f}" font-family="sans-serif">',
           f'<rect width="{WIDTH}" height="{height:.0f}" fill="white"/>',
           '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>']
    if title:
        svg.append(f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{html.escape(title)}</text>')
    for a, b in edges:
        x1, y1 = x(a) + bw, y(a) + bh / 2
        x2, y2 = x(b), y(b) + bh / 2
        if col[b] - col[a] > 1:
            # Past other columns: along the lane below the source's row.
            lane = y(a) + bh + vgap / 2
            d = (f"M{x1:.1f},{y1:.1f} C{x1 + gap:.1f},{y1:.1f} {x1:.1f},{lane:.1f} {x1 + gap:.1f},{lane:.1f} "
                 f"L{x2 - gap:.1f},{lane:.1f} C{x2:.1f},{lane:.1f} {x2 - gap:.1f},{y2:.1f} {x2 - 1:.1f},{y2:.1f}")
        else:
            mid = (x1 + x2) / 2
            d = f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2 - 1:.1f},{y2:.1f}"
        svg.append(f'<path d="{d}" fill="none" stroke="#555" stroke-width="1.2" marker-end="url(#arrow)"/>')
    for e, (kind, name, props) in elements.items():
        head, detail = describe(kind, name, props)
        fill = "#fde7c8" if kind == "GstPersonaPlex" else "#e8eef7"
        svg.append(f'<rect x="{x(e):.1f}" y="{y(e):.1f}" width="{bw:.1f}" height="{bh}" rx="5" '
                   f'fill="{fill}" stroke="#6b7a90"/>')
        cx = x(e) + bw / 2
        size = min(11.0, 1.5 * bw / max(len(head), 1))
        svg.append(f'<text x="{cx:.1f}" y="{y(e) + (17 if detail else 24):.1f}" text-anchor="middle" '
                   f'font-size="{size:.1f}" font-weight="bold">{html.escape(head)}</text>')
        if detail:
            svg.append(f'<text x="{cx:.1f}" y="{y(e) + 31:.1f}" text-anchor="middle" font-size="9" '
                       f'fill="#333">{html.escape(fit(detail, int(chars * 1.2)))}</text>')
    svg.append(f'<text x="{WIDTH - 10}" y="{height - 6:.0f}" text-anchor="end" font-size="9" fill="#777">'
               'queues, converters, resamplers and caps filters left out</text>')
    svg.append("</svg>")
    open(out, "w", encoding="utf-8").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
