"""Consolidation of a cycle, on SQLite and PostgreSQL: what counts, totals, change,
timeliness, activity shares. Expected numbers are computed from the rows the test stored."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.cycle.standing import cycle_standings
from mou.errors import Refused
from mou.reporting.consolidation import consolidate, read_return
from mou.store import models as m
from tests import builders as b


def _counted_answers(session: Session, cycle_id: int, field: str) -> list[m.Answer]:
    """Answers of the latest accepted, non-superseded submissions, straight from the DB."""
    return list(
        session.scalars(
            select(m.Answer)
            .join(m.Submission)
            .where(
                m.Submission.cycle_id == cycle_id,
                m.Submission.status == "accepted",
                m.Submission.superseded_by_id.is_(None),
                m.Answer.field_key == field,
            )
        )
    )


def test_bukhara_population_totals_and_change(session: Session) -> None:
    scenario = b.build_bukhara(session)
    result = consolidate(session, scenario.cycle.id)
    population = result.population
    assert population is not None

    counts = [
        a.value
        for a in _counted_answers(session, scenario.cycle.id, "population_sites")
        if a.column_key == "count"
    ]
    totals = [a.value for a in _counted_answers(session, scenario.cycle.id, "national_total")]
    previous = [a.value for a in _counted_answers(session, scenario.previous.id, "national_total")]
    assert population.sites_total == sum(counts) == 3013
    assert population.reported_total == sum(totals) == sum(b.BUKHARA_TOTALS.values())
    assert population.previous_period == "2021-2022"
    assert population.previous_total == sum(previous)
    assert population.change == sum(totals) - sum(previous) == 398
    # Afghanistan has no figure for 2021-2022: the like-for-like change leaves it out.
    assert population.new_states == ("AF",)
    assert population.comparable_change == 398 - 40
    by_state = {s.state.code: s for s in population.states}
    assert by_state["UZ"].change == 1776 - 1500
    assert by_state["AF"].previous_total is None and by_state["AF"].change is None
    assert by_state["TJ"].totals_differ and not by_state["UZ"].totals_differ


def test_superseded_version_is_ignored(session: Session) -> None:
    scenario = b.build_bukhara(session)
    result = consolidate(session, scenario.cycle.id)
    uz = result.return_of("UZ")
    assert uz is not None and uz.version == 2
    assert uz.submission_id not in scenario.superseded_ids
    sites = {
        s.site: s.count
        for s in next(
            p
            for p in result.population.states
            if p.state.code == "UZ"  # type: ignore[union-attr]
        ).sites
    }
    assert sites == {"Lower Amudarya": 1475, "Kyzylkum": 186, "Zarafshan": 105, "Khorezm": 10}
    # The warning of the superseded version is not a data-quality point any more.
    assert [w.code for w in result.data_quality.warnings] == ["total_differs_from_sites"]
    counted = cycle_standings(session, scenario.cycle)[b.state(session, "UZ").id].counted
    assert counted is not None and counted.version == 2


def test_timeliness_reminders_and_outcomes(session: Session) -> None:
    scenario = b.build_bukhara(session)
    result = consolidate(session, scenario.cycle.id)
    status = {s.state.code: s for s in result.states}
    # Uzbekistan's first accepted version arrived in time; its correction came later.
    assert status["UZ"].timeliness == "on_time" and status["UZ"].accepted_version == 2
    # Tajikistan at 18:00 UTC on the deadline day is in time.
    assert status["TJ"].timeliness == "on_time"
    # Turkmenistan: refused in time, accepted three days late.
    assert status["TM"].timeliness == "late" and status["TM"].days_late == 3
    assert status["TM"].files_received == 2
    assert status["TM"].first_received_at == b.utc(2025, 3, 25)
    assert status["TM"].reminders_sent == 2  # the pending third one does not count
    assert status["AF"].reminders_sent == 1 and status["KZ"].reminders_sent == 0
    assert status["KZ"].requested_at == b.utc(2025, 1, 10, 11)
    assert all(s.outcome == "accepted" for s in result.states)
    assert (result.counts.accepted, result.counts.on_time, result.counts.late) == (5, 4, 1)
    assert result.generated_at == b.utc(2025, 4, 8, 12)
    assert [s.state.code for s in result.states] == ["AF", "KZ", "TJ", "TM", "UZ"]


def test_refused_pending_and_missing_states(session: Session) -> None:
    cycle = b.make_cycle(session, "bukhara-deer", "2025-2026", deadline=dt.date(2027, 3, 31))
    for code in ("AF", "KZ", "TJ", "TM", "UZ"):
        b.make_request(session, cycle, code, created_at=b.utc(2027, 1, 10))
    b.add_submission(session, cycle, "UZ", b.bukhara_answers("UZ"), received_at=b.utc(2027, 3, 1))
    b.add_submission(session, cycle, "TM", {}, received_at=b.utc(2027, 3, 2), status="rejected")
    b.add_submission(session, cycle, "TJ", {}, received_at=b.utc(2027, 3, 3), status="received")
    # Afghanistan: accepted, then a newer file still being processed: version 1 still counts.
    b.add_submission(session, cycle, "AF", b.bukhara_answers("AF"), received_at=b.utc(2027, 3, 4))
    b.add_submission(session, cycle, "AF", {}, received_at=b.utc(2027, 3, 5), status="received")

    result = consolidate(session, cycle.id)
    outcome = {s.state.code: s.outcome for s in result.states}
    assert outcome == {
        "AF": "accepted",
        "KZ": "not_received",
        "TJ": "pending",
        "TM": "refused",
        "UZ": "accepted",
    }
    assert result.status_of("AF").accepted_version == 1
    assert result.status_of("TM").timeliness is None
    assert {r.state.code for r in result.returns} == {"AF", "UZ"}
    counts = result.counts
    assert (counts.accepted, counts.refused, counts.pending, counts.not_received) == (2, 1, 1, 1)
    # No earlier cycle exists: no change is computed.
    assert result.population is not None and result.population.previous_total is None


def test_previous_cycle_is_the_latest_earlier_one_with_accepted_data(session: Session) -> None:
    oldest = b.make_cycle(session, "bukhara-deer", "2019-2020", deadline=dt.date(2021, 3, 31))
    b.add_submission(
        session, oldest, "UZ", b.bukhara_answers("UZ", total=900), received_at=b.utc(2021, 3, 1)
    )
    empty = b.make_cycle(session, "bukhara-deer", "2021-2022", deadline=dt.date(2023, 3, 31))
    b.add_submission(session, empty, "UZ", {}, received_at=b.utc(2023, 3, 1), status="rejected")
    current = b.make_cycle(session, "bukhara-deer", "2023-2024", deadline=dt.date(2025, 3, 31))
    b.add_submission(session, current, "UZ", b.bukhara_answers("UZ"), received_at=b.utc(2025, 3, 1))

    population = consolidate(session, current.id).population
    assert population is not None
    assert population.previous_period == "2019-2020"
    assert population.previous_total == 900
    assert population.change == 1776 - 900


def test_bukhara_sections(session: Session) -> None:
    scenario = b.build_bukhara(session)
    result = consolidate(session, scenario.cycle.id)

    (matrix,) = result.activities
    assert matrix.field_key == "action_plan_implementation"
    (group,) = matrix.groups
    assert [line.code for line in group.lines] == list(b.THEMES)
    stored = Counter(
        a.value
        for a in _counted_answers(session, scenario.cycle.id, "action_plan_implementation")
        if a.column_key == "status"
    )
    assert dict(matrix.total.by_status) == {s: stored.get(s, 0) for s in matrix.total.by_status}
    applicable = sum(n for s, n in stored.items() if s != "not_applicable")
    # Over every cell but the not-applicable ones: an empty cell counts against the share.
    counted = applicable + matrix.total.not_reported
    assert matrix.total.completion_share == pytest.approx(
        (stored["completed"] + stored["ongoing"]) / counted
    )
    assert matrix.total.unreported_share == pytest.approx(matrix.total.not_reported / counted)

    (threats,) = result.threats
    assert threats.lines[0].value == "poaching"  # form order, not alphabetical
    assert set(threats.lines[0].severities) == set(scenario.states)

    assert sorted(p.state.code for p in result.proposals) == sorted(scenario.states)
    comments = [n for n in result.narratives if n.field_key == "general_comments"]
    assert [(n.state.code, n.text) for n in comments] == [("UZ", b.HOSTILE)]
    carried = {(c.state.code, c.field_key) for c in result.data_quality.carried_forward}
    assert carried == {("KZ", "reporting_institution"), ("KZ", "legislation")}
    # Plain data, reproducible: a second consolidation is equal.
    assert consolidate(session, scenario.cycle.id) == result


def test_cami_activity_matrix(session: Session) -> None:
    scenario = b.build_cami(session, hostile=False)
    result = consolidate(session, scenario.cycle.id)
    assert result.counts.accepted == 14 and result.population is None
    assert result.threats == () and result.proposals == ()
    (matrix,) = result.activities
    assert [g.code for g in matrix.groups] == ["1", "2", "3", "4"]
    codes = [line.code for g in matrix.groups for line in g.lines]
    assert len(codes) == 121 and codes[0] == "1.1.1" and codes[-1] == "4.3.1"
    assert codes.index("1.1.10") > codes.index("1.1.9")

    stored = _counted_answers(session, scenario.cycle.id, "activities")
    statuses = [a for a in stored if a.column_key == "status"]
    by_objective = Counter(a.row_key.split(".")[0] for a in statuses)
    for group in matrix.groups:
        reported = sum(group.counts.by_status.values())
        assert reported == by_objective[group.code]
        assert reported + group.counts.not_reported == len(group.lines) * 14
    priority_levels = [level for level, _counts in matrix.by_priority]
    assert priority_levels[0] == "high" and "conditional" in priority_levels
    assert sum(sum(c.by_status.values()) for _l, c in matrix.by_priority) == len(statuses)
    one = next(a for a in statuses)
    state_code = session.get(m.Submission, one.submission_id).state.code  # type: ignore[union-attr]
    line = next(line for g in matrix.groups for line in g.lines if line.code == one.row_key)
    assert line.statuses[state_code] == one.value
    assert result.cycle.catalogue_choices["@activities"]["1.1.1"]["en"].startswith("Strengthen")


def test_read_return_of_one_submission(session: Session) -> None:
    scenario = b.build_bukhara(session)
    returned = read_return(session, scenario.superseded_ids[0])
    assert returned.version == 1 and returned.state.code == "UZ"
    assert returned.table("population_sites")["1"]["count"] == 1400
    assert [w.code for w in returned.warnings] == ["superseded_warning"]


def test_unknown_cycle_is_refused(session: Session) -> None:
    with pytest.raises(Refused, match="does not exist"):
        consolidate(session, 999_999)
