"""``mou demo``'s core: one whole cycle of each instrument on a temporary var/ (SQLite).

One run is shared by the module (it renders five PDFs); a second run on the same var/ must add
nothing. Expectations are computed from the demo's scenario and the reminder rules, never
copied from a run.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import getaddresses

import pytest
from sqlalchemy import func, select

from mou.catalogue.bootstrap import prepare_database
from mou.cycle.opening import open_cycle
from mou.cycle.rules import step_due
from mou.demo.run import run_demo
from mou.demo.scenario import REMINDER_OFFSETS, SCENARIOS
from mou.demo.summary import DemoReport
from mou.errors import Refused
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope

TODAY = dt.date(2027, 1, 15)  # the Bukhara Deer MoU's first scheduled request


@dataclass
class Run:
    settings: Settings
    report: DemoReport
    seconds: float


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    settings = Settings(var_dir=tmp_path_factory.mktemp("demo") / "var")
    seen: list[tuple[int, int, str]] = []
    started = time.monotonic()
    report = run_demo(settings, today=TODAY, progress=lambda *p: seen.append(p))
    elapsed = time.monotonic() - started
    print(f"\ndemo run: {elapsed:.1f} s")
    assert seen and seen[-1][0] == seen[-1][1]  # progress reached its total
    yield Run(settings, report, elapsed)


def count(settings: Settings, model: type, *where) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def cycle_of(run: Run, instrument: str):
    return next(c for c in run.report.cycles if c.instrument == instrument)


def test_both_cycles_are_consolidated_into_pdfs(first: Run) -> None:
    bukhara, cami = cycle_of(first, "bukhara-deer"), cycle_of(first, "cami")
    assert bukhara.created and cami.created
    assert len(bukhara.states) == 5 and len(cami.states) == 14
    assert sorted(p.name for p in bukhara.pdfs) == [
        "progress-summary-en.pdf",
        "progress-summary-ru.pdf",
    ]
    assert sorted(p.name for p in cami.pdfs) == [
        f"progress-summary-{lang}.pdf" for lang in ("en", "fr", "ru")
    ]
    for pdf in first.report.pdfs:
        assert pdf.read_bytes().startswith(b"%PDF")
    for cycle in first.report.cycles:
        assert cycle.pdfs == cycle.rendered


def test_every_state_has_one_current_accepted_return(first: Run) -> None:
    for cycle, expected in ((cycle_of(first, "bukhara-deer"), 5), (cycle_of(first, "cami"), 14)):
        current = count(
            first.settings,
            m.Submission,
            m.Submission.cycle_id == cycle.cycle_id,
            m.Submission.status == "accepted",
            m.Submission.superseded_by_id.is_(None),
        )
        assert current == expected == len(cycle.accepted)


def test_errors_refused_then_corrected_and_a_revision_supersedes(first: Run) -> None:
    bukhara = cycle_of(first, "bukhara-deer")
    assert count(first.settings, m.Submission, m.Submission.superseded_by_id.is_not(None)) == 1
    assert bukhara.superseded == 1 and bukhara.rejected == 1
    assert bukhara.corrected == ["TM"]
    [refused] = [s for s in first.report.steps if s.kind == "errors"]
    assert refused.status == "rejected" and refused.issues == ["above_max", "not_integer"]
    [correction] = [s for s in first.report.steps if s.kind == "correction"]
    # The refused file took no version: the corrected one is the state's first.
    assert refused.version is None
    assert (correction.state, correction.status, correction.version) == ("TM", "accepted", 1)
    [revision] = [s for s in first.report.steps if s.kind == "revision"]
    with session_scope(first.settings) as session:
        old = session.scalars(
            select(m.Submission).where(m.Submission.superseded_by_id == revision.submission_id)
        ).one()
        assert old.state.code == revision.state and old.status == "accepted"


def test_late_states_report_after_the_escalation(first: Run) -> None:
    assert cycle_of(first, "bukhara-deer").late == ["AF"]
    assert cycle_of(first, "cami").late == ["PK"]
    for step in first.report.steps:
        assert step.status in ("accepted", "rejected") and not step.done_before


def test_late_states_stand_late_in_the_status_and_the_report(first: Run) -> None:
    """The demo records each file on its day of the story: its late states are late in
    `mou status` and in the progress summary, whatever the real date."""
    from mou.cycle.standing import cycle_status
    from mou.reporting.consolidation import consolidate

    for instrument, late in (("bukhara-deer", "AF"), ("cami", "PK")):
        cycle = cycle_of(first, instrument)
        with session_scope(first.settings) as session:
            states = {s["state"]: s for s in cycle_status(session, cycle.cycle_id)["states"]}
            consolidated = consolidate(session, cycle.cycle_id, forms_dir=first.settings.forms_dir)
        assert states[late]["on_time"] is False, states[late]
        assert [c for c, s in states.items() if s["on_time"] is False] == [late]
        report_late = [s.state.code for s in consolidated.states if s.timeliness == "late"]
        assert report_late == [late] and consolidated.counts.late == 1


def expected_reminders(run: Run) -> set[str]:
    """Outbox keys the rules give for the demo's timeline (reminders run before returns)."""
    cycles = {c.instrument: c for c in run.report.cycles}
    days = {
        c.deadline + dt.timedelta(days=offset)
        for c in cycles.values()
        for offset in REMINDER_OFFSETS
    }
    keys = set()
    for scenario in SCENARIOS:
        cycle = cycles[scenario.instrument]
        first_accepted: dict[str, dt.date] = {}
        for step in scenario.steps:
            if step.kind != "errors":
                day = cycle.deadline + dt.timedelta(days=step.offset)
                first_accepted.setdefault(step.state, day)
        for day in days:
            rule = step_due(cycle.deadline, day)
            if rule is None:
                continue
            for state in cycle.states:
                if first_accepted[state] >= day:
                    keys.add(f"reminder:{cycle.cycle_id}:{state}:{rule.name}")
    return keys


def test_reminders_only_to_states_without_an_accepted_return_at_that_time(first: Run) -> None:
    with session_scope(first.settings) as session:
        reminders = session.scalars(select(m.OutboxMessage).filter_by(kind="reminder")).all()
        assert {r.key for r in reminders} == expected_reminders(first)
        for reminder in reminders:
            accepted_before = session.scalar(
                select(func.count(m.Submission.id)).where(
                    m.Submission.cycle_id == reminder.cycle_id,
                    m.Submission.state_id == reminder.state_id,
                    m.Submission.status == "accepted",
                    m.Submission.decided_at < reminder.created_at,
                )
            )
            assert accepted_before == 0, reminder.key
    assert sum(run.sent for run in first.report.reminders) == len(reminders)


def test_every_email_is_an_eml_file(first: Run) -> None:
    report = first.report
    assert report.transport == "files" and report.outbox_dir == first.settings.outbox_dir
    files = sorted(report.outbox_dir.glob("*.eml"))
    sent = count(first.settings, m.OutboxMessage, m.OutboxMessage.status == "sent")
    assert len(files) == report.eml_files == sent == sum(report.outbox.values())
    assert report.outbox["request"] == 5 + 14
    assert report.outbox["receipt"] == report.returns == len(report.steps)
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients = [a for _, a in getaddresses(message.get_all("To", []))]
        assert recipients and all(a.endswith("@example.org") for a in recipients)


def test_the_report_says_where_everything_is(first: Run) -> None:
    report = first.report
    text = "\n".join(report.lines())
    assert report.database.startswith("sqlite:///") and report.database in text
    assert str(report.files_dir) in text and str(report.outbox_dir) in text
    assert all(str(pdf) in text for pdf in report.pdfs)
    assert report.raw_files == count(first.settings, m.StoredFile) > report.returns
    assert report.new_submissions == report.returns == sum(len(s.steps) for s in SCENARIOS)
    assert report.as_dict()["pdfs"] == report.pdfs


def test_running_again_adds_nothing(first: Run) -> None:
    before = {
        "submissions": count(first.settings, m.Submission),
        "outbox": count(first.settings, m.OutboxMessage),
        "files": count(first.settings, m.StoredFile),
        "eml": len(list(first.settings.outbox_dir.glob("*.eml"))),
        "pdfs": {p: p.stat().st_mtime_ns for p in first.report.pdfs},
    }
    again = run_demo(first.settings, today=TODAY + dt.timedelta(days=3), workers=1)
    assert not any(c.created for c in again.cycles)
    assert again.new_submissions == 0 and again.new_messages == 0
    assert all(step.done_before for step in again.steps)
    assert all(run.sent == 0 for run in again.reminders)
    assert [c.deadline for c in again.cycles] == [c.deadline for c in first.report.cycles]
    after = {
        "submissions": count(first.settings, m.Submission),
        "outbox": count(first.settings, m.OutboxMessage),
        "files": count(first.settings, m.StoredFile),
        "eml": len(list(first.settings.outbox_dir.glob("*.eml"))),
        "pdfs": {p: p.stat().st_mtime_ns for p in again.pdfs},
    }
    assert after == before
    assert "nothing new" in "\n".join(again.lines())


def test_refuses_a_database_with_other_cycles(sqlite_settings: Settings) -> None:
    prepare_database(sqlite_settings)
    with session_scope(sqlite_settings) as session:
        open_cycle(
            session,
            sqlite_settings,
            "bukhara-deer",
            "2023-2024",
            dt.date(2025, 3, 31),
            today=dt.date(2025, 1, 15),
        )
    with pytest.raises(Refused, match="bukhara-deer 2023-2024"):
        run_demo(sqlite_settings, today=TODAY)
    assert count(sqlite_settings, m.OutboxMessage) == 0


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_short_matrix_is_never_split_over_two_pages(first: Run, language: str) -> None:
    """The Bukhara theme matrix (6 rows) stays on one page with its heading: read from the
    demo's PDF (tests/test_reports.py pushes it over every part of a page)."""
    import io
    import re

    from pypdf import PdfReader

    from mou.i18n.languages import pick
    from mou.reporting.consolidation import consolidate

    cycle = cycle_of(first, "bukhara-deer")
    [pdf] = [p for p in cycle.pdfs if p.name == f"progress-summary-{language}.pdf"]
    with session_scope(first.settings) as session:
        data = consolidate(session, cycle.cycle_id, forms_dir=first.settings.forms_dir)
    themes = [pick(line.label, language) for line in data.activities[0].groups[0].lines]
    pages = [page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages]

    def squash(text: str) -> str:
        return re.sub(r"\s+", "", text)

    heading = re.compile(r"^3\.2\. .*$", re.M)
    [page] = [text for text in pages if heading.search(text)]
    after = squash(page[heading.search(page).start() :])
    assert all(squash(theme) in after for theme in themes), themes
