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
from mou.forms import FieldSpec, FormSpec, load_form
from mou.i18n.languages import pick
from mou.reporting.consolidation import ConsolidatedCycle, consolidate
from mou.reporting.consolidation.returns import default_forms_dir

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
# The .xlsx answers sheet puts an English label beside each code (a person reads it there);
# CSV and JSON keep the codes only, for scripts.
LABELLED_ANSWER_COLUMNS = (
    "state",
    "state_name",
    "version",
    "field",
    "field_label",
    "row",
    "row_label",
    "column",
    "value",
    "value_label",
    "carried_forward",
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


class _Labels:
    """English labels of a form's codes: fields, pre-printed rows and choice values."""

    def __init__(self, form: FormSpec | None, consolidated: ConsolidatedCycle) -> None:
        self.form = form
        self.lists: dict[str, dict[str, str]] = {
            "@species": {s.code: pick(s.name, "en") for s in consolidated.species},
            "@activities": {
                line.code: pick(line.label, "en")
                for matrix in consolidated.activities
                for group in matrix.groups
                for line in group.lines
            },
        }

    def _options(self, ref: str | None) -> dict[str, str]:
        if not ref or self.form is None:
            return {}
        if ref not in self.lists:
            self.lists[ref] = {c.value: c.label("en") for c in self.form.choices.get(ref, ())}
        return self.lists[ref]

    def _specs(self, field_key: str, column_key: str) -> tuple[FieldSpec, FieldSpec] | None:
        if self.form is None:
            return None
        try:
            top = self.form.field(field_key)
        except KeyError:
            return None
        if not column_key:
            return top, top
        column = next((c for c in top.columns if c.key == column_key), None)
        return (top, column) if column is not None else None

    def row(self, answer: dict[str, Any]) -> dict[str, Any]:
        specs = self._specs(answer["field"], answer["column"] or "")
        labels = {"field_label": None, "row_label": None, "value_label": None}
        if specs is None:
            return {**answer, **labels}
        top, spec = specs
        labels["field_label"] = (
            top.label("en") if spec is top else f"{top.label('en')}: {spec.label('en')}"
        )
        if answer["row"] and top.row_source:
            labels["row_label"] = self._options(top.row_source).get(answer["row"])
        options = self._options(spec.choices)
        value = answer["value"]
        if options and isinstance(value, list):
            labels["value_label"] = "; ".join(options.get(str(v), str(v)) for v in value)
        elif options and value is not None:
            labels["value_label"] = options.get(str(value))
        return {**answer, **labels}


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


def _write_xlsx(consolidated: ConsolidatedCycle, path: Path, form: FormSpec | None = None) -> None:
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
            # Wide enough for the header and the longest of the first rows' values (labels
            # are read there), within reason.
            longest = max((len(str(_flat(row[column]) or "")) for row in rows[:500]), default=0)
            width = min(60, max(10, len(column) + 2, longest + 2))
            ws.column_dimensions[get_column_letter(index)].width = width

    labels = _Labels(form, consolidated)
    sheet(
        "answers",
        LABELLED_ANSWER_COLUMNS,
        [labels.row(row) for row in answer_rows(consolidated)],
        first=True,
    )
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


def export_consolidated(
    consolidated: ConsolidatedCycle, path: Path, forms_dir: Path | None = None
) -> Path:
    """Write an already consolidated cycle to ``path`` (.xlsx, .csv or .json); the .xlsx
    labels the codes from the form in ``forms_dir`` (the project's by default)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise Refused(
            f"cannot export to {path.name!r}: the file name must end in .xlsx, .csv or .json"
        )
    if path.parent and not path.parent.exists():
        raise Refused(f"cannot export to {path}: the folder {path.parent} does not exist")
    if suffix == ".xlsx":
        form = load_form(forms_dir or default_forms_dir(), consolidated.cycle.instrument_code)
        _write_xlsx(consolidated, path, form)
    else:
        {".csv": _write_csv, ".json": _write_json}[suffix](consolidated, path)
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
    consolidated = consolidate(session, cycle_id, forms_dir=forms_dir)
    return export_consolidated(consolidated, Path(path), forms_dir)
