"""Inline SVG charts drawn on the server from numbers: sparklines and daily bar charts.

The output is markup built only from floats and escaped labels, so templates may
insert it unescaped; it needs no script and no third-party asset. Colours come
from CSS classes (``spark-line``, ``bar``), so the stylesheet themes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

__all__ = ["bar_chart", "sparkline"]


def _svg(markup: str) -> Markup:
    # Safe by construction: every interpolated value is a number or passed through html.escape.
    return Markup(markup)  # noqa: S704


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline(
    values: Sequence[float],
    *,
    label: str,
    unit: str = "",
    width: int = 120,
    height: int = 28,
    css_class: str = "spark",
) -> Markup:
    """A small line chart of ``values`` (oldest first); an empty series draws a flat dashed baseline."""
    title = escape(label)
    if not values:
        return _svg(
            f'<svg class="{css_class} spark-empty" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{title}: no data yet"><title>{title}: no data yet</title>'
            f'<line x1="0" y1="{height - 2}" x2="{width}" y2="{height - 2}" class="spark-base"/></svg>'
        )
    top = max(values)
    span = top if top > 0 else 1.0
    pad = 2.0
    step = (width - 2 * pad) / max(1, len(values) - 1)
    points = [
        (pad + i * step if len(values) > 1 else width / 2, height - pad - (v / span) * (height - 2 * pad))
        for i, v in enumerate(values)
    ]
    path = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in points)
    last_x, last_y = points[-1]
    summary = f"{title}: latest {_fmt(values[-1])}{escape(unit)}, max {_fmt(top)}{escape(unit)}"
    area = f"{_fmt(points[0][0])},{height} {path} {_fmt(last_x)},{height}"
    return _svg(
        f'<svg class="{css_class}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{summary}"><title>{summary}</title>'
        f'<polygon class="spark-area" points="{area}"/>'
        f'<polyline class="spark-line" points="{path}" fill="none"/>'
        f'<circle class="spark-dot" cx="{_fmt(last_x)}" cy="{_fmt(last_y)}" r="2"/></svg>'
    )


def bar_chart(
    points: Sequence[tuple[str, float]],
    *,
    label: str,
    value_format: str = "{:g}",
    width: int = 900,
    height: int = 170,
) -> Markup:
    """Vertical bars, one per ``(day label, value)``, with a top gridline value and day labels under the axis."""
    title = escape(label)
    left, bottom, top_pad = 72.0, 22.0, 10.0
    plot_w, plot_h = width - left - 4, height - bottom - top_pad
    maximum = max((v for _, v in points), default=0.0)
    scale_top = maximum if maximum > 0 else 1.0
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" role="img" '
        f'aria-label="{title}"><title>{title}</title>',
        f'<line class="axis" x1="{left}" y1="{top_pad + plot_h}" x2="{width - 4}" y2="{top_pad + plot_h}"/>',
        f'<line class="grid" x1="{left}" y1="{top_pad}" x2="{width - 4}" y2="{top_pad}"/>',
        f'<text class="tick" x="{left - 6}" y="{top_pad + 4}" text-anchor="end">'
        f"{escape(value_format.format(scale_top if maximum > 0 else 0))}</text>",
        f'<text class="tick" x="{left - 6}" y="{top_pad + plot_h + 4}" text-anchor="end">0</text>',
    ]
    if not points:
        parts.append(
            f'<text class="empty" x="{left + plot_w / 2}" y="{top_pad + plot_h / 2}" text-anchor="middle">'
            "No requests yet</text>"
        )
    slot = plot_w / max(1, len(points))
    bar_w = max(2.0, slot * 0.62)
    label_every = max(1, len(points) // 10)
    for i, (day, value) in enumerate(points):
        bar_h = (value / scale_top) * plot_h
        x = left + i * slot + (slot - bar_w) / 2
        y = top_pad + plot_h - bar_h
        text = f"{escape(day)}: {escape(value_format.format(value))}"
        parts.append(
            f'<rect class="bar" x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(bar_w)}" height="{_fmt(max(bar_h, 0.0))}" '
            f'rx="2"><title>{text}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text class="tick" x="{_fmt(x + bar_w / 2)}" y="{height - 6}" text-anchor="middle">'
                f"{escape(day[5:] if len(day) == 10 else day)}</text>"
            )
    parts.append("</svg>")
    return _svg("".join(parts))
