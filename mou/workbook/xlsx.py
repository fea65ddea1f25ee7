"""A lean reader for the parts of an .xlsx that intake needs, on expat.

openpyxl (even read-only) builds objects for every style, sheet and property, which was
most of the cost of reading a return (benchmarks/RESULTS-intake.md). Intake needs much
less: the workbook-level defined names, the sheet names, the shared strings, which cell
styles are dates, one custom property, and the cells inside the named ranges. This module
reads exactly that, streaming the worksheets and stopping below the last row needed.

Values follow openpyxl's data-only rules (its `_reader.WorkSheetParser.parse_cell`), so the
validator sees the same Python values: ints and floats as written, shared and inline strings,
booleans, error strings, ISO dates, and date-styled numbers as datetimes on the workbook's
epoch; only the cell formats, never a conditional format's, make a number a date. One
difference: text escapes (`_x000D_`), which openpyxl leaves in cell values, are decoded as
Excel and LibreOffice decode them (`decode_escapes`).

Strict Open XML workbooks (ISO/IEC 29500 Strict, Excel's "Strict Open XML Spreadsheet"),
which openpyxl reads as having no sheets, are read too: for what this reader looks at they
differ in namespace names, and in writing dates as ISO text (t="d" cells, read like any).

Runs in the sandbox child, after `extract.inspect_zip` has bounded every part and refused
DTDs and entity declarations; the parser refuses them again (`UnsafeXml`) whatever the
part's encoding.
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

# The r:id attribute of a <sheet>, as expat names it: transitional .xlsx, then Strict.
REL_IDS = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships id",
    "http://purl.oclc.org/ooxml/officeDocument/relationships id",
)
# The custom properties' relationship type, transitional then Strict (the last path segment).
CUSTOM_PROPERTIES = ("custom-properties", "customProperties")
CHUNK = 1 << 16
_CELL_REF = re.compile(r"([A-Z]{1,3})(\d+)$")
# A defined name that is a single area: Sheet!$A$1 or 'Sheet name'!$A$1:$C$9.
_AREA = re.compile(
    r"^(?:'((?:[^']|'')+)'|([^'!:,()\s][^'!:,()]*))!"
    r"(\$?[A-Za-z]{1,3}\$?\d+(?::\$?[A-Za-z]{1,3}\$?\d+)?)$"
)


# ST_Xstring: Excel writes a character XML would not keep as _xHHHH_ (a Windows line
# break's CR as _x000D_), and the "_" of a text that would read as an escape as _x005F_.
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
# What a decoded escape may give that no database column stores: NUL, half a surrogate pair.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _Stop(Exception):
    """Raised from a handler: everything needed from this part has been read."""


class UnsafeXml(Exception):
    """A part declares a DTD or entities: refused, whatever its encoding."""


def _local(name: str) -> str:
    return name[name.rfind(" ") + 1 :]


def _refuse_dtd(*_args: Any) -> None:
    raise UnsafeXml


def _escaped_char(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def decode_escapes(text: str) -> str:
    """The text of one <t> or <v> with Excel's _xHHHH_ escapes decoded, left to right in one
    pass, as Excel and LibreOffice read them ("_x005F_x000D_" is the text "_x000D_").

    openpyxl leaves them in cell values and drops every "x005F_" from shared strings; its
    `utils.escape.unescape` decodes them as here. A pair of escaped surrogates is one
    character; NUL is dropped and a lone surrogate becomes U+FFFD, since neither can be stored.
    """
    if "_x" not in text:
        return text
    decoded = _ESCAPE.sub(_escaped_char, text)
    if _UNSTORABLE.search(decoded):
        decoded = decoded.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        decoded = decoded.replace("\x00", "")
    return decoded


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
    # No part of a workbook has a DTD. The byte check before (extract.inspect_zip) sees
    # "<!DOCTYPE" in UTF-8 and UTF-16; here it is refused in whatever encoding expat reads,
    # before any entity of it is declared or expanded.
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
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

    def tabs(self) -> dict[str, str]:
        """Part -> the sheet's name on its tab (what a person knows it by), in tab order."""
        tabs: dict[str, str] = {}
        for name, part in self.sheets.items():
            tabs.setdefault(part, name)
        return tabs


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
            rel_id = attrs.get(REL_IDS[0]) or attrs.get(REL_IDS[1], "")
            part = rels.get(rel_id)
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
    # in_t: inside a <t> to keep; start: where its text begins in parts; phonetic: <rPh> depth
    state = {"in_t": False, "start": 0, "phonetic": 0}

    def start(name: str, _attrs: dict[str, str]) -> None:
        tag = _local(name)
        if tag == "si":
            parts.clear()
        elif tag == "rPh":
            state["phonetic"] += 1
        elif tag == "t" and not state["phonetic"]:
            state["in_t"] = True
            state["start"] = len(parts)

    def end(name: str) -> None:
        tag = _local(name)
        if tag == "t" and state["in_t"]:
            state["in_t"] = False
            # Excel escapes each run's <t> on its own: decode it on its own.
            text = decode_escapes("".join(parts[state["start"] :]))
            del parts[state["start"] :]
            parts.append(text)
        elif tag == "rPh":
            state["phonetic"] -= 1
        elif tag == "si":
            strings.append("".join(parts))

    def data(chunk: str) -> None:
        if state["in_t"]:
            parts.append(chunk)

    _parse(archive, member, start, end, data)
    return strings


def _date_styles(archive: zipfile.ZipFile, member: str) -> tuple[set[int], set[int]]:
    """Indexes of cellXfs whose number format is a date (or a duration), as openpyxl sees it.

    Only the stylesheet's own <numFmts> and <cellXfs> (children of <styleSheet>) count: a
    conditional format's <dxf> carries a <numFmt> whose id may be a cell format's too, and
    says nothing about what the cell holds.
    """
    custom: dict[int, str] = {}
    formats: list[int] = []
    # depth of the current element (styleSheet is 1); section: the child of styleSheet it is in
    where = {"depth": 0, "section": ""}

    def start(name: str, attrs: dict[str, str]) -> None:
        where["depth"] += 1
        depth, tag = where["depth"], _local(name)
        if depth == 2:
            where["section"] = tag
        elif depth != 3:
            return
        elif tag == "numFmt" and where["section"] == "numFmts":
            number = attrs.get("numFmtId", "")
            if number.isdigit():
                custom[int(number)] = attrs.get("formatCode", "")
        elif tag == "xf" and where["section"] == "cellXfs":
            try:
                formats.append(int(attrs.get("numFmtId", "0")))
            except ValueError:
                formats.append(0)

    def end(_name: str) -> None:
        where["depth"] -= 1

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
            cell["t_start"] = len(text)

    def end(name: str) -> None:
        if not cell["wanted"]:
            return
        tag = name[name.rfind(" ") + 1 :]
        if tag == "v":
            cell["v"] = "".join(text)
            cell["collect"] = False
        elif tag == "t" and cell.get("collect"):
            cell["collect"] = False
            # Each <t> of an inline string is escaped on its own, as a shared string's.
            run = decode_escapes("".join(text[cell["t_start"] :]))
            del text[cell["t_start"] :]
            text.append(run)
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
    if kind == "str":  # a formula's text result, escaped as any text
        return decode_escapes(raw)
    return raw  # "e": an error such as #N/A


def read_custom_property(archive: zipfile.ZipFile, wanted: str) -> str | None:
    """The text of one custom document property (docProps/custom.xml), if present."""
    rels = _relationships(archive, "_rels/.rels", "")
    member = next(
        (rels[f"type:{kind}"] for kind in CUSTOM_PROPERTIES if f"type:{kind}" in rels),
        "docProps/custom.xml",
    )
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
