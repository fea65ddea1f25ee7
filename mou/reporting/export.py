"""Export of a consolidated cycle: long-format answers (state, field, row, column, value) and
the submission status, as .xlsx, .csv or .json (chosen by the file's suffix).

Ministry text is untrusted: a cell that starts with ``= + - @``, a tab or a carriage return
could run as a formula (or DDE command) when the export is opened in a spreadsheet. In .xlsx
such text is written as an explicit string cell with Excel's quote prefix; in .csv it is
prefixed with ``'``. The value is otherwise unchanged; .json keeps it as is.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from mou.errors import Refused
from mou.i18n.languages import pick
from mou.reporting.consolidation import ConsolidatedCycle, consolidate

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
ANSWER_COLUMNS = (
    "state",
    "state_name",
    "version",
    "field",
    "row",
    "column",
    "value",
    "carried_forward",
)
STATUS_COLUMNS = (
    "state",
    "state_name",
    "role",
    "request_reference",
    "request_sent",
    "deadline",
    "excused",
    "reminders_sent",
    "files_received",
    "first_received",
    "accepted_version",
    "accepted_received",
    "accepted_at",
    "timeliness",
    "days_late",
    "outcome",
)
AUDIT_COLUMNS = ("at", "actor", "action", "state", "submission", "reason", "details")
SUFFIXES = (".xlsx", ".csv", ".json")


def is_formula_like(text: str) -> bool:
    """Would a spreadsheet treat this text as a formula (or DDE) when typed or imported?"""
    return text.startswith(FORMULA_TRIGGERS)


def neutralise(text: str) -> str:
    """The text made inert for CSV: a leading ' where a spreadsheet would see a formula."""
    return "'" + text if is_formula_like(text) else text


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def answer_rows(consolidated: ConsolidatedCycle) -> list[dict[str, Any]]:
    """One row per stored answer of every counted return, in state and form order."""
    rows = []
    for returned in consolidated.returns:
        for answer in returned.answers:
            rows.append(
                {
                    "state": returned.state.code,
                    "state_name": returned.state.label("en"),
                    "version": returned.version,
                    "field": answer.field_key,
                    "row": answer.row_key,
                    "column": answer.column_key,
                    "value": answer.value,
                    "carried_forward": answer.carried_forward,
                }
            )
    return rows


def status_rows(consolidated: ConsolidatedCycle) -> list[dict[str, Any]]:
    """Per state: request, reminders, submissions and outcome (what `mou status` shows)."""
    return [
        {
            "state": s.state.code,
            "state_name": s.state.label("en"),
            "role": s.state.role,
            "request_reference": s.request_reference,
            "request_sent": _iso(s.requested_at),
            "reminders_sent": s.reminders_sent,
            "files_received": s.files_received,
            "first_received": _iso(s.first_received_at),
            "accepted_version": s.accepted_version,
            "accepted_received": _iso(s.accepted_received_at),
            "accepted_at": _iso(s.accepted_at),
            "timeliness": s.timeliness,
            "days_late": s.days_late,
            "outcome": s.outcome,
            "deadline": _iso(s.deadline),
            "excused": s.excused,
        }
        for s in consolidated.states
    ]


def cycle_summary(consolidated: ConsolidatedCycle) -> dict[str, Any]:
    cycle = consolidated.cycle
    return {
        "id": cycle.id,
        "instrument": cycle.instrument_code,
        "instrument_name": pick(cycle.instrument_name, "en"),
        "period": cycle.period,
        "period_start": _iso(cycle.period_start),
        "period_end": _iso(cycle.period_end),
        "deadline": _iso(cycle.deadline),
        "form_id": cycle.form_id,
        "form_version": cycle.form_version,
        "generated_at": _iso(consolidated.generated_at),
    }


def _flat(value: Any) -> Any:
    """A cell value for a spreadsheet: lists joined, everything else unchanged."""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return value


def _write_json(consolidated: ConsolidatedCycle, path: Path) -> None:
    data = {
        "cycle": cycle_summary(consolidated),
        "status": status_rows(consolidated),
        "answers": answer_rows(consolidated),
        "audit": list(consolidated.audit),
    }
    path.write_text(
        json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _write_csv(consolidated: ConsolidatedCycle, path: Path) -> None:
    # utf-8-sig so Excel opens Cyrillic correctly; QUOTE_MINIMAL keeps it readable elsewhere.
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ANSWER_COLUMNS)
        for row in answer_rows(consolidated):
            cells = []
            for column in ANSWER_COLUMNS:
                value = _flat(row[column])
                if isinstance(value, str):
                    value = neutralise(value)
                elif isinstance(value, bool):
                    value = "true" if value else "false"
                cells.append("" if value is None else value)
            writer.writerow(cells)


def _write_xlsx(consolidated: ConsolidatedCycle, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    moment = consolidated.generated_at.astimezone(dt.UTC).replace(tzinfo=None)
    workbook.properties.created = moment
    workbook.properties.modified = moment
    workbook.properties.creator = "MoU reporting service"
    workbook.properties.title = (
        f"{consolidated.cycle.instrument_code} {consolidated.cycle.period}: national reports"
    )

    def sheet(
        title: str, columns: tuple[str, ...], rows: list[dict[str, Any]], first: bool
    ) -> None:
        ws = workbook.active if first else workbook.create_sheet()
        ws.title = title
        ws.append(list(columns))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row_index, row in enumerate(rows, start=2):
            for column_index, column in enumerate(columns, start=1):
                value = _flat(row[column])
                cell = ws.cell(row=row_index, column=column_index)
                if isinstance(value, str):
                    cell.value = value
                    # openpyxl turns "=..." into a formula cell; force a plain string and
                    # Excel's quote prefix so re-editing the cell keeps it text.
                    cell.data_type = "s"
                    if is_formula_like(value):
                        cell.quotePrefix = True
                else:
                    cell.value = value
        ws.freeze_panes = "A2"
        if rows:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(rows) + 1}"
        for index, column in enumerate(columns, start=1):
            ws.column_dimensions[get_column_letter(index)].width = max(10, len(column) + 2)

    sheet("answers", ANSWER_COLUMNS, answer_rows(consolidated), first=True)
    sheet("status", STATUS_COLUMNS, status_rows(consolidated), first=False)
    summary = cycle_summary(consolidated)
    sheet(
        "cycle",
        ("key", "value"),
        [{"key": k, "value": "" if v is None else v} for k, v in summary.items()],
        first=False,
    )
    sheet(
        "audit",
        AUDIT_COLUMNS,
        [
            {**entry, "details": json.dumps(entry["details"], ensure_ascii=False)}
            for entry in consolidated.audit
        ],
        first=False,
    )
    workbook.save(path)


def export_consolidated(consolidated: ConsolidatedCycle, path: Path) -> Path:
    """Write an already consolidated cycle to ``path`` (.xlsx, .csv or .json)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise Refused(
            f"cannot export to {path.name!r}: the file name must end in .xlsx, .csv or .json"
        )
    if path.parent and not path.parent.exists():
        raise Refused(f"cannot export to {path}: the folder {path.parent} does not exist")
    writers = {".xlsx": _write_xlsx, ".csv": _write_csv, ".json": _write_json}
    writers[suffix](consolidated, path)
    return path


def export_cycle(
    session: Session, cycle_id: int, path: Path, *, forms_dir: Path | None = None
) -> Path:
    """Consolidate a cycle and export it; the format follows the suffix of ``path``."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise Refused(
            f"cannot export to {Path(path).name!r}: the file name must end in .xlsx, .csv or .json"
        )
    return export_consolidated(consolidate(session, cycle_id, forms_dir=forms_dir), Path(path))
