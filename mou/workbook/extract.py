"""Read the raw content of an untrusted workbook: safety checks, identity, named ranges.

Runs inside the sandbox process (see sandbox.py). Knows nothing of forms: it returns the
values of every workbook-level defined name, bounded in size, and the identity tokens.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any
from xml.parsers.expat import ExpatError

from openpyxl.utils.cell import range_boundaries

from mou.workbook import xlsx
from mou.workbook.layout import IDENTITY_NAME, IDENTITY_PROPERTY, LIST_NAME_PREFIX, META_SHEET

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
MAX_ZIP_ENTRIES = 2000
MAX_NAMES = 1000
MAX_RANGE_CELLS = 20_000
# Far beyond any template sheet; such content is ignored, and the sender is told.
LARGE_SHEET_CELLS = 100_000
# Every part but the worksheets is read whole (shared strings, styles...): cap them.
MAX_LOADED_PART_BYTES = 8 * 2**20
# A DTD, in the encodings expat reads: the parser refuses one too (xlsx.UnsafeXml).
_DTD_MARKERS = tuple(
    marker.encode(encoding)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("ascii", "utf-16-le", "utf-16-be")
)
# How a cell starts, unprefixed or with a namespace prefix (<x:c r="A1">).
_CELL_STARTS = (b"<c ", b":c r=")


@dataclass(frozen=True)
class Limits:
    max_inflated_bytes: int
    max_sheet_cells: int


@dataclass
class Problem(Exception):
    """A reason to refuse the file, as a message code and its parameters."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class NamedRange:
    sheet: str
    min_row: int
    min_col: int
    rows: list[list[Any]]


@dataclass
class Extraction:
    tokens: dict[str, str | None]
    meta: dict[str, Any]
    names: dict[str, NamedRange]
    oversized_names: dict[str, int]
    formula_cells: set[tuple[str, int, int]]  # (sheet, row, col) holding a formula, no value
    warnings: list[Problem]


def classify(data: bytes) -> None:
    """Refuse what is not an .xlsx before any parser sees it."""
    if not data:
        raise Problem("empty_file")
    if data.startswith(OLE_MAGIC):
        # Excel wraps a password-protected .xlsx in an OLE container too.
        raise Problem("encrypted" if ENCRYPTED_STREAM in data else "legacy_xls")
    if not data.startswith(b"PK"):
        raise Problem("not_a_workbook")


@dataclass
class ZipReport:
    has_links: bool = False
    cells: dict[str, int] = field(default_factory=dict)  # part -> cells it holds
    damaged: list[str] = field(default_factory=list)  # parts that cannot be inflated


def inspect_zip(data: bytes, limits: Limits) -> ZipReport:
    """Check the container; inflate every member with a cap on bytes actually produced.

    Counts the cells each XML part really holds, since a worksheet's <dimension> is only a
    hint: LibreOffice writes A1:F1048576 for a sheet where a row was deleted, and a hostile
    file can claim little and hold much. A damaged member is noted, not refused here: the
    refusal names the sheet's tab, known once workbook.xml has been read.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise Problem("corrupt", {"detail": "not a valid zip archive"}) from exc
    if len(members) > MAX_ZIP_ENTRIES:
        raise Problem("oversized_content", {"limit": limits.max_inflated_bytes // 2**20})
    names = {m.filename for m in members}
    if "mimetype" in names:
        with archive.open("mimetype") as handle:
            if b"opendocument" in handle.read(200):
                raise Problem("ods")
    if "xl/workbook.xml" not in names:
        # A package whose workbook is elsewhere (openpyxl and Excel follow _rels/.rels to it)
        # is refused, not read: every spreadsheet program writes xl/, and the size and cell
        # checks here know its layout. Its sender is told how to make a usual one.
        if "[Content_Types].xml" in names and any(n.endswith("/workbook.xml") for n in names):
            raise Problem("unusual_layout")
        raise Problem("not_a_workbook")
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        raise Problem("macros")
    total = 0
    report = ZipReport(has_links=any(n.startswith("xl/externalLinks/") for n in names))
    for member in members:
        if member.is_dir():
            continue
        tail = b""
        is_xml = member.filename.endswith((".xml", ".rels", ".vml"))
        loaded_whole = is_xml and not member.filename.startswith("xl/worksheets/")
        size = cells = 0
        try:
            with archive.open(member) as handle:
                while chunk := handle.read(1 << 16):
                    total += len(chunk)
                    size += len(chunk)
                    if total > limits.max_inflated_bytes or (
                        loaded_whole and size > MAX_LOADED_PART_BYTES
                    ):
                        raise Problem(
                            "oversized_content", {"limit": limits.max_inflated_bytes // 2**20}
                        )
                    if is_xml:
                        window = tail + chunk
                        if any(marker in window for marker in _DTD_MARKERS):
                            raise Problem("unsafe_xml")
                        cells += _count_cells(tail, chunk)
                        tail = chunk[-64:]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, zlib.error):
            report.damaged.append(member.filename)
        if cells:
            report.cells[member.filename] = cells
    archive.close()
    return report


def _count_cells(before: bytes, chunk: bytes) -> int:
    """The cells starting in ``chunk``, ``before`` being the end of the previous chunk."""
    count = 0
    for start in _CELL_STARTS:
        # A start split between the chunks lies wholly within this seam, and only one does.
        seam = before[-len(start) + 1 :] + chunk[: len(start) - 1]
        count += chunk.count(start) + seam.count(start)
    return count


def _sheet_sizes(report: ZipReport, book: xlsx.Book, limits: Limits) -> list[Problem]:
    """Refuse a sheet holding more cells than any return could; warn of one far beyond the
    template (only the answer cells are read, so the rest costs nothing but its bytes)."""
    warnings = []
    for part, tab in book.tabs().items():
        cells = report.cells.get(part, 0)
        if cells > limits.max_sheet_cells:
            raise Problem("sheet_too_large", {"sheet": tab, "cells": cells})
        if cells > LARGE_SHEET_CELLS:
            warnings.append(Problem("extra_content", {"sheet": tab, "cells": cells}))
    return warnings


def _damage(report: ZipReport, archive: zipfile.ZipFile) -> Problem:
    """The refusal of a zip with damaged members, naming a damaged sheet by its tab."""
    try:
        tabs = xlsx.read_book(archive).tabs()
    except (ExpatError, xlsx.UnsafeXml, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        tabs = {}  # workbook.xml or its relationships are among the damaged ones
    for part in report.damaged:
        if part in tabs:
            return Problem("corrupt_sheet", {"sheet": tabs[part]})
    return Problem("corrupt", {"detail": f"damaged part {report.damaged[0]}"})


def extract(data: bytes, limits: Limits) -> Extraction:
    """Everything the validator needs from the file, or a Problem saying why not."""
    classify(data)
    report = inspect_zip(data, limits)
    warnings = [Problem("external_links")] if report.has_links else []
    archive = zipfile.ZipFile(io.BytesIO(data))
    try:
        if report.damaged:
            raise _damage(report, archive)
        book = xlsx.read_book(archive)
        warnings += _sheet_sizes(report, book, limits)
        names = {n.name: n for n in book.names if not n.local}  # the last of duplicates wins
        identity_name = names.get(IDENTITY_NAME)
        tokens: dict[str, str | None] = {
            "property": xlsx.read_custom_property(archive, IDENTITY_PROPERTY),
            "name": identity_name.text.strip().strip('"') or None if identity_name else None,
        }
        meta = _meta_sheet(archive, book)
        tokens["meta"] = meta.get("token")
        ranges, oversized = _named_ranges(book, names)
        values, formula_cells = _read_ranges(archive, book, ranges)
    except xlsx.UnsafeXml as exc:
        raise Problem("unsafe_xml") from exc
    except (ExpatError, KeyError, IndexError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise Problem("corrupt", {"detail": type(exc).__name__}) from exc
    finally:
        archive.close()
    return Extraction(tokens, meta, values, oversized, formula_cells, warnings)


def _meta_sheet(archive: zipfile.ZipFile, book: xlsx.Book) -> dict[str, Any]:
    if META_SHEET not in book.sheets:
        return {}
    cells = xlsx.read_cells(archive, book, book.sheets[META_SHEET], (1, 1, 2, 20)).values
    meta: dict[str, Any] = {}
    for row in range(1, 21):
        key = cells.get((row, 1))
        if key is not None:
            meta[str(key)] = cells.get((row, 2))
    return meta


def _named_ranges(
    book: xlsx.Book, names: dict[str, xlsx.DefinedName]
) -> tuple[dict[str, tuple[str, tuple[int, int, int, int]]], dict[str, int]]:
    ranges: dict[str, tuple[str, tuple[int, int, int, int]]] = {}
    oversized: dict[str, int] = {}
    for count, (name, defined) in enumerate(names.items()):
        if count > MAX_NAMES:
            break
        if name.startswith(LIST_NAME_PREFIX) or name == IDENTITY_NAME:
            continue
        area = defined.area()  # None for a constant, a formula or several areas
        if area is None:
            continue
        sheet, ref = area
        try:
            min_col, min_row, max_col, max_row = range_boundaries(ref.replace("$", ""))
        except (ValueError, TypeError):
            continue
        if None in (min_col, min_row, max_col, max_row) or sheet not in book.sheets:
            continue
        cells = (max_col - min_col + 1) * (max_row - min_row + 1)
        if cells > MAX_RANGE_CELLS:
            oversized[name] = cells
            continue
        ranges[name] = (sheet, (min_col, min_row, max_col, max_row))
    return ranges, oversized


def _read_ranges(
    archive: zipfile.ZipFile,
    book: xlsx.Book,
    ranges: dict[str, tuple[str, tuple[int, int, int, int]]],
) -> tuple[dict[str, NamedRange], set[tuple[str, int, int]]]:
    """Every named range's values, one streamed pass per sheet; and, inside them, the cells
    holding a formula without a cached value (the sender's program never calculated it)."""
    by_sheet: dict[str, list[str]] = {}
    for name, (sheet, _) in ranges.items():
        by_sheet.setdefault(sheet, []).append(name)
    result: dict[str, NamedRange] = {}
    formula_cells: set[tuple[str, int, int]] = set()
    for sheet, names in by_sheet.items():
        bounds = [ranges[n][1] for n in names]
        union = (
            min(b[0] for b in bounds),
            min(b[1] for b in bounds),
            max(b[2] for b in bounds),
            max(b[3] for b in bounds),
        )
        try:
            cells = xlsx.read_cells(archive, book, book.sheets[sheet], union)
        except (ExpatError, ValueError, IndexError, zipfile.BadZipFile, EOFError) as exc:
            # Malformed XML, a value that is not one, a shared string that is not there.
            raise Problem("corrupt_sheet", {"sheet": sheet}) from exc
        for name in names:
            c1, r1, c2, r2 = ranges[name][1]
            rows = [
                [cells.values.get((r, c)) for c in range(c1, c2 + 1)] for r in range(r1, r2 + 1)
            ]
            result[name] = NamedRange(sheet=sheet, min_row=r1, min_col=c1, rows=rows)
            formula_cells.update(
                (sheet, r, c)
                for r, c in cells.formulas_without_value
                if r1 <= r <= r2 and c1 <= c <= c2
            )
    return result, formula_cells
