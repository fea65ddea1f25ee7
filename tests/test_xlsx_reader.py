"""The lean .xlsx reader gives the values openpyxl (read-only, data-only) gives, cell by cell."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.utils.escape import unescape
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from mou.workbook import xlsx
from mou.workbook.extract import Limits, Problem, extract, inspect_zip
from tests.workbooks import from_strict, libreoffice_convert

BOUNDS = (1, 1, 6, 12)
LIMITS = Limits(64 * 2**20, 2_000_000)
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REAL_FILES = Path(__file__).parent / "fixtures" / "real-xlsx"


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
    expected = _openpyxl_values(data)
    # openpyxl drops every "x005F_" from a shared string; it is the escape of "_" only in
    # "_x005F_", so LibreOffice and Excel show "x005F_kept" as it is, and so do we.
    assert expected.pop((1, 6)) == "kept"
    assert cells.values.pop((1, 6)) == "x005F_kept"
    assert cells.values == expected
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
    with pytest.raises(Problem) as caught:
        extract(damaged.getvalue(), Limits(50 * 2**20, 10**6))
    # Named by its tab, as the sender sees it (not by its part, sheet1.xml).
    assert (caught.value.code, caught.value.params) == (
        "corrupt_sheet",
        {"sheet": "Sites 'north' & co"},
    )


# -- what other programs write ------------------------------------------------------------


def _rezip(data: bytes, replace: dict[str, bytes]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item.filename, replace.pop(item.filename, source.read(item)))
        for name, content in replace.items():
            target.writestr(name, content)
    return buffer.getvalue()


def _workbook(
    cells: str, strings: tuple[str, ...] = (), styles: str | None = None, date1904: bool = False
) -> bytes:
    """A one-sheet workbook written by openpyxl, then given these rows, shared strings and
    styles as raw XML: a test says exactly what another program wrote."""
    wb = Workbook()
    if date1904:
        wb.epoch = dt.datetime(1904, 1, 1)
    buffer = io.BytesIO()
    wb.save(buffer)
    data = buffer.getvalue()
    archive = zipfile.ZipFile(io.BytesIO(data))
    sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    sheet = re.sub(
        r"<sheetData\s*/>|<sheetData>.*</sheetData>", f"<sheetData>{cells}</sheetData>", sheet
    )
    replace = {"xl/worksheets/sheet1.xml": sheet.encode()}
    if styles is not None:
        replace["xl/styles.xml"] = styles.encode()
    if strings:
        items = "".join(f'<si><t xml:space="preserve">{text}</t></si>' for text in strings)
        replace["xl/sharedStrings.xml"] = f'<sst xmlns="{MAIN}">{items}</sst>'.encode()
        rels = archive.read("xl/_rels/workbook.xml.rels").decode()
        replace["xl/_rels/workbook.xml.rels"] = rels.replace(
            "</Relationships>",
            '<Relationship Id="rIdStrings" Target="sharedStrings.xml" Type="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/></Relationships>',
        ).encode()
        types = archive.read("[Content_Types].xml").decode()
        replace["[Content_Types].xml"] = types.replace(
            "</Types>",
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        ).encode()
    return _rezip(data, replace)


def test_escaped_characters_are_decoded_in_shared_and_inline_strings() -> None:
    # Excel writes a character XML would not keep (a Windows line break's CR) as _xHHHH_,
    # and the "_" of a text that looks like an escape as _x005F_.
    strings = (
        "Line one_x000D__x000A_line two",
        "_x005F_x000D_ is text",
        "x005F_kept",
        "_x0000_NUL dropped, smile _xD83D__xDE00_, lone _xD800_",
    )
    cells = (
        '<row r="1">'
        + "".join(f'<c r="{c}1" t="s"><v>{i}</v></c>' for i, c in enumerate("ABCD"))
        + '</row><row r="2"><c r="A2" t="inlineStr"><is><t>Tab_x0009_here</t></is></c>'
        '<c r="B2" t="inlineStr"><is><r><t>rich_x000D_</t></r><r><t>_x000A_run</t></r></is></c>'
        '<c r="C2" t="str"><f>"a"&amp;CHAR(13)&amp;"b"</f><v>a_x000D_b</v></c></row>'
    )
    data = _workbook(cells, strings)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        book = xlsx.read_book(archive)
        values = xlsx.read_cells(archive, book, book.sheets["Sheet"], BOUNDS).values
    assert values == {
        (1, 1): "Line one\r\nline two",
        (1, 2): "_x000D_ is text",
        (1, 3): "x005F_kept",
        (1, 4): "NUL dropped, smile \U0001f600, lone \ufffd",  # what a database can store
        (2, 1): "Tab\there",
        (2, 2): "rich\r\nrun",
        (2, 3): "a\rb",
    }
    # openpyxl keeps the escapes in cell values; its own decoder gives what we give.
    expected = _openpyxl_values(data)
    for key in [(1, 1), (2, 1), (2, 2), (2, 3)]:
        assert unescape(expected[key]) == values[key]


def test_escapes_are_read_as_libreoffice_reads_them() -> None:
    """LibreOffice decodes the escapes when it opens a file and saves the characters
    themselves: the file before and after its re-save read the same."""
    wb = Workbook()
    texts = ["x005F_kept", "_x000D_ was a CR", "_x005F_x000D_ is text", "a\nb", "tab\there"]
    for row, text in enumerate(texts, 1):
        wb.active.cell(row=row, column=1, value=text)
    buffer = io.BytesIO()
    wb.save(buffer)
    before = _lean_values(buffer.getvalue()).values
    after = _lean_values(libreoffice_convert(buffer.getvalue(), ".xlsx", "xlsx")).values
    assert before == after
    assert before[(2, 1)] == "\r was a CR" and before[(3, 1)] == "_x000D_ is text"


def _styles(custom: str, cell_formats: list[int], dxfs: str = "") -> str:
    """A stylesheet: these custom formats, cell formats and conditional formats (<dxf>)."""
    xf = '<xf numFmtId="{}" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    xfs = "".join(xf.format(number) for number in cell_formats)
    return (
        f'<styleSheet xmlns="{MAIN}"><numFmts>{custom}</numFmts>'
        '<fonts count="1"><font/></fonts><fills count="1"><fill><patternFill/></fill></fills>'
        '<borders count="1"><border/></borders>'
        f"<cellStyleXfs>{xf.format(0)}</cellStyleXfs>"
        f'<cellXfs count="{len(cell_formats)}">{xfs}</cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        f"<dxfs>{dxfs}</dxfs></styleSheet>"
    )


def test_conditional_formatting_formats_do_not_make_a_number_a_date() -> None:
    # A conditional format's number format (in <dxfs>) has its own numFmtId, here the same
    # as the cell's "0.00": only the cell formats (cellXfs over numFmts) say what a cell is.
    styles = _styles(
        '<numFmt numFmtId="164" formatCode="0.00"/>',
        [0, 164, 14],
        '<dxf><numFmt numFmtId="164" formatCode="d mmm yyyy"/></dxf>',
    )
    cells = '<row r="1"><c r="A1" s="1"><v>13.25</v></c><c r="B1" s="2"><v>13</v></c></row>'
    data = _workbook(cells, styles=styles, date1904=True)
    values = _lean_values(data).values
    assert values == {(1, 1): 13.25, (1, 2): dt.datetime(1904, 1, 14)}
    assert values == _openpyxl_values(data)


def test_strict_open_xml_workbook_is_read() -> None:
    """Excel's "Strict Open XML Spreadsheet" names its namespaces differently; the cells
    are the same as in the transitional file openpyxl reads."""
    data = (REAL_FILES / "sheet_visibility_strict.xlsx").read_bytes()
    inspect_zip(data, LIMITS)
    ours = _every_cell(data)
    assert set(ours) == {"Visible", "Hidden", "VeryHidden"}
    assert ours == _openpyxl_every_cell(from_strict(data))
    assert ours["Visible"][(2, 1)] == ("int", 118)  # CODE("v"), cached by Excel


def test_cells_are_counted_not_taken_from_the_dimension() -> None:
    """What a sheet holds is counted, exactly across read chunks and with a namespace prefix;
    its <dimension> (LibreOffice's A1:D1048576 after a deleted row) is not believed."""
    rows = "".join(f'<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>' for r in range(1, 60_001))
    data = _workbook(rows + '<row r="1048576"/>')
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    sheet = re.sub(r'<dimension ref="[^"]+"', '<dimension ref="A1:D1048576"', sheet)
    prefixed = sheet.replace("<c ", "<x:c ").replace("</c>", "</x:c>")
    parts = {"xl/worksheets/sheet1.xml": sheet.encode(), "xl/prefixed.xml": prefixed.encode()}
    report = inspect_zip(_rezip(data, parts), LIMITS)
    assert report.cells == {"xl/worksheets/sheet1.xml": 60_000, "xl/prefixed.xml": 60_000}


def _utf16(xml: str) -> bytes:
    return xml.encode("utf-16")  # with its byte order mark, as expat expects


def test_dtd_in_a_utf16_part_is_refused() -> None:
    # "<!DOCTYPE" in UTF-16 is not those bytes; expat reads UTF-16 and expands entities.
    data = _workbook('<row r="1"><c r="A1" t="s"><v>0</v></c></row>', ("placeholder",))
    sst = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE sst [<!ENTITY who "an entity">]>'
        f'<sst xmlns="{MAIN}"><si><t>&who;</t></si></sst>'
    )
    hostile = _rezip(data, {"xl/sharedStrings.xml": _utf16(sst)})
    with pytest.raises(Problem) as caught:
        extract(hostile, LIMITS)
    assert caught.value.code == "unsafe_xml"


def test_the_parser_itself_refuses_a_dtd() -> None:
    """Whatever the byte check before it misses, no part is parsed with a DTD."""
    data = _workbook('<row r="1"><c r="A1"><v>1</v></c></row>')
    workbook = zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml").decode()
    body = re.sub(r"^<\?xml[^>]*\?>", "", workbook)
    for dtd, sheet_name in (
        ('<!DOCTYPE workbook [<!ENTITY name "Expanded">]>', "&name;"),
        ("<!DOCTYPE workbook>", "Sheet"),
    ):
        for encoding in ("UTF-8", "UTF-16"):
            xml = f'<?xml version="1.0" encoding="{encoding}"?>{dtd}' + body.replace(
                'name="Sheet"', f'name="{sheet_name}"'
            )
            hostile = _rezip(data, {"xl/workbook.xml": xml.encode(encoding)})
            with zipfile.ZipFile(io.BytesIO(hostile)) as archive, pytest.raises(xlsx.UnsafeXml):
                xlsx.read_book(archive)


# -- the guard: spreadsheets other programs wrote -----------------------------------------

# Refused, and rightly: macros, and a workbook whose parts are outside xl/ (a test file of
# SheetJS's, which openpyxl reads by following _rels/.rels; every spreadsheet program writes
# xl/workbook.xml, and the size checks know that layout): its sender is told to save it again.
REFUSED = {
    "BlankSheetTypes.xlsm": "macros",
    "number_format.xlsm": "macros",
    "number_format_russian.xlsm": "macros",
    "numfmt_1_russian.xlsm": "macros",
    "wtf_path.xlsx": "unusual_layout",
}
STRICT = {"sheet_visibility_strict.xlsx"}
# openpyxl cannot open it (its styles have no cellStyleXfs); what we read is checked by hand.
OPENPYXL_CANNOT = {
    "xlsx-stream-d-date-cell.xlsx": {
        ("Sheet1", 1, 3): "&'\";<>",
        ("Sheet1", 5, 2): dt.datetime(2014, 2, 14, 8, 27, 48, 765000),
        ("Sheet1", 6, 2): 1.5,
        ("Sheet1", 10, 2): dt.timedelta(hours=36),
        ("Sheet1", 11, 2): "String1",
    }
}
WHOLE_SHEET = (1, 1, 16384, 1048576)


def _typed(values: dict[tuple[int, int], Any]) -> dict[tuple[int, int], tuple[str, Any]]:
    """Values with their types: 1, 1.0 and True are equal in Python, not in a return."""
    return {key: (type(value).__name__, value) for key, value in values.items()}


def _every_cell(data: bytes) -> dict[str, dict[tuple[int, int], tuple[str, Any]]]:
    """Every cell of every sheet, read the way intake reads named cells (xlsx.read_cells)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        book = xlsx.read_book(archive)
        return {
            name: _typed(xlsx.read_cells(archive, book, part, WHOLE_SHEET).values)
            for name, part in book.sheets.items()
            if part.startswith("xl/worksheets/")
        }


def _openpyxl_every_cell(data: bytes) -> dict[str, dict[tuple[int, int], tuple[str, Any]]]:
    """openpyxl's values (read-only, data-only) of every worksheet; openpyxl leaves Excel's
    _xHHHH_ escapes in text, so its own decoder is applied to them."""
    wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    found = {}
    for ws in wb.worksheets:
        if not isinstance(ws, ReadOnlyWorksheet):
            continue
        ws.reset_dimensions()
        values = {}
        for r, row in enumerate(ws.iter_rows(values_only=True), 1):
            for c, value in enumerate(row, 1):
                if value is not None:
                    values[(r, c)] = unescape(value) if isinstance(value, str) else value
        found[ws.title] = _typed(values)
    wb.close()
    return found


@pytest.mark.filterwarnings("ignore:Unknown extension:UserWarning")  # openpyxl on x14 extensions
@pytest.mark.parametrize("path", sorted(REAL_FILES.glob("*.xls*")), ids=lambda p: p.name)
def test_reader_agrees_with_openpyxl_on_spreadsheets_other_programs_wrote(path: Path) -> None:
    data = path.read_bytes()
    try:
        inspect_zip(data, LIMITS)
    except Problem as problem:
        assert problem.code == REFUSED.get(path.name)
        return
    assert path.name not in REFUSED
    ours = _every_cell(data)
    assert ours, "no sheet found: the comparison would prove nothing"
    if path.name in OPENPYXL_CANNOT:
        for (sheet, row, column), value in OPENPYXL_CANNOT[path.name].items():
            assert ours[sheet][(row, column)] == (type(value).__name__, value)
        return
    expected = _openpyxl_every_cell(from_strict(data) if path.name in STRICT else data)
    assert set(ours) == set(expected)
    assert ours == expected
