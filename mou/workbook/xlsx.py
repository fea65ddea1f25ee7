"""A lean reader for the parts of an .xlsx that intake needs, on expat.

openpyxl (even read-only) builds objects for every style, sheet and property, which was
most of the cost of reading a return (benchmarks/RESULTS-intake.md). Intake needs much
less: the workbook-level defined names, the sheet names, the shared strings, which cell
styles are dates, one custom property, and the cells inside the named ranges. This module
reads exactly that, streaming the worksheets and stopping below the last row needed.

Values follow openpyxl's data-only rules (its `_reader.WorkSheetParser.parse_cell`), so the
validator sees the same Python values: ints and floats as written, shared and inline strings,
booleans, error strings, ISO dates, and date-styled numbers as datetimes on the workbook's
epoch. Runs in the sandbox child, after `extract.inspect_zip` has bounded every part and
refused DTDs and entity declarations.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from openpyxl.styles.numbers import builtin_format_code, is_date_format, is_timedelta_format
from openpyxl.utils.datetime import CALENDAR_MAC_1904, WINDOWS_EPOCH, from_excel, from_ISO8601

REL_ID = "http://schemas.openxmlformats.org/officeDocument/2006/relationships id"
CHUNK = 1 << 16
_CELL_REF = re.compile(r"([A-Z]{1,3})(\d+)$")
# A defined name that is a single area: Sheet!$A$1 or 'Sheet name'!$A$1:$C$9.
_AREA = re.compile(
    r"^(?:'((?:[^']|'')+)'|([^'!:,()\s][^'!:,()]*))!"
    r"(\$?[A-Za-z]{1,3}\$?\d+(?::\$?[A-Za-z]{1,3}\$?\d+)?)$"
)


class _Stop(Exception):
    """Raised from a handler: everything needed from this part has been read."""


def _local(name: str) -> str:
    return name[name.rfind(" ") + 1 :]


def _parse(
    archive: zipfile.ZipFile,
    member: str,
    start: Callable[[str, dict[str, str]], None],
    end: Callable[[str], None] | None = None,
    data: Callable[[str], None] | None = None,
) -> None:
    """Feed one part, in chunks (worksheets can be large; parts are capped), to a fresh
    parser with these handlers; a handler raising _Stop ends the part early."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    if data is not None:
        parser.CharacterDataHandler = data
    try:
        with archive.open(member) as handle:
            while chunk := handle.read(CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except _Stop:
        pass


def column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - 64
    return index


@dataclass
class DefinedName:
    name: str
    text: str
    local: bool  # scoped to one sheet (localSheetId): not a workbook-level name

    def area(self) -> tuple[str, str] | None:
        """(sheet, reference) when the name is one rectangular area, else None."""
        match = _AREA.match(self.text.strip())
        if not match:
            return None
        sheet = match.group(1).replace("''", "'") if match.group(1) else match.group(2)
        return sheet, match.group(3).upper()


@dataclass
class Book:
    sheets: dict[str, str]  # name -> part, in workbook order
    names: list[DefinedName]
    epoch: Any
    shared_strings: list[str] = field(default_factory=list)
    date_styles: set[int] = field(default_factory=set)
    timedelta_styles: set[int] = field(default_factory=set)


def _relationships(archive: zipfile.ZipFile, rels_member: str, base: str) -> dict[str, str]:
    """Relationship id -> part name, resolved against the folder of the source part."""
    targets: dict[str, str] = {}
    types: dict[str, str] = {}
    if rels_member not in archive.NameToInfo:
        return targets

    def start(name: str, attrs: dict[str, str]) -> None:
        if _local(name) == "Relationship" and attrs.get("TargetMode") != "External":
            target = attrs.get("Target", "")
            part = (
                target.lstrip("/")
                if target.startswith("/")
                else posixpath.normpath(posixpath.join(base, target))
            )
            targets[attrs.get("Id", "")] = part
            types[attrs.get("Type", "").rsplit("/", 1)[-1]] = part

    _parse(archive, rels_member, start)
    targets.update({f"type:{kind}": part for kind, part in types.items()})
    return targets


def read_book(archive: zipfile.ZipFile) -> Book:
    """The workbook part, its relationships, shared strings and date styles."""
    rels = _relationships(archive, "xl/_rels/workbook.xml.rels", "xl")
    sheets: dict[str, str] = {}
    names: list[DefinedName] = []
    epoch: list[Any] = [WINDOWS_EPOCH]
    current: dict[str, Any] = {}
    text: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        tag = _local(name)
        if tag == "sheet":
            part = rels.get(attrs.get(REL_ID, ""))
            if part and "name" in attrs:
                sheets[attrs["name"]] = part
        elif tag == "definedName":
            current.update(name=attrs.get("name", ""), local="localSheetId" in attrs)
            text.clear()
        elif tag == "workbookPr" and attrs.get("date1904", "").lower() in ("1", "true"):
            epoch[0] = CALENDAR_MAC_1904

    def end(name: str) -> None:
        if _local(name) == "definedName" and current:
            names.append(DefinedName(current["name"], "".join(text), current["local"]))
            current.clear()

    def data(chunk: str) -> None:
        if current:
            text.append(chunk)

    _parse(archive, "xl/workbook.xml", start, end, data)
    book = Book(sheets=sheets, names=names, epoch=epoch[0])
    strings = rels.get("type:sharedStrings")
    if strings and strings in archive.NameToInfo:
        book.shared_strings = _shared_strings(archive, strings)
    styles = rels.get("type:styles")
    if styles and styles in archive.NameToInfo:
        book.date_styles, book.timedelta_styles = _date_styles(archive, styles)
    return book


def _shared_strings(archive: zipfile.ZipFile, member: str) -> list[str]:
    """Each <si>'s text: its <t>, or its runs' <t> joined; phonetic runs left out."""
    strings: list[str] = []
    parts: list[str] = []
    state = {"in_t": False, "phonetic": 0}

    def start(name: str, _attrs: dict[str, str]) -> None:
        tag = _local(name)
        if tag == "si":
            parts.clear()
        elif tag == "rPh":
            state["phonetic"] += 1
        elif tag == "t" and not state["phonetic"]:
            state["in_t"] = True

    def end(name: str) -> None:
        tag = _local(name)
        if tag == "t":
            state["in_t"] = False
        elif tag == "rPh":
            state["phonetic"] -= 1
        elif tag == "si":
            strings.append("".join(parts).replace("x005F_", ""))

    def data(chunk: str) -> None:
        if state["in_t"]:
            parts.append(chunk)

    _parse(archive, member, start, end, data)
    return strings


def _date_styles(archive: zipfile.ZipFile, member: str) -> tuple[set[int], set[int]]:
    """Indexes of cellXfs whose number format is a date (or a duration), as openpyxl sees it."""
    custom: dict[int, str] = {}
    formats: list[int] = []
    depth = {"cellXfs": 0}

    def start(name: str, attrs: dict[str, str]) -> None:
        tag = _local(name)
        if tag == "numFmt":
            number = attrs.get("numFmtId", "")
            if number.isdigit():
                custom[int(number)] = attrs.get("formatCode", "")
        elif tag == "cellXfs":
            depth["cellXfs"] += 1
        elif tag == "xf" and depth["cellXfs"]:
            try:
                formats.append(int(attrs.get("numFmtId", "0")))
            except ValueError:
                formats.append(0)

    def end(name: str) -> None:
        if _local(name) == "cellXfs":
            depth["cellXfs"] -= 1

    _parse(archive, member, start, end)
    dates, durations = set(), set()
    for index, number in enumerate(formats):
        code = custom.get(number) if number in custom else builtin_format_code(number)
        if code and is_date_format(code):
            dates.add(index)
        if code and is_timedelta_format(code):
            durations.add(index)
    return dates, durations


@dataclass
class SheetCells:
    values: dict[tuple[int, int], Any]
    formulas_without_value: set[tuple[int, int]]


def read_cells(
    archive: zipfile.ZipFile, book: Book, member: str, bounds: tuple[int, int, int, int]
) -> SheetCells:
    """Values of the cells inside (min_col, min_row, max_col, max_row), openpyxl data-only."""
    min_col, min_row, max_col, max_row = bounds
    values: dict[tuple[int, int], Any] = {}
    formulas: set[tuple[int, int]] = set()
    shared = book.shared_strings
    # row, col, wanted, type, style, has formula, collecting, text, in <is>, phonetic depth
    cell: dict[str, Any] = {"row": 0, "col": 0, "wanted": False}
    text: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        tag = name[name.rfind(" ") + 1 :]
        if tag == "c":
            ref = attrs.get("r")
            match = _CELL_REF.match(ref) if ref else None
            if match:
                cell["col"] = column_index(match.group(1))
                cell["row"] = row = int(match.group(2))
            else:
                cell["col"] += 1
                row = cell["row"]
            if row > max_row:
                raise _Stop
            wanted = row >= min_row and min_col <= cell["col"] <= max_col
            cell["wanted"] = wanted
            if wanted:
                cell["t"] = attrs.get("t", "n")
                cell["s"] = attrs.get("s")
                cell["f"] = False
                cell["v"] = None
                cell["inline"] = False
                cell["phonetic"] = 0
        elif tag == "row":
            ref = attrs.get("r")
            cell["row"] = int(ref) if ref and ref.isdigit() else cell["row"] + 1
            cell["col"] = 0
            if cell["row"] > max_row:
                raise _Stop
        elif not cell["wanted"]:
            return
        elif tag == "v":
            text.clear()
            cell["collect"] = True
        elif tag == "f":
            cell["f"] = True
        elif tag == "is":
            cell["inline"] = True
            text.clear()
        elif tag == "rPh":
            cell["phonetic"] += 1
        elif tag == "t" and cell["inline"] and not cell["phonetic"]:
            cell["collect"] = True

    def end(name: str) -> None:
        if not cell["wanted"]:
            return
        tag = name[name.rfind(" ") + 1 :]
        if tag == "v":
            cell["v"] = "".join(text)
            cell["collect"] = False
        elif tag == "t":
            cell["collect"] = False
        elif tag == "rPh":
            cell["phonetic"] -= 1
        elif tag == "c":
            key = (cell["row"], cell["col"])
            value = _value(cell, "".join(text) if cell["inline"] else cell["v"], book, shared)
            if value is not None:
                values[key] = value
            elif cell["f"]:
                formulas.add(key)
            cell["wanted"] = False

    def data(chunk: str) -> None:
        if cell.get("collect"):
            text.append(chunk)

    _parse(archive, member, start, end, data)
    return SheetCells(values, formulas)


def _value(cell: dict[str, Any], raw: str | None, book: Book, shared: list[str]) -> Any:
    kind = cell["t"]
    if kind == "inlineStr":
        return raw if cell["inline"] else None
    if not raw:
        return None
    if kind == "n":
        number: int | float = float(raw) if ("." in raw or "E" in raw or "e" in raw) else int(raw)
        style = int(cell["s"]) if cell["s"] and cell["s"].isdigit() else 0
        if style in book.date_styles:
            try:
                return from_excel(number, book.epoch, timedelta=style in book.timedelta_styles)
            except (OverflowError, ValueError):
                return "#VALUE!"
        return number
    if kind == "s":
        return shared[int(raw)]
    if kind == "b":
        return bool(int(raw))
    if kind == "d":
        return from_ISO8601(raw)
    return raw  # "str" (a formula's text result) and "e" (an error such as #N/A)


def read_custom_property(archive: zipfile.ZipFile, wanted: str) -> str | None:
    """The text of one custom document property (docProps/custom.xml), if present."""
    rels = _relationships(archive, "_rels/.rels", "")
    member = rels.get("type:custom-properties", "docProps/custom.xml")
    if member not in archive.NameToInfo:
        return None
    found: dict[str, Any] = {"inside": False, "depth": 0}
    text: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        if _local(name) == "property":
            found["inside"] = attrs.get("name") == wanted
        elif found["inside"]:
            found["depth"] += 1

    def end(name: str) -> None:
        if _local(name) == "property" and found["inside"]:
            found["value"] = "".join(text)
            raise _Stop
        if found["inside"]:
            found["depth"] -= 1

    def data(chunk: str) -> None:
        if found["inside"] and found["depth"]:
            text.append(chunk)

    _parse(archive, member, start, end, data)
    return found.get("value")
