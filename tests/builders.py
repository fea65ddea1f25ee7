"""Test data builders: cycles, requests, reminders and accepted submissions with answers,
written directly through the models (the way the reader stores them).

Figures are realistic (domain-notes.md): Uzbekistan's spring 2023 census, Tigrovaya Balka,
Karachingil and Ile-Balkhash, Darqad. They are sample data, never expected results hard-coded
into the code under test: tests compute expectations from what they stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.store import models as m

HOSTILE = (
    "Field teams report <script>alert(1)</script> near the reserve; "
    "<link rel=attachment href=file:///etc/passwd> see annex; template check {{ 7*7 }} end."
)
_counter = itertools.count(1)


def utc(year: int, month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


def state(session: Session, code: str) -> m.RangeState:
    return session.scalars(select(m.RangeState).where(m.RangeState.code == code)).one()


def instrument(session: Session, code: str) -> m.Instrument:
    return session.scalars(select(m.Instrument).where(m.Instrument.code == code)).one()


def make_cycle(
    session: Session,
    instrument_code: str,
    period: str,
    *,
    deadline: dt.date,
    opened_at: dt.datetime | None = None,
) -> m.ReportingCycle:
    first, last = (int(y) for y in period.split("-"))
    cycle = m.ReportingCycle(
        instrument_id=instrument(session, instrument_code).id,
        period=period,
        period_start=dt.date(first, 1, 1),
        period_end=dt.date(last, 12, 31),
        deadline=deadline,
        form_version=1,
        status="open",
        opened_at=opened_at or utc(last + 1, 1, 10),
    )
    session.add(cycle)
    session.flush()
    return cycle


def make_request(
    session: Session,
    cycle: m.ReportingCycle,
    state_code: str,
    *,
    created_at: dt.datetime,
    dispatched_at: dt.datetime | None = None,
) -> m.ReportRequest:
    st = state(session, state_code)
    request = m.ReportRequest(
        cycle_id=cycle.id,
        state_id=st.id,
        language=st.language,
        reference=f"CMS/{cycle.instrument.code}/{cycle.period}/{state_code}/{next(_counter)}",
        created_at=created_at,
        dispatched_at=dispatched_at,
    )
    session.add(request)
    session.flush()
    return request


def add_reminder(
    session: Session, cycle: m.ReportingCycle, state_code: str, n: int, sent_at: dt.datetime | None
) -> m.OutboxMessage:
    st = state(session, state_code)
    message = m.OutboxMessage(
        key=f"{cycle.id}:{state_code}:reminder:{n}",
        kind="reminder",
        cycle_id=cycle.id,
        state_id=st.id,
        sender="cms.secretariat@example.org",
        to=["mfa@example.org"],
        cc=[],
        subject="Reminder",
        body_text="Reminder",
        status="sent" if sent_at else "pending",
        message_id=f"<reminder-{cycle.id}-{state_code}-{n}-{next(_counter)}@example.org>",
        sent_at=sent_at,
    )
    session.add(message)
    session.flush()
    return message


def answer_rows(answers: Mapping[str, Any]) -> list[tuple[str, str, str, Any]]:
    """(field, row, column, value) from a readable mapping.

    Scalars stay scalars; a list of dicts is a free table (rows "1", "2", ... among filled
    rows); a dict of dicts is a table keyed by choice value or activity code.
    """
    rows = []
    for key, value in answers.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for index, row in enumerate(value, start=1):
                rows.extend((key, str(index), col, v) for col, v in row.items() if v is not None)
        elif isinstance(value, dict):
            for row_key, row in value.items():
                rows.extend((key, row_key, col, v) for col, v in row.items() if v is not None)
        elif value is not None:
            rows.append((key, "", "", value))
    return rows


def add_submission(
    session: Session,
    cycle: m.ReportingCycle,
    state_code: str,
    answers: Mapping[str, Any],
    *,
    received_at: dt.datetime,
    decided_at: dt.datetime | None = None,
    status: str = "accepted",
    carried_forward: Iterable[str] = (),
    warnings: Iterable[tuple[str, str | None, str]] = (),
) -> m.Submission:
    """A submission of the next version; an accepted one supersedes the state's previous
    accepted version (as the intake does)."""
    st = state(session, state_code)
    previous = session.scalars(
        select(m.Submission)
        .where(m.Submission.cycle_id == cycle.id, m.Submission.state_id == st.id)
        .order_by(m.Submission.version.desc())
    ).first()
    version = (previous.version or 0) + 1 if previous else 1
    digest = hashlib.sha256(f"{cycle.id}-{state_code}-{version}-{next(_counter)}".encode())
    sha = digest.hexdigest()
    session.add(m.StoredFile(sha256=sha, size=1000, stored_at=received_at))
    undecided = status == "received"
    submission = m.Submission(
        file_sha256=sha,
        filename=f"{cycle.instrument.code}-{cycle.period}-{state_code}-v{version}.xlsx",
        sender=f"focal.point.{state_code.lower()}@example.org",
        # A file still being read knows only where it came from, as the intake records it:
        # its portal link names the cycle and the state; cycle, state and version come later.
        channel="portal" if undecided else "email",
        received_at=received_at,
        status=status,
        cycle_id=None if undecided else cycle.id,
        state_id=None if undecided else st.id,
        expected_cycle_id=cycle.id if undecided else None,
        expected_state_id=st.id if undecided else None,
        language=None if undecided else st.language,
        form_version=None if undecided else 1,
        version=None if undecided else version,
        decided_at=None if undecided else (decided_at or received_at + dt.timedelta(hours=1)),
    )
    session.add(submission)
    session.flush()
    if status == "accepted":
        for older in session.scalars(
            select(m.Submission).where(
                m.Submission.cycle_id == cycle.id,
                m.Submission.state_id == st.id,
                m.Submission.status == "accepted",
                m.Submission.superseded_by_id.is_(None),
                m.Submission.id != submission.id,
            )
        ):
            older.superseded_by_id = submission.id
    carried = set(carried_forward)
    if status == "accepted":
        for key, row, column, value in answer_rows(answers):
            session.add(
                m.Answer(
                    submission_id=submission.id,
                    field_key=key,
                    row_key=row,
                    column_key=column,
                    value=value,
                    carried_forward=key in carried,
                )
            )
    for code, field_key, message in warnings:
        session.add(
            m.ValidationIssue(
                submission_id=submission.id,
                severity="warning",
                code=code,
                field_key=field_key,
                sheet="Population" if field_key else None,
                cell="C12" if field_key else None,
                message=message,
            )
        )
    session.flush()
    return submission


# --------------------------------------------------------------------------------------------
# Bukhara Deer MoU
# --------------------------------------------------------------------------------------------

BUKHARA_SITES: dict[str, list[tuple[str, str | None, int, int, str, str]]] = {
    # (site, protected area, year, count, method, trend)
    "UZ": [
        (
            "Lower Amudarya",
            "Lower Amudarya Biosphere Reserve",
            2023,
            1475,
            "ground_count",
            "increasing",
        ),
        ("Kyzylkum", "Kyzylkum Reserve", 2023, 186, "ground_count", "stable"),
        ("Zarafshan", "Zarafshan National Nature Park", 2023, 105, "ground_count", "increasing"),
        ("Khorezm", "Khorezm National Nature Park", 2023, 10, "expert_estimate", "unknown"),
    ],
    "TJ": [
        (
            "Tigrovaya Balka",
            "Tigrovaya Balka Nature Reserve",
            2023,
            215,
            "ground_count",
            "increasing",
        )
    ],
    "KZ": [
        ("Karachingil", "Karachingil hunting reserve", 2023, 350, "ground_count", "stable"),
        (
            "Ile-Balkhash",
            "Ile-Balkhash State Nature Reserve",
            2023,
            12,
            "camera_trap",
            "increasing",
        ),
    ],
    "TM": [
        ("Amudarya tugai", "Amudarya State Nature Reserve", 2023, 620, "aerial_survey", "stable")
    ],
    "AF": [("Darqad", None, 2023, 40, "expert_estimate", "unknown")],
}
# National totals as reported; Tajikistan's includes animals outside the counted site.
BUKHARA_TOTALS = {"UZ": 1776, "TJ": 230, "KZ": 362, "TM": 620, "AF": 40}
BUKHARA_PREVIOUS_TOTALS = {"UZ": 1500, "TJ": 200, "KZ": 330, "TM": 600}
THEMES = (
    "range_restoration",
    "protected_area_network",
    "legal_protection",
    "international_cooperation",
    "research_monitoring",
    "public_awareness",
)
STATUSES = ("completed", "in_progress", "ongoing", "not_started", "not_applicable")
THREATS = ("poaching", "habitat_loss_tugai", "water_regime_change", "grazing_competition", "fire")


def bukhara_answers(
    state_code: str,
    *,
    sites: list[tuple[str, str | None, int, int, str, str]] | None = None,
    total: int | None = None,
    comments: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    rng = random.Random(f"bukhara-{state_code}")
    sites = sites if sites is not None else BUKHARA_SITES[state_code]
    answers: dict[str, Any] = {
        "reporting_institution": f"Ministry of Ecology ({state_code})",
        "focal_point_name": "Focal Point",
        "submission_date": "2025-03-01",
        "mou_signed": state_code != "AF",
        "mou_signature_date": "2002-05-16" if state_code != "AF" else None,
        "population_sites": [
            {
                "site": site,
                "protected_area": area,
                "count_year": year,
                "count": count,
                "count_method": method,
                "trend": trend,
            }
            for site, area, year, count, method, trend in sites
        ],
        "national_total": total if total is not None else BUKHARA_TOTALS[state_code],
        "national_trend": "increasing",
        "population_notes": f"Spring census by reserve staff in {state_code}.",
        "threats": {
            threat: {
                "severity": rng.choice(("high", "medium", "low", "none")),
                "measures": f"Ranger patrols against {threat.replace('_', ' ')} ({state_code}).",
            }
            for threat in THREATS
        },
        "action_plan_implementation": {
            theme: {"status": rng.choice(STATUSES), "narrative": None} for theme in THEMES
        },
        "legislation": "Listed in the national Red Data Book; hunting prohibited.",
        "action_plan_proposals": [
            {
                "proposal": f"Create a transboundary tugai corridor ({state_code}).",
                "term": "long_term",
                "rationale": "Connect isolated groups along the Amudarya.",
            }
        ],
        "general_comments": comments,
    }
    answers["action_plan_implementation"]["legal_protection"]["narrative"] = (
        f"Hunting ban enforced in {state_code}."
    )
    answers.update(extra or {})
    return answers


@dataclass
class BukharaScenario:
    cycle: m.ReportingCycle
    previous: m.ReportingCycle
    states: tuple[str, ...] = ("AF", "KZ", "TJ", "TM", "UZ")
    superseded_ids: list[int] = field(default_factory=list)


def build_bukhara(session: Session) -> BukharaScenario:
    """Cycle 2023-2024 with 5 accepted returns (TM late, UZ corrected once), and the
    cycle 2021-2022 with 4 accepted returns for the change in numbers."""
    previous = make_cycle(session, "bukhara-deer", "2021-2022", deadline=dt.date(2023, 3, 31))
    for code, total in BUKHARA_PREVIOUS_TOTALS.items():
        make_request(session, previous, code, created_at=utc(2023, 1, 10))
        site = BUKHARA_SITES[code][0]
        add_submission(
            session,
            previous,
            code,
            bukhara_answers(code, sites=[(*site[:2], 2021, total, *site[4:])], total=total),
            received_at=utc(2023, 3, 1),
        )

    cycle = make_cycle(session, "bukhara-deer", "2023-2024", deadline=dt.date(2025, 3, 31))
    scenario = BukharaScenario(cycle=cycle, previous=previous)
    for code in scenario.states:
        make_request(
            session, cycle, code, created_at=utc(2025, 1, 10), dispatched_at=utc(2025, 1, 10, 11)
        )
    add_reminder(session, cycle, "TM", 1, utc(2025, 3, 17))
    add_reminder(session, cycle, "TM", 2, utc(2025, 4, 1))
    add_reminder(session, cycle, "TM", 3, None)  # not sent yet: does not count
    add_reminder(session, cycle, "AF", 1, utc(2025, 3, 17))

    # Uzbekistan: version 1 (wrong count, a warning) superseded by the corrected version 2.
    wrong = [
        (
            "Lower Amudarya",
            "Lower Amudarya Biosphere Reserve",
            2023,
            1400,
            "ground_count",
            "increasing",
        ),
        *BUKHARA_SITES["UZ"][1:],
    ]
    v1 = add_submission(
        session,
        cycle,
        "UZ",
        bukhara_answers("UZ", sites=wrong, total=1701),
        received_at=utc(2025, 3, 5),
        warnings=[("superseded_warning", "national_total", "Warning on the superseded version")],
    )
    scenario.superseded_ids.append(v1.id)
    add_submission(
        session,
        cycle,
        "UZ",
        bukhara_answers("UZ", comments=HOSTILE),
        received_at=utc(2025, 4, 8),
        decided_at=utc(2025, 4, 8, 12),
    )
    add_submission(
        session,
        cycle,
        "KZ",
        bukhara_answers("KZ"),
        received_at=utc(2025, 3, 20),
        carried_forward=("reporting_institution", "legislation"),
    )
    add_submission(
        session,
        cycle,
        "TJ",
        bukhara_answers("TJ"),
        received_at=utc(2025, 3, 31, 18),
        warnings=[
            (
                "total_differs_from_sites",
                "national_total",
                "The national total (230) differs from the sum of the sites (215).",
            )
        ],
    )
    # Turkmenistan: refused first, then accepted after the deadline.
    add_submission(session, cycle, "TM", {}, received_at=utc(2025, 3, 25), status="rejected")
    add_submission(session, cycle, "TM", bukhara_answers("TM"), received_at=utc(2025, 4, 3))
    add_submission(session, cycle, "AF", bukhara_answers("AF"), received_at=utc(2025, 3, 30))
    session.flush()
    return scenario


# --------------------------------------------------------------------------------------------
# CAMI
# --------------------------------------------------------------------------------------------

CAMI_STATES = ("AF", "BT", "CN", "IN", "IR", "KG", "KZ", "MN", "NP", "PK", "RU", "TJ", "TM", "UZ")


def cami_answers(session: Session, state_code: str, cami: m.Instrument) -> dict[str, Any]:
    rng = random.Random(f"cami-{state_code}")
    activities = session.scalars(
        select(m.Activity).where(m.Activity.instrument_id == cami.id).order_by(m.Activity.position)
    ).all()
    species = [s.code for s in cami.species]
    table: dict[str, dict[str, Any]] = {}
    for activity in activities:
        if rng.random() < 0.12:
            continue  # left empty by the State
        status = rng.choices(STATUSES, weights=(2, 3, 3, 3, 1))[0]
        row: dict[str, Any] = {"status": status}
        if status != "not_applicable" and rng.random() < 0.15:
            row["species"] = sorted(rng.sample(species, 2))
        if rng.random() < 0.04:
            row["narrative"] = f"{state_code}: work on activity {activity.code} with partners."
        table[activity.code] = row
    return {
        "reporting_institution": f"Ministry of Environment ({state_code})",
        "submission_date": "2026-05-02",
        "national_focal_point_name": "Focal Point",
        "focal_points": [
            {"species": species[0], "name": "Species Focal Point", "email": "fp@example.org"}
        ],
        "activities": table,
        "general_comments": f"General comments from {state_code}.",
    }


@dataclass
class CamiScenario:
    cycle: m.ReportingCycle
    states: tuple[str, ...] = CAMI_STATES


def build_cami(session: Session, *, hostile: bool = True) -> CamiScenario:
    """A CAMI cycle with an accepted return from each of the 14 range states."""
    cami = instrument(session, "cami")
    cycle = make_cycle(session, "cami", "2024-2026", deadline=dt.date(2026, 6, 30))
    for index, code in enumerate(CAMI_STATES):
        make_request(session, cycle, code, created_at=utc(2026, 1, 15))
        answers = cami_answers(session, code, cami)
        if hostile and code == "MN":
            answers["activities"]["1.1.1"] = {"status": "ongoing", "narrative": HOSTILE}
        add_submission(
            session,
            cycle,
            code,
            answers,
            received_at=utc(2026, 5, 1 + index) if index < 12 else utc(2026, 7, index - 9),
        )
    session.flush()
    return CamiScenario(cycle=cycle)
