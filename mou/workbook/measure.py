"""Row heights that fit their text, measured with a font's metrics.

Neither Excel nor LibreOffice fits a row to wrapped text when it opens a file: both show the
height the file gives. The builder therefore gives every row the height its longest text
needs in its column, wrapped word by word as the programs wrap it. Texts are measured in
DejaVu Sans (shipped with the templates), which is wider than Arial and Liberation Sans, the
font the cells name: a row that fits DejaVu Sans also fits where Arial is installed, and a
LibreOffice without Arial falls back to DejaVu Sans itself.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

FONT = "Arial"  # named on every cell: an unnamed font is a serif in LibreOffice
DEFAULT_SIZE = 10.0
# Excel's column width unit is the width of a digit of the default font (7 px for Arial 10)
# and includes 5 px of padding; a cell keeps about 3 px more for its margins and grid line.
_DIGIT_PX = 7.0
_CELL_MARGIN_PX = 8.0
_PT_PER_PX = 0.75
# Line height in em: Arial's is 1.12 (Excel and LibreOffice alike), DejaVu Sans's 1.16, and
# LibreOffice sets DejaVu Sans tighter than that; a little more is kept for rounding.
_LINE_EM = 1.2
_ROW_PADDING_PT = 3.0
MIN_ROW_PT = 15.0


@lru_cache(maxsize=4)
def _advances(font: Path) -> dict[int, float]:
    """The advance width of each character of a TrueType font, in em."""
    from fontTools.ttLib import TTFont  # a dependency of WeasyPrint

    ttf = TTFont(font, lazy=True)
    units = ttf["head"].unitsPerEm
    metrics = ttf["hmtx"].metrics
    return {code: metrics[glyph][0] / units for code, glyph in ttf.getBestCmap().items()}


class TextMeasure:
    """Widths in points and wrapped line counts of cell texts."""

    def __init__(self, fonts: Path) -> None:
        self.regular = _advances(fonts / "DejaVuSans.ttf")
        self.bold = _advances(fonts / "DejaVuSans-Bold.ttf")

    def width(self, text: str, size: float = DEFAULT_SIZE, bold: bool = False) -> float:
        advances = self.bold if bold else self.regular
        return sum(advances.get(ord(c), 1.0) for c in text) * size

    def lines(
        self, text: str, columns: float, size: float = DEFAULT_SIZE, bold: bool = False
    ) -> int:
        """How many lines ``text`` takes, wrapped at spaces, in a cell ``columns`` wide."""
        room = column_points(columns)
        space = self.width(" ", size, bold)
        count = 0
        for paragraph in text.split("\n"):
            count += 1
            used = 0.0
            for word in paragraph.split():
                word_width = self.width(word, size, bold)
                if used and used + space + word_width > room:
                    count += 1
                    used = 0.0
                while word_width > room:  # a word longer than the cell breaks anywhere
                    count += 1
                    word_width -= room
                used += (space if used else 0.0) + word_width
        return count

    def height(
        self, text: str, columns: float, size: float = DEFAULT_SIZE, bold: bool = False
    ) -> float:
        """The row height in points that shows all of ``text``."""
        lines = self.lines(text, columns, size, bold)
        return max(MIN_ROW_PT, lines * size * _LINE_EM + _ROW_PADDING_PT)

    def columns_for(
        self, texts: list[str], size: float = DEFAULT_SIZE, bold: bool = False
    ) -> float:
        """The column width (in Excel's units) that holds the longest of ``texts`` unwrapped."""
        widest = max((self.width(t, size, bold) for t in texts), default=0.0)
        return round((widest / _PT_PER_PX + _CELL_MARGIN_PX) / _DIGIT_PX + 0.5, 1)


def column_points(columns: float) -> float:
    """The room for text, in points, of a column ``columns`` wide (Excel's width unit)."""
    return max(1.0, (columns * _DIGIT_PX - _CELL_MARGIN_PX) * _PT_PER_PX)
