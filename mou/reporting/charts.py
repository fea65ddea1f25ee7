"""Charts as inline SVG, drawn here in Python: no JavaScript, no network, text stays text.

Every label is XML-escaped; callers pass already translated, already formatted strings.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

FONT = "Report Sans"
INK = "#1a1a1a"
GRID = "#c8ccd2"
CURRENT = "#1f4e79"
PREVIOUS = "#a9bfd6"

# Status colours shared with report.css (the matrix cells use the same palette).
STATUS_COLOURS = {
    "completed": "#2e7d32",
    "ongoing": "#5b9bd5",
    "in_progress": "#f2b134",
    "not_started": "#d9534f",
    "not_applicable": "#b8b8b8",
    "not_reported": "#ffffff",
}


@dataclass(frozen=True)
class Bar:
    label: str
    value: int | None
    value_text: str
    previous: int | None = None
    previous_text: str = ""


@dataclass(frozen=True)
class Segment:
    key: str
    value: int
    label: str


@dataclass(frozen=True)
class StackedBar:
    label: str
    segments: tuple[Segment, ...]
    note: str = ""


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: float = 9,
    anchor: str = "start",
    weight: str = "normal",
    fill: str = INK,
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-family="{FONT}" font-size="{size}" '
        f'font-weight="{weight}" text-anchor="{anchor}" fill="{fill}">{escape(text)}</text>'
    )


def _wrap(label: str, room: float, size: float = 9) -> list[str]:
    """Split a label into lines that fit ``room`` px (DejaVu Sans: about 0.58 em a character)."""
    per_line = max(8, int(room / (size * 0.58)))
    return textwrap.wrap(label, per_line) or [""]


def _label(x: float, y_middle: float, lines: list[str], size: float = 9) -> str:
    """Right-aligned multi-line label centred on ``y_middle``."""
    leading = size * 1.2
    first = y_middle - leading * (len(lines) - 1) / 2 + size * 0.35
    return "".join(
        _text(x, first + i * leading, line, size=size, anchor="end") for i, line in enumerate(lines)
    )


def _nice_max(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 2.5, 5 × 10^n)."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        candidate = int(step * magnitude)
        if candidate >= value:
            return candidate
    return 10 * magnitude


def population_bars(
    bars: Sequence[Bar],
    *,
    title: str,
    current_label: str,
    previous_label: str | None,
    tick_format: Callable[[int], str],
    width: float = 600,
) -> Markup:
    """Horizontal bars per state: this cycle, and the previous cycle where known."""
    # As wide as the longest name needs (long ones wrap), so short names leave no blank margin.
    longest = max((len(b.label) for b in bars), default=10)
    label_width = min(190.0, max(70.0, longest * 9 * 0.58 + 16))
    value_room = 70.0
    plot_width = width - label_width - value_room
    has_previous = previous_label is not None and any(b.previous is not None for b in bars)
    bar_height = 12.0
    row_height = bar_height * (2 if has_previous else 1) + 12
    top = 34.0
    height = top + row_height * len(bars) + 24
    peak = max([b.value or 0 for b in bars] + [b.previous or 0 for b in bars] + [1])
    axis_max = _nice_max(peak)

    def scale(value: int) -> float:
        return plot_width * value / axis_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">',
        f"<title>{escape(title)}</title>",
    ]
    # Legend
    parts.append(f'<rect x="{label_width}" y="6" width="12" height="10" fill="{CURRENT}"/>')
    parts.append(_text(label_width + 17, 15, current_label, size=8.5))
    if has_previous and previous_label:
        x = label_width + 30 + 6.2 * len(current_label) + 20
        parts.append(f'<rect x="{x:.1f}" y="6" width="12" height="10" fill="{PREVIOUS}"/>')
        parts.append(_text(x + 17, 15, previous_label, size=8.5))
    # Grid and ticks
    for i in range(5):
        value = axis_max * i // 4
        x = label_width + scale(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" '
            f'y2="{height - 20:.1f}" stroke="{GRID}" stroke-width="0.6"/>'
        )
        parts.append(_text(x, height - 8, tick_format(value), size=7.5, anchor="middle"))
    for index, bar in enumerate(bars):
        y = top + index * row_height
        parts.append(
            _label(label_width - 8, y + bar_height / 2, _wrap(bar.label, label_width - 12))
        )
        if bar.value is not None:
            w = scale(bar.value)
            parts.append(
                f'<rect x="{label_width}" y="{y:.1f}" width="{max(w, 0.8):.1f}" '
                f'height="{bar_height}" fill="{CURRENT}"/>'
            )
            parts.append(
                _text(label_width + w + 4, y + bar_height - 2, bar.value_text, weight="bold")
            )
        if has_previous and bar.previous is not None:
            y2 = y + bar_height + 1
            w = scale(bar.previous)
            parts.append(
                f'<rect x="{label_width}" y="{y2:.1f}" width="{max(w, 0.8):.1f}" '
                f'height="{bar_height - 2}" fill="{PREVIOUS}"/>'
            )
            parts.append(_text(label_width + w + 4, y2 + bar_height - 4, bar.previous_text, size=8))
    parts.append(
        f'<line x1="{label_width}" y1="{top - 4}" x2="{label_width}" '
        f'y2="{height - 20:.1f}" stroke="{INK}" stroke-width="0.8"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_shares(
    bars: Sequence[StackedBar],
    *,
    title: str,
    legend: Sequence[tuple[str, str]],
    ticks: Sequence[str] = (),
    width: float = 600,
    label_width: float = 150,
) -> Markup:
    """100 % stacked horizontal bars (status shares per objective), with a legend."""
    note_room = 46.0
    plot_width = width - label_width - note_room
    bar_height = 14.0
    row_height = 22.0
    # Legend items flow left to right and wrap; widths are estimated from the text length
    # (DejaVu Sans at 8 px averages under 5 px a character).
    positions = []
    x, y = 0.0, 8.0
    for _key, label in legend:
        item_width = 15 + 5.0 * len(label) + 14
        if x and x + item_width > width:
            x, y = 0.0, y + 16
        positions.append((x, y))
        x += item_width
    top = y + 16 + 8
    rows = sum(max(row_height, 10.8 * len(_wrap(b.label, label_width - 12)) + 8) for b in bars)
    height = top + rows + (24 if ticks else 8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">',
        f"<title>{escape(title)}</title>",
    ]
    for (key, label), (x, y) in zip(legend, positions, strict=True):
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="11" height="10" '
            f'fill="{STATUS_COLOURS.get(key, GRID)}" stroke="#777" stroke-width="0.4"/>'
        )
        parts.append(_text(x + 15, y + 9, label, size=8))
    y = top
    for bar in bars:
        lines = _wrap(bar.label, label_width - 12)
        row = max(row_height, 10.8 * len(lines) + 8)
        y_bar = y + (row - row_height) / 2
        parts.append(_label(label_width - 8, y_bar + bar_height / 2, lines))
        total = sum(s.value for s in bar.segments)
        x = label_width
        for segment in bar.segments:
            if not total or not segment.value:
                continue
            w = plot_width * segment.value / total
            parts.append(
                f'<rect x="{x:.2f}" y="{y_bar:.1f}" width="{w:.2f}" height="{bar_height}" '
                f'fill="{STATUS_COLOURS.get(segment.key, GRID)}" stroke="#ffffff" '
                f'stroke-width="0.5"/>'
            )
            x += w
        parts.append(
            f'<rect x="{label_width}" y="{y_bar:.1f}" width="{plot_width:.1f}" '
            f'height="{bar_height}" fill="none" stroke="#777" stroke-width="0.5"/>'
        )
        if bar.note:
            parts.append(
                _text(label_width + plot_width + 6, y_bar + bar_height - 3, bar.note, weight="bold")
            )
        y += row
    axis_y = y - 4
    for i, tick in enumerate(ticks):
        x = label_width + plot_width * i / (len(ticks) - 1)
        y = axis_y
        parts.append(
            f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + 4:.1f}" '
            f'stroke="{INK}" stroke-width="0.6"/>'
        )
        parts.append(_text(x, y + 14, tick, size=7.5, anchor="middle"))
    parts.append("</svg>")
    return Markup("".join(parts))
