"""One answer to "where does a state stand", on SQLite and PostgreSQL: ``mou status --json``,
the dashboard's cycle page, the consolidated cycle behind the PDFs, the PDF's HTML and the
PDF's status table say the same outcome and timeliness for every state.

The cycle has a state of each kind: on time (on the deadline day, late evening UTC), late
(refused in time, corrected three days late), refused, corrected (accepted in time, replaced
after the deadline: still on time) and missing. Tajikistan's files were recorded out of
received order (two intake workers, or clocks of two machines): the newest file *received*
was refused, an older one is still being read. The old ``mou status`` ordered files by id and
called it pending while the PDF, ordering by received time, called it refused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from mou.catalogue.bootstrap import prepare_database
from mou.cli.reports import cmd_status
from mou.cycle.standing import cycle_status
from mou.portal.server import create_app
from mou.reporting.consolidation import ConsolidatedCycle, consolidate
from mou.reporting.progress_summary import progress_summary_html, render_progress_summary
from mou.settings import Settings
from mou.store.database import session_scope
from tests import builders as b
from tests.accounts import signed_in_client
from tests.conftest import ENGINES, engine_database

DEADLINE = dt.date(2025, 3, 31)
# What the rule says of each state of the scenario: (outcome, timeliness, days late).
EXPECTED: dict[str, tuple[str, str | None, int | None]] = {
    "KZ": ("accepted", "on_time", 0),
    "TM": ("accepted", "late", 3),
    "TJ": ("refused", None, None),
    "UZ": ("accepted", "on_time", 0),
    "AF": ("not_received", None, None),
}
# The words each view uses (English).
DASHBOARD_OUTCOMES = {
    "Accepted": "accepted",
    "Excused": "excused",
    "Correction requested": "correction_requested",
    "Refused": "refused",
    "Being checked": "pending",
    "Not received": "not_received",
}
DASHBOARD_ON_TIME = {"Yes": "on_time", "No": "late", "—": None}
PDF_OUTCOMES = {
    "Accepted": "accepted",
    "Excused": "excused",
    "Correctionrequested": "correction_requested",
    "Refused": "refused",
    "Beingprocessed": "pending",
    "Notreceived": "not_received",
}


def build_cycle(session: Any) -> int:
    """The Bukhara deer cycle 2023-2024 with one state of each kind (module docstring)."""
    cycle = b.make_cycle(session, "bukhara-deer", "2023-2024", deadline=DEADLINE)
    for code in EXPECTED:
        b.make_request(
            session, cycle, code, created_at=b.utc(2025, 1, 10), dispatched_at=b.utc(2025, 1, 10)
        )
    b.add_reminder(session, cycle, "TM", 1, b.utc(2025, 3, 17))
    b.add_reminder(session, cycle, "AF", 1, b.utc(2025, 3, 17))
    b.add_reminder(session, cycle, "AF", 2, None)  # queued, not sent
    b.add_submission(
        session, cycle, "KZ", b.bukhara_answers("KZ"), received_at=b.utc(2025, 3, 31, 23)
    )
    b.add_submission(session, cycle, "TM", {}, received_at=b.utc(2025, 3, 25), status="rejected")
    b.add_submission(session, cycle, "TM", b.bukhara_answers("TM"), received_at=b.utc(2025, 4, 3))
    b.add_submission(session, cycle, "UZ", b.bukhara_answers("UZ"), received_at=b.utc(2025, 3, 5))
    b.add_submission(session, cycle, "UZ", b.bukhara_answers("UZ"), received_at=b.utc(2025, 4, 8))
    # Recorded first, received last: the newest file received is this refused one.
    b.add_submission(session, cycle, "TJ", {}, received_at=b.utc(2025, 3, 29), status="rejected")
    b.add_submission(session, cycle, "TJ", {}, received_at=b.utc(2025, 3, 27), status="received")
    return cycle.id


@dataclass
class World:
    settings: Settings
    cycle_id: int
    status: dict[str, Any]
    consolidated: ConsolidatedCycle
    dashboard: str
    report_html: str
    pdf: bytes


@pytest.fixture(scope="module", params=ENGINES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    root = tmp_path_factory.mktemp(f"standing-{request.param}")
    with engine_database(request, root) as url:
        yield from _world(root, url)


def _world(root: Path, url: str) -> Iterator[World]:
    settings = Settings(var_dir=root / "var", database_url=url)
    app = None
    try:
        prepare_database(settings)
        with session_scope(settings) as session:
            cycle_id = build_cycle(session)
        with session_scope(settings) as session:
            status = cycle_status(session, cycle_id)
            consolidated = consolidate(session, cycle_id, forms_dir=settings.forms_dir)
        app = create_app(settings, ingest="thread")
        client = signed_in_client(app, "reader")
        page = client.get(f"/dashboard/cycles/{cycle_id}")
        assert page.status_code == 200
        yield World(
            settings=settings,
            cycle_id=cycle_id,
            status=status,
            consolidated=consolidated,
            dashboard=page.text,
            report_html=progress_summary_html(consolidated, "en", settings),
            pdf=render_progress_summary(consolidated, "en", settings),
        )
    finally:
        if app is not None:  # background work ends before the database goes
            app.state.portal.inline.close()


def _status_views(status: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """(outcome, timeliness) of each state in ``mou status`` JSON, in the reports' words."""
    return {
        s["state"]: (
            s["outcome"].replace(" ", "_"),
            {True: "on_time", False: "late", None: None}[s["on_time"]],
        )
        for s in status["states"]
    }


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def _dashboard_views(html: str) -> dict[str, tuple[str, str | None]]:
    """(outcome, timeliness) of each row of the dashboard's table of states."""
    table = html.split('id="states-heading"', 1)[1].split("</table>", 1)[0]
    views = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        code = re.search(r'<span class="code">([A-Z]{2})</span>', row)
        if code is None:
            continue  # the header
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        # The outcome is the cell with the badge; whether on time, the last cell.
        badge = next(
            found
            for cell in cells
            if (found := re.search(r'<span class="badge [^"]+">([^<]+)</span>', cell))
        )
        views[code.group(1)] = (
            DASHBOARD_OUTCOMES[badge.group(1).strip()],
            DASHBOARD_ON_TIME[_text(cells[-1])],
        )
    return views


def _report_html_views(html: str, names: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """(outcome, timeliness) of each row of the progress summary's status table (HTML)."""
    table = html.split('<table class="status">', 1)[1].split("</table>", 1)[0]
    codes = {name: code for code, name in names.items()}
    views = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        name = re.search(r'<span class="state-name">([^<]+)</span>', row)
        if name is None:
            continue  # the header and the total
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        outcome = re.search(r'<td class="outcome-(\w+)">', row)
        assert outcome is not None, row
        timeliness = _text(cells[-2])
        views[codes[unescape(name.group(1))]] = (
            outcome.group(1),
            "on_time" if timeliness == "On time" else "late" if "Late" in timeliness else None,
        )
    return views


def _pdf_views(pdf: bytes, names: dict[str, str]) -> dict[str, tuple[str, str | None, int | None]]:
    """(outcome, timeliness, days late) of each state in the PDF's status table, from the text
    pypdf extracts (whitespace dropped: extraction breaks lines)."""
    reader = PdfReader(io.BytesIO(pdf))
    text = re.sub(r"\s+", "", "".join(page.extract_text() for page in reader.pages))
    start = text.index("SubmissionofnationalreportsbyState")
    table = text[start : text.index("Total", start)]
    found = sorted((table.index(re.sub(r"\s+", "", n)), code) for code, n in names.items())
    views = {}
    for (at, code), (end, _) in zip(found, [*found[1:], (len(table), "")], strict=True):
        row = table[at:end]
        outcomes = [v for word, v in PDF_OUTCOMES.items() if word in row]
        assert len(outcomes) == 1, row
        late = re.search(r"Lateby(\d+)days?", row)
        if late:
            views[code] = (outcomes[0], "late", int(late.group(1)))
        elif "Ontime" in row:
            views[code] = (outcomes[0], "on_time", 0)
        else:
            views[code] = (outcomes[0], None, None)
    return views


def _names(world: World) -> dict[str, str]:
    return {s.state.code: s.state.label("en") for s in world.consolidated.states}


def test_the_rule_decides_each_kind_of_state(world: World) -> None:
    decided = {
        s.state.code: (s.outcome, s.timeliness, s.days_late) for s in world.consolidated.states
    }
    assert decided == EXPECTED
    uz = world.consolidated.status_of("UZ")
    assert uz.accepted_version == 2 and uz.first_accepted_received_at == b.utc(2025, 3, 5)
    assert world.consolidated.status_of("TM").first_received_at == b.utc(2025, 3, 25)
    assert world.consolidated.status_of("AF").reminders_sent == 1  # the queued one is not sent
    counts = world.consolidated.counts
    assert (counts.accepted, counts.on_time, counts.late, counts.refused) == (3, 2, 1, 1)
    assert (counts.pending, counts.not_received) == (0, 1)


def test_mou_status_json_says_the_same(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_status(argparse.Namespace(cycle=world.cycle_id, json=True), world.settings) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(world.status))
    expected = {code: (outcome, timeliness) for code, (outcome, timeliness, _) in EXPECTED.items()}
    assert _status_views(printed) == expected
    assert printed["summary"] == {
        "accepted": 3,
        "correction requested": 0,
        "excused": 0,
        "refused": 1,
        "pending": 0,
        "not received": 1,
    }
    by_state = {s["state"]: s for s in printed["states"]}
    # The file shown is the one the outcome rests on: Tajikistan's newest received.
    tj = by_state["TJ"]
    assert (tj["submissions"], tj["latest"]["status"]) == (2, "rejected")
    assert tj["latest"]["received"] == "2025-03-29T10:00:00+00:00"
    assert by_state["UZ"]["latest"]["version"] == 2 and by_state["AF"]["latest"] is None
    assert by_state["AF"]["reminders"] == ["1", "2"]  # queued ones are listed, as before


def test_dashboard_says_the_same(world: World) -> None:
    expected = {code: (outcome, timeliness) for code, (outcome, timeliness, _) in EXPECTED.items()}
    assert _dashboard_views(world.dashboard) == expected
    assert _dashboard_views(world.dashboard) == _status_views(world.status)


def test_progress_summary_says_the_same(world: World) -> None:
    expected = {code: (outcome, timeliness) for code, (outcome, timeliness, _) in EXPECTED.items()}
    assert _report_html_views(world.report_html, _names(world)) == expected
    assert _pdf_views(world.pdf, _names(world)) == EXPECTED


def test_every_view_agrees(world: World) -> None:
    reports = {s.state.code: (s.outcome, s.timeliness) for s in world.consolidated.states}
    assert _status_views(world.status) == reports
    assert _dashboard_views(world.dashboard) == reports
    assert _report_html_views(world.report_html, _names(world)) == reports
    pdf = {code: view[:2] for code, view in _pdf_views(world.pdf, _names(world)).items()}
    assert pdf == reports


def _views_of(settings: Settings, cycle_id: int, app: Any) -> list[dict[str, tuple]]:
    """(outcome, timeliness) per state in each view: status, dashboard, PDF's HTML, PDF."""
    with session_scope(settings) as session:
        status = cycle_status(session, cycle_id)
        consolidated = consolidate(session, cycle_id, forms_dir=settings.forms_dir)
    names = {s.state.code: s.state.label("en") for s in consolidated.states}
    page = signed_in_client(app, "reader").get(f"/dashboard/cycles/{cycle_id}")
    assert page.status_code == 200
    pdf = render_progress_summary(consolidated, "en", settings)
    return [
        {s.state.code: (s.outcome, s.timeliness) for s in consolidated.states},
        _status_views(status),
        _dashboard_views(page.text),
        _report_html_views(progress_summary_html(consolidated, "en", settings), names),
        {code: view[:2] for code, view in _pdf_views(pdf, names).items()},
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_view_agrees_after_each_action(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The Secretariat excuses a state, sends a return back for correction and extends a
    deadline: after each, every view says the same of every state."""
    from sqlalchemy import select

    from mou.accounts.roles import Actor
    from mou.secretariat.cycles import excuse_state, extend_deadline
    from mou.secretariat.review import return_for_correction
    from mou.service.actions import perform
    from mou.store import models as m

    request.param = engine  # engine_database reads the engine from here
    with engine_database(request, tmp_path) as url:
        settings = Settings(var_dir=tmp_path / "var", database_url=url)
        prepare_database(settings)
        with session_scope(settings) as session:
            cycle_id = build_cycle(session)
            for submission in session.scalars(select(m.Submission)):
                submission.request_id = session.scalars(
                    select(m.ReportRequest.id).where(
                        m.ReportRequest.cycle_id == cycle_id,
                        m.ReportRequest.state_id == submission.state_id,
                    )
                ).first()
            uz = session.scalars(
                select(m.Submission.id).where(
                    m.Submission.state_id == b.state(session, "UZ").id,
                    m.Submission.superseded_by_id.is_(None),
                    m.Submission.status == "accepted",
                )
            ).one()
        officer = Actor("olga", "officer")
        app = create_app(settings, ingest="thread")
        try:
            steps = [
                (
                    lambda s: excuse_state(s, officer, cycle_id, "AF", "no range left"),
                    {"AF": ("excused", None)},
                ),
                (
                    lambda s: return_for_correction(s, settings, officer, uz, ["Sign it."]),
                    {"UZ": ("correction_requested", "on_time")},
                ),
                (
                    lambda s: extend_deadline(
                        s,
                        settings,
                        officer,
                        cycle_id,
                        dt.date(2025, 4, 5),
                        "asked",
                        state="TM",
                        today=dt.date(2025, 4, 1),
                    ),
                    {"TM": ("accepted", "on_time")},  # corrected 3 days late: now in time
                ),
            ]
            expected = {
                code: (outcome, timeliness) for code, (outcome, timeliness, _) in EXPECTED.items()
            }
            for action, change in steps:
                perform(settings, action, render=False)
                expected.update(change)
                for view in _views_of(settings, cycle_id, app):
                    assert view == expected
        finally:
            app.state.portal.inline.close()
