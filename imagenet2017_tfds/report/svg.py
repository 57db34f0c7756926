"""Plots as inline SVG: bars over classes, histograms and a width/height scatter. Drawn in a
fixed viewBox and scaled by the page, so they need no script, font file or library."""

from __future__ import annotations

import html
import math

W, H = 640, 220  # viewBox units
LEFT, RIGHT, TOP, BOTTOM = 48, 10, 22, 34
INK, BAR, MARK = "#333", "#3b6ea5", "#c0392b"


def _frame(plot_id: str, title: str, body: list[str], x_label: str, y_label: str) -> str:
    return "\n".join(
        [
            f'<svg id="{plot_id}" class="plot" viewBox="0 0 {W} {H}" role="img" '
            f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">',
            f'<text x="{LEFT}" y="14" class="title">{html.escape(title)}</text>',
            f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="{INK}"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="{INK}"/>',
            *body,
            f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 4}" text-anchor="middle">{html.escape(x_label)}</text>',
            f'<text transform="translate(11 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
            f'text-anchor="middle">{html.escape(y_label)}</text>',
            "</svg>",
        ]
    )


def _y_ticks(top: float) -> list[str]:
    out = []
    for value in (0, top / 2, top):
        y = H - BOTTOM - (H - TOP - BOTTOM) * (value / top if top else 0)
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_short(value)}</text>')
    return out


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}" if value == int(value) or value >= 10 else f"{value:.1f}"


def bars(
    plot_id: str,
    title: str,
    values: list[int],
    x_label: str,
    y_label: str,
    marked: dict[int, str] | None = None,
    x_ticks: list[tuple[int, str]] | None = None,
) -> str:
    """One bar per value, in order (e.g. per class in label order); `marked` bars are drawn
    in another colour with their names as tooltips."""
    marked = marked or {}
    top = max(values, default=0) or 1
    width = (W - LEFT - RIGHT) / max(len(values), 1)
    scale = (H - TOP - BOTTOM) / top
    body = _y_ticks(top)
    for i, value in enumerate(values):
        if not value:
            continue
        height = value * scale
        colour = MARK if i in marked else BAR
        tip = f"<title>{html.escape(marked[i])}: {value}</title>" if i in marked else ""
        body.append(
            f'<rect x="{LEFT + i * width:.2f}" y="{H - BOTTOM - height:.2f}" '
            f'width="{max(width * 0.9, 1.2):.2f}" height="{height:.2f}" fill="{colour}">{tip}</rect>'
        )
    if x_ticks is None:
        x_ticks = [(0, "0"), (len(values) - 1, str(len(values) - 1))]
    for i, text in x_ticks:
        x = LEFT + (i + 0.5) * width
        body.append(
            f'<text x="{x:.1f}" y="{H - BOTTOM + 13}" text-anchor="middle">{html.escape(text)}</text>'
        )
    return _frame(plot_id, title, body, x_label, y_label)


def histogram(
    plot_id: str,
    title: str,
    edges: list[float],
    counts: list[int],
    x_label: str,
    y_label: str = "boxes",
    edge_text=lambda e: f"{e:g}",
) -> str:
    """Bars between fixed edges, labelled at the first, middle and last edge."""
    svg = bars(plot_id, title, counts, x_label, y_label, x_ticks=[])
    width = (W - LEFT - RIGHT) / max(len(counts), 1)
    labels = [
        f'<text x="{LEFT + j * width:.1f}" y="{H - BOTTOM + 13}" text-anchor="middle">'
        f"{html.escape(edge_text(edges[j]))}</text>"
        for j in (0, len(counts) // 2, len(counts))
    ]
    return svg.replace("</svg>", "\n".join(labels) + "\n</svg>")


def scatter(
    plot_id: str,
    title: str,
    points: list[tuple[int, int, int]],
    x_label: str,
    y_label: str,
    limit: int = 4000,
) -> str:
    """Points (x, y, count): a dot per distinct (x, y), its area growing with its count, and
    the dashed line of the squares; the `limit` most frequent sizes only (said in the title
    when more)."""
    shown = sorted(points, key=lambda p: (-p[2], p[0], p[1]))[:limit]
    if len(points) > limit:
        title += f" (the {limit} most frequent of {len(points)} sizes)"
    top_x = max((p[0] for p in shown), default=1)
    top_y = max((p[1] for p in shown), default=1)
    most = max((p[2] for p in shown), default=1)
    sx, sy = (W - LEFT - RIGHT) / top_x, (H - TOP - BOTTOM) / top_y
    side = min(top_x, top_y)  # the square images lie on this dashed line
    body = [
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{LEFT + side * sx:.1f}" '
        f'y2="{H - BOTTOM - side * sy:.1f}" stroke="#bbb" stroke-dasharray="3 3"/>'
    ]
    for x, y, n in sorted(shown, key=lambda p: (p[0], p[1])):
        r = 1.5 + 4 * math.sqrt(n / most)
        body.append(
            f'<circle cx="{LEFT + x * sx:.1f}" cy="{H - BOTTOM - y * sy:.1f}" r="{r:.1f}" '
            f'fill="{BAR}" fill-opacity="0.5"><title>{x}x{y}: {n}</title></circle>'
        )
    for value in (0, top_x // 2, top_x):
        body.append(
            f'<text x="{LEFT + value * sx:.1f}" y="{H - BOTTOM + 13}" '
            f'text-anchor="middle">{value}</text>'
        )
    for value in (0, top_y // 2, top_y):
        body.append(
            f'<text x="{LEFT - 4}" y="{H - BOTTOM - value * sy + 4:.1f}" '
            f'text-anchor="end">{value}</text>'
        )
    return _frame(plot_id, title, body, x_label, y_label)
