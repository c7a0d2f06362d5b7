"""Small inline SVG charts, written by hand: no plotting library, no script, nothing fetched to view them.

A report must open offline years later from a CI artifact, so each chart is
plain SVG text (escaped) with its axes, labels and a ``<title>`` per mark as
the tooltip. Every chart carries ``class="plot"`` and ``data-plot=NAME`` so a
test (or a reader's script) can find it; an empty chart says so in words
instead of drawing nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from html import escape
import math

#: Colours with a meaning wherever the key appears (good is green, bad is red).
KEY_COLORS = {"helpful": "#59a14f", "harmful": "#e15759"}
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 20, 40


@dataclass
class Series:
    """One line of a line chart: (x, y) points, x as a date; None y leaves a gap."""

    name: str
    points: list[tuple[date, float | None]]
    color: str = ""


@dataclass
class Marker:
    """A vertical rule on a time axis (a merged improvement), labelled."""

    when: date
    label: str


@dataclass
class Bar:
    """A value with an optional interval (low, high) and an optional second value to compare against."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def _open(name: str, title: str, height: int = HEIGHT) -> list[str]:
    return [f'<svg class="plot" data-plot="{escape(name)}" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
            f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>",
            f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>']


def _empty(name: str, title: str, message: str) -> str:
    out = _open(name, title, 80)
    out.append(f'<text x="{WIDTH / 2}" y="44" text-anchor="middle" fill="#666" font-size="14">{escape(message)}</text>')
    return "\n".join(out + ["</svg>"])


def _fmt(v: float, percent: bool) -> str:
    if percent:
        return f"{v * 100:.0f}%"
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.1f}M"
    if abs(v) >= 1000:
        return f"{v / 1000:.1f}k"
    return f"{v:g}" if v == int(v) else f"{v:.2f}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= ``value`` (readable axis ends)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value - 1e-12)


def _y_axis(out: list[str], lo: float, hi: float, height: int, percent: bool) -> None:
    plot_h = height - TOP - BOTTOM
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#444">'
                   f"{_fmt(v, percent)}</text>")
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#888"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#888"/>')


def _legend(out: list[str], names: Sequence[tuple[str, str]]) -> None:
    for i, (name, color) in enumerate(names):
        y = TOP + 8 + i * 18
        out.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{y - 8}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{WIDTH - RIGHT + 30}" y="{y + 2}" font-size="12" fill="#222">{escape(name[:18])}</text>')


def line_chart(name: str, title: str, series: Sequence[Series], *, markers: Sequence[Marker] = (),
               percent: bool = False, y_max: float | None = None) -> str:
    """Lines over dates (one per series) with vertical markers; y from 0 to ``y_max`` (or the data's max)."""
    days = sorted({d for s in series for d, v in s.points if v is not None} | {m.when for m in markers})
    values = [v for s in series for _, v in s.points if v is not None]
    if not values:
        return _empty(name, title, "no data yet")
    x0, x1 = days[0].toordinal(), days[-1].toordinal()
    span = max(x1 - x0, 1)
    hi = y_max if y_max is not None else nice_ceiling(max(values) * 1.05)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(d: date) -> float:
        return LEFT + plot_w * ((d.toordinal() - x0) / span if x1 > x0 else 0.5)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * (v / hi if hi else 0)

    out = _open(name, title)
    _y_axis(out, 0.0, hi, HEIGHT, percent)
    ticks = days if len(days) <= 6 else [days[int(i * (len(days) - 1) / 5)] for i in range(6)]
    for d in dict.fromkeys(ticks):
        out.append(f'<text x="{x(d):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" '
                   f'fill="#444">{d:%m-%d}</text>')
    for m in markers:
        mx = x(m.when)
        right = mx > LEFT + plot_w / 2  # label on the inner side of the rule, clear of the legend
        out.append(f'<g class="marker"><title>{escape(f"{m.when}: {m.label}")}</title>'
                   f'<line x1="{mx:.1f}" y1="{TOP}" x2="{mx:.1f}" y2="{TOP + plot_h}" stroke="#7a7a7a" '
                   f'stroke-dasharray="4 3"/><text x="{mx - 3 if right else mx + 3:.1f}" y="{TOP + 10}" '
                   f'text-anchor="{"end" if right else "start"}" font-size="10" fill="#555">'
                   f"{escape(m.label[:24])}</text></g>")
    legend = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        legend.append((s.name, color))
        pts = [(d, v) for d, v in sorted(s.points) if v is not None]
        if len(pts) > 1:
            path = " ".join(f"{'M' if j == 0 else 'L'}{x(d):.1f},{y(v):.1f}" for j, (d, v) in enumerate(pts))
            out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for d, v in pts:
            out.append(f'<circle cx="{x(d):.1f}" cy="{y(v):.1f}" r="3.5" fill="{color}">'
                       f"<title>{escape(f'{s.name} {d}: {_fmt(v, percent)}')}</title></circle>")
    _legend(out, legend)
    return "\n".join(out + ["</svg>"])


def interval_chart(name: str, title: str, rows: Sequence[tuple[str, Bar, Bar]]) -> str:
    """Before/after per row: two dots with their confidence intervals (rates 0..1), joined by an arrow."""
    if not rows:
        return _empty(name, title, "no improvement with an evaluation yet")
    row_h = 34
    height = TOP + BOTTOM + row_h * len(rows)
    label_w = 230
    plot_w = WIDTH - label_w - 30

    def x(v: float) -> float:
        return label_w + plot_w * max(0.0, min(1.0, v))

    out = _open(name, title, height)
    for i in range(5):
        gx = x(i / 4)
        out.append(f'<line x1="{gx:.1f}" y1="{TOP}" x2="{gx:.1f}" y2="{height - BOTTOM}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{gx:.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" font-size="11" '
                   f'fill="#444">{i * 25}%</text>')
    for j, (label, before, after) in enumerate(rows):
        cy = TOP + row_h * j + row_h / 2
        out.append(f'<text x="{label_w - 8}" y="{cy + 4:.1f}" text-anchor="end" font-size="12" fill="#222">'
                   f"{escape(label[:34])}</text>")
        for bar, color, dy in ((before, PALETTE[0], -5), (after, PALETTE[2], 5)):
            lo, hi = bar.low if bar.low is not None else bar.value, bar.high if bar.high is not None else bar.value
            tip = f"{bar.label}: {bar.value * 100:.1f}% (95% CI {lo * 100:.1f}-{hi * 100:.1f}%)"
            out.append(f'<g><title>{escape(tip)}</title>'
                       f'<line x1="{x(lo):.1f}" y1="{cy + dy:.1f}" x2="{x(hi):.1f}" y2="{cy + dy:.1f}" '
                       f'stroke="{color}" stroke-width="2"/>'
                       f'<circle cx="{x(bar.value):.1f}" cy="{cy + dy:.1f}" r="4.5" fill="{color}"/></g>')
    out.append(f'<text x="{label_w}" y="{height - 6}" font-size="11" fill="{PALETTE[0]}">● before</text>'
               f'<text x="{label_w + 70}" y="{height - 6}" font-size="11" fill="{PALETTE[2]}">● after</text>'
               f'<text x="{label_w + 130}" y="{height - 6}" font-size="11" fill="#444">lines: Wilson 95% CI</text>')
    return "\n".join(out + ["</svg>"])


def bar_chart(name: str, title: str, bars: Sequence[Bar], *, keys: Sequence[str] = ("value",),
              percent: bool = False) -> str:
    """Horizontal bars, one row per item; several ``keys`` (``value`` or names in ``extra``) stack side by side."""
    if not bars:
        return _empty(name, title, "nothing to show yet")
    row_h = 16 * len(keys) + 12
    height = TOP + BOTTOM + row_h * len(bars)
    label_w = 260
    plot_w = WIDTH - label_w - 60

    def val(b: Bar, k: str) -> float:
        return b.value if k == "value" else b.extra.get(k, 0.0)

    hi = 1.0 if percent else nice_ceiling(max((val(b, k) for b in bars for k in keys), default=1.0))
    out = _open(name, title, height)
    for j, b in enumerate(bars):
        top = TOP + row_h * j + 6
        out.append(f'<text x="{label_w - 8}" y="{top + 8 * len(keys) + 4}" text-anchor="end" font-size="12" '
                   f'fill="#222">{escape(b.label[:40])}</text>')
        for i, k in enumerate(keys):
            v = val(b, k)
            w = plot_w * max(0.0, v) / hi
            color = KEY_COLORS.get(k) or (PALETTE[i % len(PALETTE)] if len(keys) > 1 else PALETTE[0])
            out.append(f'<rect x="{label_w}" y="{top + 16 * i}" width="{max(w, 1):.1f}" height="13" fill="{color}">'
                       f"<title>{escape(f'{b.label} {k}: {_fmt(v, percent)}')}</title></rect>")
            out.append(f'<text x="{label_w + max(w, 1) + 4:.1f}" y="{top + 16 * i + 11}" font-size="11" '
                       f'fill="#444">{_fmt(v, percent)}</text>')
    if len(keys) > 1:
        for i, k in enumerate(keys):
            out.append(f'<text x="{label_w + i * 110}" y="{height - 8}" font-size="11" '
                       f'fill="{KEY_COLORS.get(k) or PALETTE[i % len(PALETTE)]}">■ {escape(k)}</text>')
    return "\n".join(out + ["</svg>"])
