"""Test helpers: fill templates by defined name, re-save through LibreOffice, tamper."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
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
    """Open the file in LibreOffice and save it as ``target`` (e.g. 'xlsx', 'xls', 'ods')."""
    program = soffice()
    filters = {"xlsx": 'xlsx:"Calc MS Excel 2007 XML"', "xls": "xls", "ods": "ods"}
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
