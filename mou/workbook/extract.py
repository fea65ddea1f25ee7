"""Read the raw content of an untrusted workbook: safety checks, identity, named ranges.

Runs inside the sandbox process (see sandbox.py). Knows nothing of forms: it returns the
values of every workbook-level defined name, bounded in size, and the identity tokens.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from openpyxl.utils.cell import range_boundaries

from mou.workbook.layout import IDENTITY_NAME, IDENTITY_PROPERTY, LIST_NAME_PREFIX, META_SHEET

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
MAX_ZIP_ENTRIES = 2000
MAX_NAMES = 1000
MAX_RANGE_CELLS = 20_000
# Far beyond any template sheet; such content is ignored, and the sender is told.
LARGE_SHEET_CELLS = 100_000
# openpyxl loads every part but the worksheets whole (shared strings, styles...): cap them.
MAX_LOADED_PART_BYTES = 8 * 2**20
_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"([A-Z0-9:$]+)\"")
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")


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
    with_formulas: set[str] = field(default_factory=set)
    has_links: bool = False
    large_sheets: dict[str, int] = field(default_factory=dict)


def inspect_zip(data: bytes, limits: Limits) -> ZipReport:
    """Check the container; inflate every member with a cap on bytes actually produced."""
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
        size = 0
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
                        if b"<!ENTITY" in window or b"<!DOCTYPE" in window:
                            raise Problem("unsafe_xml")
                        if member.filename.startswith("xl/worksheets/"):
                            if _FORMULA.search(window):
                                report.with_formulas.add(member.filename)
                            cells = _check_dimension(window, member.filename, limits)
                            if cells > LARGE_SHEET_CELLS:
                                report.large_sheets[member.filename] = cells
                        tail = chunk[-64:]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise Problem("corrupt", {"detail": f"damaged part {member.filename}"}) from exc
    archive.close()
    return report


def _check_dimension(window: bytes, member: str, limits: Limits) -> int:
    """The cells a sheet's <dimension> claims (0 if absent); refuse absurd claims."""
    match = _DIMENSION.search(window)
    if not match:
        return 0
    try:
        min_col, min_row, max_col, max_row = range_boundaries(match.group(1).decode())
    except (ValueError, TypeError):
        return 0  # a broken <dimension> is ignored; the reader never relies on it
    if None in (min_col, min_row, max_col, max_row):
        return 0
    cells = (max_col - min_col + 1) * (max_row - min_row + 1)
    if cells > limits.max_sheet_cells:
        raise Problem("sheet_too_large", {"sheet": member.rsplit("/", 1)[-1], "cells": cells})
    return cells


def extract(data: bytes, limits: Limits) -> Extraction:
    """Everything the validator needs from the file, or a Problem saying why not."""
    from openpyxl import load_workbook

    classify(data)
    report = inspect_zip(data, limits)
    warnings = [Problem("external_links")] if report.has_links else []
    warnings += [
        Problem("extra_content", {"sheet": member.rsplit("/", 1)[-1], "cells": cells})
        for member, cells in sorted(report.large_sheets.items())
    ]
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except MemoryError:
        raise
    except Exception as exc:  # openpyxl raises many types for malformed parts
        raise Problem("corrupt", {"detail": type(exc).__name__}) from exc
    try:
        tokens = {
            "property": _custom_property(wb, IDENTITY_PROPERTY),
            "name": _name_constant(wb, IDENTITY_NAME),
        }
        meta = _meta_sheet(wb)
        tokens["meta"] = meta.get("token")
        ranges, oversized = _named_ranges(wb)
        names = _read_ranges(wb, ranges)
    finally:
        wb.close()
    formula_cells: set[tuple[str, int, int]] = set()
    if report.with_formulas:
        formula_cells = _formulas_without_values(data, names)
    return Extraction(tokens, meta, names, oversized, formula_cells, warnings)


def _custom_property(wb: Any, name: str) -> str | None:
    try:
        for prop in wb.custom_doc_props.props:
            if prop.name == name:
                return str(prop.value)
    except AttributeError:
        pass
    return None


def _name_constant(wb: Any, name: str) -> str | None:
    defined = wb.defined_names.get(name)
    if defined is None or not defined.attr_text:
        return None
    return defined.attr_text.strip().strip('"')


def _meta_sheet(wb: Any) -> dict[str, Any]:
    if META_SHEET not in wb.sheetnames:
        return {}
    meta: dict[str, Any] = {}
    for row in wb[META_SHEET].iter_rows(min_row=1, max_row=20, max_col=2, values_only=True):
        if row and row[0] is not None:
            meta[str(row[0])] = row[1] if len(row) > 1 else None
    return meta


def _named_ranges(wb: Any) -> tuple[dict[str, tuple[str, tuple[int, int, int, int]]], dict]:
    ranges: dict[str, tuple[str, tuple[int, int, int, int]]] = {}
    oversized: dict[str, int] = {}
    for count, (name, defined) in enumerate(wb.defined_names.items()):
        if count > MAX_NAMES:
            break
        if name.startswith(LIST_NAME_PREFIX) or name == IDENTITY_NAME:
            continue
        try:
            destinations = list(defined.destinations)
        except Exception:
            continue  # a formula or constant, not a range
        if len(destinations) != 1:
            continue
        sheet, ref = destinations[0]
        try:
            min_col, min_row, max_col, max_row = range_boundaries(ref.replace("$", ""))
        except (ValueError, TypeError):
            continue
        if None in (min_col, min_row, max_col, max_row) or sheet not in wb.sheetnames:
            continue
        cells = (max_col - min_col + 1) * (max_row - min_row + 1)
        if cells > MAX_RANGE_CELLS:
            oversized[name] = cells
            continue
        ranges[name] = (sheet, (min_col, min_row, max_col, max_row))
    return ranges, oversized


def _read_ranges(
    wb: Any, ranges: dict[str, tuple[str, tuple[int, int, int, int]]]
) -> dict[str, NamedRange]:
    """Read every named range with one bounded pass per sheet (read-only mode is a stream)."""
    by_sheet: dict[str, list[str]] = {}
    for name, (sheet, _) in ranges.items():
        by_sheet.setdefault(sheet, []).append(name)
    result: dict[str, NamedRange] = {}
    for sheet, names in by_sheet.items():
        bounds = [ranges[n][1] for n in names]
        min_col = min(b[0] for b in bounds)
        min_row = min(b[1] for b in bounds)
        max_col = max(b[2] for b in bounds)
        max_row = max(b[3] for b in bounds)
        ws = wb[sheet]
        ws.reset_dimensions()  # a wrong <dimension> must not truncate what we read
        grid: dict[int, tuple[Any, ...]] = {}
        for index, row in enumerate(
            ws.iter_rows(
                min_row=min_row,
                max_row=max_row,
                min_col=min_col,
                max_col=max_col,
                values_only=True,
            )
        ):
            grid[min_row + index] = row
        for name in names:
            c1, r1, c2, r2 = ranges[name][1]
            rows = []
            for r in range(r1, r2 + 1):
                values = grid.get(r, ())
                rows.append(
                    [
                        values[c - min_col] if c - min_col < len(values) else None
                        for c in range(c1, c2 + 1)
                    ]
                )
            result[name] = NamedRange(sheet=sheet, min_row=r1, min_col=c1, rows=rows)
    return result


def _formulas_without_values(
    data: bytes, names: dict[str, NamedRange]
) -> set[tuple[str, int, int]]:
    """Cells inside named ranges that hold a formula but no cached value."""
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False, keep_links=False)
    found: set[tuple[str, int, int]] = set()
    try:
        for named in names.values():
            empty = {
                (named.min_row + i, named.min_col + j)
                for i, row in enumerate(named.rows)
                for j, value in enumerate(row)
                if value is None
            }
            if not empty:
                continue
            ws = wb[named.sheet]
            ws.reset_dimensions()
            rows = {r for r, _ in empty}
            cols = {c for _, c in empty}
            for offset, row in enumerate(
                ws.iter_rows(
                    min_row=min(rows),
                    max_row=max(rows),
                    min_col=min(cols),
                    max_col=max(cols),
                    values_only=True,
                )
            ):
                r = min(rows) + offset
                for k, value in enumerate(row):
                    c = min(cols) + k
                    if (r, c) in empty and isinstance(value, str) and value.startswith("="):
                        found.add((named.sheet, r, c))
    finally:
        wb.close()
    return found
