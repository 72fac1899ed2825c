"""The report's plots as inline SVG: horizontal bars, a histogram, a cumulative step line.
Written by hand because they are this simple: a plotting library took a second of every run's
end to import and draw (on a two-second run, a third of its wall time)."""

from __future__ import annotations

import html
import math

WIDTH = 700
_FONT = 'font-family="sans-serif" font-size="11"'
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 20, 12, 40


def bars(labels: list[str], values: list[float], xlabel: str, color: str = "#4a7", label_width: int = 320) -> str:
    """One horizontal bar per label, top to bottom in the given order; labels wrap onto two lines."""
    row = 34
    height = _TOP + row * len(labels) + _BOTTOM
    left = label_width + 10
    scale = _scale(max(values, default=0), WIDTH - left - _RIGHT - 40)  # room for the value after the bar
    parts = []
    for index, (label, value) in enumerate(zip(labels, values)):
        y = _TOP + index * row
        lines = _wrap(label, label_width // 6)
        text = "".join(f'<tspan x="{left - 6}" dy="{0 if n == 0 else 13}">{html.escape(line)}</tspan>'
                       for n, line in enumerate(lines))
        parts.append(f'<text y="{y + row / 2 - 6 * (len(lines) - 1) + 4}" text-anchor="end" {_FONT}>{text}</text>')
        parts.append(f'<rect x="{left}" y="{y + 5}" width="{value * scale.factor:.1f}" height="{row - 10}" fill="{color}"/>')
        parts.append(f'<text x="{left + value * scale.factor + 4:.1f}" y="{y + row / 2 + 4}" {_FONT}>{_number(value)}</text>')
    parts.append(_x_axis(left, left + scale.top * scale.factor, height - _BOTTOM, scale, xlabel))
    return _svg(height, parts)


def histogram(values: list[float], bins: int, xlabel: str, ylabel: str, color: str = "#47a") -> str:
    low, high = min(values), max(values)
    if high == low:  # one value: one column around it
        low, high, bins = low - 0.5, high + 0.5, 1
    width = (high - low) / bins
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / width))] += 1
    edges = [low + width * i for i in range(bins + 1)]
    return _columns(edges, counts, xlabel, ylabel, color)


def steps(xs: list[float], ys: list[float], xlabel: str, ylabel: str, color: str = "#a74") -> str:
    """A step line: ys[i] holds from xs[i] until xs[i + 1]."""
    height = 320
    x_scale = _scale(max(xs, default=0), WIDTH - _LEFT - _RIGHT, whole=False)
    y_scale = _scale(max(ys, default=0), height - _TOP - _BOTTOM)
    bottom = height - _BOTTOM
    points, previous = [], bottom
    for x, y in zip(xs, ys):
        px, py = _LEFT + x * x_scale.factor, bottom - y * y_scale.factor
        points += [f"{px:.1f},{previous:.1f}", f"{px:.1f},{py:.1f}"]
        previous = py
    points.append(f"{_LEFT + x_scale.top * x_scale.factor:.1f},{previous:.1f}")
    parts = [f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="2"/>',
             _x_axis(_LEFT, WIDTH - _RIGHT, bottom, x_scale, xlabel), _y_axis(bottom, y_scale, ylabel)]
    return _svg(height, parts)


def _columns(edges: list[float], counts: list[int], xlabel: str, ylabel: str, color: str) -> str:
    height = 320
    bottom = height - _BOTTOM
    span = edges[-1] - edges[0] or 1.0
    inner = WIDTH - _LEFT - _RIGHT
    y_scale = _scale(max(counts, default=0), height - _TOP - _BOTTOM)
    parts = []
    for index, count in enumerate(counts):
        x0 = _LEFT + (edges[index] - edges[0]) / span * inner
        x1 = _LEFT + (edges[index + 1] - edges[0]) / span * inner
        parts.append(f'<rect x="{x0:.1f}" y="{bottom - count * y_scale.factor:.1f}" width="{max(1.0, x1 - x0 - 1):.1f}" '
                     f'height="{count * y_scale.factor:.1f}" fill="{color}"/>')
    ticks = [t for t in _ticks(edges[0], edges[-1]) if t <= edges[-1] + 1e-9]
    axis = [f'<line x1="{_LEFT}" y1="{bottom}" x2="{WIDTH - _RIGHT}" y2="{bottom}" stroke="#333"/>']
    for tick in ticks:
        x = _LEFT + (tick - edges[0]) / span * inner
        axis.append(f'<text x="{x:.1f}" y="{bottom + 15}" text-anchor="middle" {_FONT}>{_number(tick)}</text>')
    axis.append(f'<text x="{(_LEFT + WIDTH - _RIGHT) / 2}" y="{bottom + 32}" text-anchor="middle" {_FONT}>{html.escape(xlabel)}</text>')
    return _svg(height, parts + axis + [_y_axis(bottom, y_scale, ylabel)])


class _Scale:
    def __init__(self, top: float, length: float, whole: bool):
        self.top = top
        self.factor = length / top
        self.ticks = _ticks(0, top, whole=whole)


def _scale(largest: float, length: float, whole: bool = True) -> _Scale:
    """An axis from 0 to a round number at or above `largest`; `whole`: counts, whole ticks."""
    ticks = _ticks(0, largest or 1, whole=whole)
    return _Scale(max(ticks[-1], largest or 1), length, whole)


def _ticks(low: float, high: float, count: int = 5, whole: bool = False) -> list[float]:
    step = _round_step((high - low) / count if high > low else 1.0)
    step = max(step, 1.0) if whole else step
    first = math.floor(low / step) * step
    ticks = [first + step * i for i in range(int(math.ceil((high - first) / step)) + 1)]
    return [t for t in ticks if t >= low - 1e-9]


def _round_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _x_axis(left: float, right: float, y: float, scale: _Scale, label: str) -> str:
    parts = [f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#333"/>']
    for tick in scale.ticks:
        x = left + tick * scale.factor
        parts.append(f'<text x="{x:.1f}" y="{y + 15}" text-anchor="middle" {_FONT}>{_number(tick)}</text>')
    parts.append(f'<text x="{(left + right) / 2}" y="{y + 32}" text-anchor="middle" {_FONT}>{html.escape(label)}</text>')
    return "".join(parts)


def _y_axis(bottom: float, scale: _Scale, label: str) -> str:
    parts = [f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}" stroke="#333"/>']
    for tick in scale.ticks:
        y = bottom - tick * scale.factor
        parts.append(f'<text x="{_LEFT - 5}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{_number(tick)}</text>')
    middle = (_TOP + bottom) / 2
    parts.append(f'<text x="14" y="{middle}" transform="rotate(-90 14 {middle})" text-anchor="middle" {_FONT}>'
                 f'{html.escape(label)}</text>')
    return "".join(parts)


def _wrap(label: str, width: int) -> list[str]:
    """At most two lines; a longer label ends in an ellipsis."""
    words, lines, line = label.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    if len(lines) > 2:
        lines = [lines[0], " ".join(lines[1:])]
    return [text if len(text) <= width else text[: width - 1] + "…" for text in lines]


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _svg(height: float, parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}">{"".join(parts)}</svg>')
