"""The lean .xlsx reader gives the values openpyxl (read-only, data-only) gives, cell by cell."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.workbook.defined_name import DefinedName

from mou.workbook import xlsx
from mou.workbook.extract import Limits, extract
from tests.workbooks import libreoffice_convert

BOUNDS = (1, 1, 6, 12)


def _sample(date1904: bool = False) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "Sites 'north' & co"
    if date1904:
        wb.epoch = dt.datetime(1904, 1, 1)
    rows = [
        ["text", "Бухарский олень", "  spaced  ", "", None, "x005F_kept"],
        [1475, 1475.5, -3, 0, 1e20, 2.5e-7],
        [
            dt.date(2026, 3, 15),
            dt.datetime(2025, 12, 31, 18, 30),
            dt.time(7, 45),
            True,
            False,
            None,
        ],
        ["=1+1", "=A2*2", "=UNKNOWN()", "#N/A", '="text"', 12],
    ]
    for row in rows:
        ws.append(row)
    ws["A6"] = CellRichText(["plain ", TextBlock(InlineFont(b=True), "bold")])
    ws["C8"] = dt.timedelta(hours=30)
    ws["C8"].number_format = "[h]:mm"
    ws["F12"] = "last"
    ws["H20"] = "outside the bounds"
    wb.defined_names["answer"] = DefinedName("answer", attr_text="'Sites ''north'' & co'!$B$2")
    wb.defined_names["table"] = DefinedName("table", attr_text="'Sites ''north'' & co'!$A$1:$H$20")
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _openpyxl_values(data: bytes) -> dict[tuple[int, int], object]:
    wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    ws = wb[wb.sheetnames[0]]
    ws.reset_dimensions()
    found = {}
    for r, row in enumerate(
        ws.iter_rows(min_row=1, max_row=BOUNDS[3], max_col=BOUNDS[2], values_only=True), 1
    ):
        for c, value in enumerate(row, 1):
            if value is not None:
                found[(r, c)] = value
    wb.close()
    return found


def _lean_values(data: bytes) -> xlsx.SheetCells:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        book = xlsx.read_book(archive)
        part = next(iter(book.sheets.values()))
        return xlsx.read_cells(archive, book, part, BOUNDS)


@pytest.mark.parametrize("date1904", [False, True], ids=["1900", "1904"])
def test_values_match_openpyxl(date1904: bool) -> None:
    data = _sample(date1904)
    expected = _openpyxl_values(data)
    cells = _lean_values(data)
    assert cells.values == expected
    # Every type the forms meet is there, so the comparison is not vacuous.
    assert expected[(2, 1)] == 1475 and isinstance(expected[(2, 1)], int)
    assert isinstance(expected[(3, 1)], dt.datetime)
    assert expected[(1, 2)] == "Бухарский олень"
    # Formulas openpyxl wrote carry no cached value: the reader says which cells.
    assert cells.formulas_without_value >= {(4, 1), (4, 2), (4, 3), (4, 5)}
    assert (12, 6) in cells.values and (20, 8) not in cells.values


def test_values_match_openpyxl_after_libreoffice() -> None:
    """LibreOffice writes shared strings, its own number formats and cached formula values."""
    data = libreoffice_convert(_sample(), ".xlsx", "xlsx")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert "xl/sharedStrings.xml" in archive.namelist()
    cells = _lean_values(data)
    assert cells.values == _openpyxl_values(data)
    assert cells.values[(4, 1)] == 2  # calculated and cached by LibreOffice
    assert not cells.formulas_without_value - {(4, 3)}


def test_defined_names_with_quoted_sheets_and_scopes() -> None:
    data = _sample()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        book = xlsx.read_book(archive)
    names = {n.name: n for n in book.names}
    assert names["answer"].area() == ("Sites 'north' & co", "$B$2")
    assert xlsx.DefinedName("x", "Sheet1!$A$1,Sheet1!$B$2", False).area() is None
    assert xlsx.DefinedName("x", "#REF!", False).area() is None
    assert xlsx.DefinedName("x", '"a constant"', False).area() is None
    extraction = extract(data, Limits(50 * 2**20, 10**6))
    assert extraction.names["answer"].rows == [[1475.5]]


def test_damaged_sheet_is_a_problem_not_a_crash() -> None:
    source = io.BytesIO(_sample())
    damaged = io.BytesIO()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(damaged, "w") as new:
        for item in old.infolist():
            content = old.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = content[: len(content) // 2] + b"<c r=<<"
            new.writestr(item, content)
    with pytest.raises(Exception) as caught:
        extract(damaged.getvalue(), Limits(50 * 2**20, 10**6))
    assert getattr(caught.value, "code", None) == "corrupt"
