"""Column widths of answer tables, measured in the report's fonts as report.css sets them.

Answer tables have a fixed layout (``table-layout: fixed``), so WeasyPrint lays each cell out
once; ``column_widths`` chooses the widths the automatic layout would have chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol


class MeasuredCell(Protocol):
    """A cell as ``column_widths`` measures it (``sections.Cell`` is one).

    ``carried``: the "carried forward" mark follows the text, unbroken.
    """

    @property
    def text(self) -> str: ...

    @property
    def carried(self) -> bool: ...


# Answer tables in report.css: 8.5 pt text, headings bold, 1.6 mm of padding on each side,
# in an A4 portrait text block 172 mm wide; the "carried forward" mark is 6.5 pt with 2.9 mm
# of padding, border and margin. A little room is kept for kerning and rounding.
_TABLE_MM = 172.0
_TABLE_PT = 8.5
_PADDING_MM = 3.2
_MARK_PT = 6.5
_MARK_EXTRA_MM = 2.9
_SLACK_MM = 0.6
_PT_MM = 25.4 / 72


@lru_cache(maxsize=4)
def _advances(font: Path) -> dict[int, float]:
    """The advance width of each character of a TrueType font, in em."""
    from fontTools.ttLib import TTFont  # a dependency of WeasyPrint

    ttf = TTFont(font, lazy=True)
    units = ttf["head"].unitsPerEm
    metrics = ttf["hmtx"].metrics
    return {code: metrics[glyph][0] / units for code, glyph in ttf.getBestCmap().items()}


class _Measure:
    """Widths in mm of texts set in the report's own fonts (DejaVu Sans)."""

    def __init__(self, fonts: Path) -> None:
        self.regular = _advances(fonts / "DejaVuSans.ttf")
        self.bold = _advances(fonts / "DejaVuSans-Bold.ttf")

    def __call__(self, text: str, *, bold: bool = False, size: float = _TABLE_PT) -> float:
        advances = self.bold if bold else self.regular
        return sum(advances.get(ord(c), 1.0) for c in text) * size * _PT_MM


def column_widths(
    header: Sequence[str], rows: Sequence[Sequence[MeasuredCell]], fonts: Path, mark: str = ""
) -> list[float]:
    """Widths in % (adding up to 100) for an answer table laid out with ``table-layout: fixed``.

    WeasyPrint's automatic table layout measures the narrowest and widest width of every cell
    before it lays out any, about a tenth of the time of the annex of the progress summary. A
    fixed layout lays each cell out once, in the widths given here, chosen from the texts as
    the automatic layout would (CSS 2.1, 17.5.2.2): each column at least as wide as its
    longest word, and of the room left a share in proportion to how much wider its longest
    line is. Texts are measured in the report's fonts; ``mark`` is the "carried forward" mark
    that follows a carried cell, unbroken.
    """
    measure = _Measure(fonts)
    mark_mm = measure(mark, size=_MARK_PT) + _MARK_EXTRA_MM if mark else 0.0
    least: list[float] = []
    most: list[float] = []
    for index, heading in enumerate(header):
        cells = [row[index] for row in rows]
        words = [measure(word, bold=True) for word in heading.split()]
        words += [measure(word) for cell in cells for word in cell.text.split()]
        words += [mark_mm for cell in cells if cell.carried]
        lines = [measure(heading, bold=True)]
        for cell in cells:
            widths = [measure(line) for line in cell.text.splitlines() or [""]]
            if cell.carried:
                widths[-1] += measure(" ") + mark_mm
            lines += widths
        least.append(max(words, default=0.0) + _SLACK_MM)
        most.append(max(*lines, least[-1] - _SLACK_MM) + _SLACK_MM)
    room = _TABLE_MM - len(header) * _PADDING_MM
    if sum(most) <= room:  # everything fits on one line: share out the rest like the widest
        text = [room * m / sum(most) for m in most]
    elif sum(least) >= room:  # too narrow for the longest words anyway
        text = [room * n / sum(least) for n in least]
    else:
        spare = room - sum(least)
        stretch = sum(m - n for m, n in zip(most, least, strict=True))
        text = [n + spare * (m - n) / stretch for m, n in zip(most, least, strict=True)]
    tenths = [1000 * (t + _PADDING_MM) / _TABLE_MM for t in text]
    widths = [int(t) for t in tenths]
    # Largest remainders first, so the widths add up to exactly 100 %.
    for index in sorted(range(len(tenths)), key=lambda i: widths[i] - tenths[i])[
        : 1000 - sum(widths)
    ]:
        widths[index] += 1
    return [w / 10 for w in widths]
