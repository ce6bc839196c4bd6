# SPDX-License-Identifier: GPL-2.0
"""Result tables (Markdown) and bar charts (SVG, no dependencies) for the
benchmarks under bench/."""
import html

COLOURS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1']


def table(header, rows):
    """A Markdown table; cells are str()ed."""
    out = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join('---' for _ in header) + '|']
    out += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return '\n'.join(out) + '\n'


def bar_chart(title, groups, series, ylabel, ref=None):
    """Grouped bars: one group per entry of @groups, one bar per series
    (@series: name -> values, None for a missing value); a dashed line at
    @ref. Returns the SVG text."""
    w, h, left, right, top, bottom = 760, 380, 70, 170, 40, 50
    pw, ph = w - left - right, h - top - bottom
    vals = [v for vs in series.values() for v in vs if v is not None]
    ymax = max(vals + [ref or 0]) * 1.15 or 1
    gw = pw / len(groups)
    bw = gw * 0.8 / max(1, len(series))
    y = lambda v: top + ph - v / ymax * ph  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15">'
           f'{html.escape(title)}</text>',
           f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>',
           f'<text x="16" y="{top + ph / 2}" transform="rotate(-90 16 {top + ph / 2})" '
           f'text-anchor="middle">{html.escape(ylabel)}</text>']
    for i in range(6):
        v = ymax / 1.15 * i / 5
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" '
                   'stroke="#ddd"/>')
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + gw * 0.1
        for si, (name, vs) in enumerate(series.items()):
            v = vs[gi]
            if v is None:
                continue
            out.append(f'<rect x="{x0 + si * bw:.1f}" y="{y(v):.1f}" width="{bw * 0.9:.1f}" '
                       f'height="{top + ph - y(v):.1f}" fill="{COLOURS[si % len(COLOURS)]}">'
                       f'<title>{html.escape(name)} {html.escape(str(g))}: {v:.3f}</title></rect>')
        out.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + ph + 18}" '
                   f'text-anchor="middle">{html.escape(str(g))}</text>')
    if ref is not None:
        out.append(f'<line x1="{left}" y1="{y(ref):.1f}" x2="{left + pw}" y2="{y(ref):.1f}" '
                   'stroke="black" stroke-dasharray="5,4"/>')
    for si, name in enumerate(series):
        ly = top + 10 + si * 20
        out.append(f'<rect x="{left + pw + 15}" y="{ly - 10}" width="12" height="12" '
                   f'fill="{COLOURS[si % len(COLOURS)]}"/>')
        out.append(f'<text x="{left + pw + 33}" y="{ly}">{html.escape(name)}</text>')
    out.append('</svg>')
    return '\n'.join(out) + '\n'


def linfit(xs, ys):
    """Least-squares line through (@xs, @ys): (slope, intercept, standard
    error of the slope); the error is None with fewer than three points."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    icpt = my - slope * mx
    if n < 3:
        return slope, icpt, None
    rss = sum((y - icpt - slope * x) ** 2 for x, y in zip(xs, ys))
    return slope, icpt, (rss / (n - 2) / sxx) ** 0.5
