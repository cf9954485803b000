"""Two small SVG charts for BENCHMARKS.md, written by hand (no plotting
package to install): throughput bars and latency-percentile curves."""

import math
from html import escape

COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
          "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def _svg(width, height, body):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>{body}</svg>\n')


def throughput(r, path):
    rows = [(f"{t['server']} · {t['connections']} conns", t["requests_per_sec"])
            for t in r["throughput"]]
    rows += [(f"{w['server']} · wrk 50 conns", w["requests_per_sec"]) for w in r.get("wrk", [])]
    if not rows:
        return
    left, bar, gap, width = 230, 18, 6, 760
    height = 40 + len(rows) * (bar + gap)
    top = max(v for _, v in rows) or 1
    scale = (width - left - 90) / top
    body = ['<text x="10" y="20" font-weight="bold">Requests/s, keep-alive (higher is better)</text>']
    for i, (label, v) in enumerate(rows):
        y = 34 + i * (bar + gap)
        color = COLORS[0] if label.startswith("noop") else COLORS[1 + ("accepted" in label)]
        body.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        body.append(f'<rect x="{left}" y="{y}" width="{v * scale:.1f}" height="{bar}" fill="{color}"/>')
        body.append(f'<text x="{left + v * scale + 5:.1f}" y="{y + 13}">{v:,.0f}</text>')
    path.write_text(_svg(width, height, "".join(body)))


def latency(r, path):
    points = ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"]
    names = ["p50", "p90", "p99", "p99.9", "max"]
    series = [(f"{t['server']} · {t['connections']} conns closed loop", [t[p] for p in points])
              for t in r["throughput"] if t["connections"] == min(x["connections"] for x in r["throughput"])]
    series += [(f"{t['server']} · open loop {int(t['share'] * 100)}% of max", [t[p] for p in points])
               for t in r.get("open_loop", [])]
    series = [(n, v) for n, v in series if all(x > 0 for x in v)]
    if not series:
        return
    width, height, left, right, top, bottom = 760, 420, 60, 300, 30, 40
    lo = math.floor(math.log10(min(min(v) for _, v in series)))
    hi = math.ceil(math.log10(max(max(v) for _, v in series)))
    hi = max(hi, lo + 1)
    pw, ph = width - left - right, height - top - bottom

    def y(ms):
        return top + ph - (math.log10(ms) - lo) / (hi - lo) * ph

    def x(i):
        return left + i * pw / (len(points) - 1)

    body = ['<text x="10" y="18" font-weight="bold">Latency percentiles, ms (log scale, lower is better)</text>']
    for d in range(lo, hi + 1):
        yy = y(10 ** d)
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
        body.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{10 ** d:g}</text>')
    for i, n in enumerate(names):
        body.append(f'<text x="{x(i):.1f}" y="{top + ph + 18}" text-anchor="middle">{n}</text>')
    for k, (label, vals) in enumerate(series):
        c = COLORS[k % len(COLORS)]
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vals))
        body.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
        ly = top + 10 + k * 16
        body.append(f'<rect x="{left + pw + 15}" y="{ly - 9}" width="10" height="10" fill="{c}"/>')
        body.append(f'<text x="{left + pw + 30}" y="{ly}">{escape(label)}</text>')
    path.write_text(_svg(width, height, "".join(body)))
