"""Test helpers: fill templates by defined name, re-save through LibreOffice, tamper."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.utils.cell import range_boundaries

from mou.intake.decide import IngestOutcome, ingest_submission
from mou.intake.record import record_submission
from mou.settings import Settings
from mou.store.database import session_scope
from mou.workbook.layout import ROW_KEY_COLUMNS


def _target(wb: Any, name: str) -> tuple[Any, int, int]:
    sheet, ref = next(iter(wb.defined_names[name].destinations))
    min_col, min_row, _, _ = range_boundaries(ref.replace("$", ""))
    return wb[sheet], min_row, min_col


def fill(template: bytes, answers: dict[str, Any], keyed: set[str] = frozenset()) -> bytes:
    """Write answers where the defined names point, as a person typing would.

    Scalars: ``{key: value}``. Free tables: ``{key: [{column: value}, ...]}`` in column order
    of the dict given by ``columns``. Tables listed in ``keyed`` take ``{row_index: {...}}``.
    """
    wb = load_workbook(io.BytesIO(template))
    for key, value in answers.items():
        ws, row, col = _target(wb, key)
        if isinstance(value, list | dict):
            rows = value.items() if isinstance(value, dict) else enumerate(value)
            offset = ROW_KEY_COLUMNS if key in keyed else 0
            for index, cells in rows:
                for position, cell_value in enumerate(cells):
                    if cell_value is not None:
                        ws.cell(row=row + index, column=col + offset + position, value=cell_value)
        else:
            ws.cell(row=row, column=col, value=value)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def soffice() -> str:
    path = shutil.which("soffice") or shutil.which("libreoffice")
    if path is None:
        message = "LibreOffice (soffice) is not installed"
        if os.environ.get("MOU_REQUIRE_LIBREOFFICE") not in (None, "", "0"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def libreoffice_convert(data: bytes, suffix: str, target: str) -> bytes:
    """Open the file in LibreOffice and save it as ``target`` (e.g. 'xlsx', 'xls', 'ods'), or
    print it ('pdf') as LibreOffice shows it."""
    program = soffice()
    filters = {"xlsx": 'xlsx:"Calc MS Excel 2007 XML"', "xls": "xls", "ods": "ods", "pdf": "pdf"}
    with tempfile.TemporaryDirectory() as workdir:
        source = Path(workdir) / f"in{suffix}"
        source.write_bytes(data)
        out = Path(workdir) / "out"
        profile = Path(workdir) / "profile"
        subprocess.run(
            [
                program,
                f"-env:UserInstallation=file://{profile}",
                "--headless",
                "--norestore",
                "--convert-to",
                filters[target].replace('"', ""),
                "--outdir",
                str(out),
                str(source),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        return (out / f"in.{target}").read_bytes()


def submit_file(
    settings: Settings,
    data: bytes,
    *,
    filename: str | None,
    sender: str | None = None,
    state: str | None = None,
    channel: str = "cli",
) -> tuple[IngestOutcome, bool]:
    """Record (committed first), then ingest: the intake without receipts or events."""
    with session_scope(settings) as session:
        recorded = record_submission(
            session,
            settings,
            data,
            filename=filename,
            sender=sender,
            channel=channel,
            expected_state=state,
        )
    with session_scope(settings) as session:
        return ingest_submission(session, settings, recorded.submission_id), recorded.created


# A Basic macro LibreOffice runs headless: open the file, lift the sheet's protection (the
# templates set none of a password, so anyone can), delete one row, save as .xlsx. The file,
# sheet and row come from the environment (a macro URL takes no arguments). On an error it
# quits without saving: headless, Basic's error dialog would wait for ever.
_DELETE_ROW_MACRO = """<?xml version="1.0" encoding="UTF-8"?>
<script:module xmlns:script="http://openoffice.org/2000/script" script:name="Module1"
 script:language="StarBasic">
Sub DeleteRow
  On Error GoTo Failed
  Dim load(0) As New com.sun.star.beans.PropertyValue
  load(0).Name = "Hidden"
  load(0).Value = True
  doc = StarDesktop.loadComponentFromURL(ConvertToURL(Environ("MOU_IN")), "_blank", 0, load())
  sheet = doc.Sheets.getByName(Environ("MOU_SHEET"))
  sheet.unprotect("")
  sheet.Rows.removeByIndex(CLng(Environ("MOU_ROW")) - 1, 1)
  Dim store(0) As New com.sun.star.beans.PropertyValue
  store(0).Name = "FilterName"
  store(0).Value = "Calc MS Excel 2007 XML"
  doc.storeToURL(ConvertToURL(Environ("MOU_OUT")), store())
  doc.close(True)
  Exit Sub
Failed:
  StarDesktop.terminate()
End Sub
</script:module>
"""


def libreoffice_delete_row(data: bytes, sheet: str, row: int) -> bytes:
    """Open the .xlsx in LibreOffice, delete one row of a sheet (as a person does with
    Tools > Protect Sheet off, then right-click > Delete Rows) and save it as .xlsx again."""
    program = soffice()
    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir)
        profile = root / "profile"
        base = [program, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore"]
        # LibreOffice only runs macros of a profile it has set up itself: set one up, then
        # put the macro in its Standard library.
        subprocess.run(
            [*base, "--terminate_after_init"], check=True, capture_output=True, timeout=180
        )
        (profile / "user/basic/Standard/Module1.xba").write_text(_DELETE_ROW_MACRO)
        source, out = root / "in.xlsx", root / "out.xlsx"
        source.write_bytes(data)
        environment = {
            **os.environ,
            "MOU_IN": str(source),
            "MOU_OUT": str(out),
            "MOU_SHEET": sheet,
            "MOU_ROW": str(row),
        }
        subprocess.run(
            [
                *base,
                "vnd.sun.star.script:Standard.Module1.DeleteRow?language=Basic&location=application",
            ],
            check=True,
            capture_output=True,
            timeout=180,
            env=environment,
        )
        if not out.exists():
            raise RuntimeError(f"LibreOffice could not delete row {row} of {sheet!r}")
        return out.read_bytes()


# What Strict Open XML (ISO/IEC 29500 Strict, Excel's "Strict Open XML Spreadsheet") names
# differently from the transitional .xlsx everyone else writes; longest first, so a
# namespace is not replaced inside a longer one.
STRICT_NAMES = {
    "http://purl.oclc.org/ooxml/officeDocument/relationships/extendedProperties": (
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties"
    ),
    "http://purl.oclc.org/ooxml/officeDocument/relationships/customProperties": (
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
    ),
    "http://purl.oclc.org/ooxml/officeDocument/extendedProperties": (
        "http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"
    ),
    "http://purl.oclc.org/ooxml/officeDocument/customProperties": (
        "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
    ),
    "http://purl.oclc.org/ooxml/officeDocument/docPropsVTypes": (
        "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
    ),
    "http://purl.oclc.org/ooxml/officeDocument/relationships": (
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    ),
    "http://purl.oclc.org/ooxml/spreadsheetml/main": (
        "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    ),
    "http://purl.oclc.org/ooxml/drawingml/main": "http://schemas.openxmlformats.org/drawingml/2006/main",
}


def _renamed(data: bytes, names: dict[str, str]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename.endswith((".xml", ".rels")):
                text = content.decode("utf-8")
                for old, new in names.items():
                    text = text.replace(old, new)
                content = text.encode("utf-8")
            target.writestr(item.filename, content)
    return buffer.getvalue()


def to_strict(data: bytes) -> bytes:
    """The workbook in Strict Open XML's namespaces and relationship types."""
    return _renamed(data, {new: old for old, new in STRICT_NAMES.items()})


def from_strict(data: bytes) -> bytes:
    """A Strict Open XML workbook in transitional names, which openpyxl reads (it reads a
    Strict one as a workbook without sheets)."""
    return _renamed(data, STRICT_NAMES)
