"""``mou demo``: one whole reporting cycle of each instrument, on synthetic returns.

Runs the protocol functions only (as the flows and the CLI do): prepare the database, open
and dispatch a Bukhara Deer MoU cycle (2025-2026) and a CAMI cycle (2024-2026), receive and
process a synthetic return from every range state, run the reminders at deadline-14, deadline
and deadline+7, then consolidate and render the progress summaries. The story (who reports
when, with which errors) is ``mou.demo.scenario``; the report is ``mou.demo.summary``.

Dates: ``today`` is the day the cycles are opened (default: the real date); deadlines are
today + the instrument's ``response_days`` from the catalogue, as the scheduled opening does.
Reminders run on the demo's dates, and each file is recorded as received on its day of the
story (``receive_file(received_at=...)``), so a state the story makes late stands late in
``mou status``, the dashboard and the progress summaries, whatever the real date.

Idempotent: the cycles are found by instrument and period and reused; a state's steps already
taken (counted by its submissions in the cycle) are skipped; requests, reminders and receipts
are keyed in the outbox; a summary PDF newer than everything its cycle holds is kept. A second
run therefore adds no email, file, submission or PDF, and finishes what an interrupted run
left. Because reminders act on every open cycle, the demo refuses a database that holds any
other cycle: give it a var/ (and database) of its own.

Speed: dispatch, the returns between two reminder runs, and the PDFs run in forked worker
processes (``workers``, see ``mou.demo.workers``), as several service workers would;
``workers=1`` runs everything in this process (use it where forking is unwelcome, e.g. inside a
threaded host).
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

from mou.demo.scenario import (
    ERRORS_PER_RETURN,
    REMINDER_OFFSETS,
    SCENARIOS,
    ReminderDay,
    Scenario,
    StateTurn,
    Step,
    timeline,
)
from mou.demo.summary import (
    DemoReport,
    ReminderRun,
    StepResult,
    count_rows,
    cycle_summary,
    demo_report,
)
from mou.demo.workers import Call, Tick, run_all, worker_pool
from mou.errors import Refused
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope

Progress = Callable[[int, int, str], None]  # done, total, what
Opened = tuple[int, bool, dt.date]  # cycle id, created by this run, deadline


# --------------------------------------------------------------------------------------------
# Look-ups
# --------------------------------------------------------------------------------------------


def _refuse_foreign_cycles(settings: Settings) -> None:
    """Reminders act on every open cycle: never run the demo beside real cycles."""
    wanted = {(s.instrument, s.period) for s in SCENARIOS}
    with session_scope(settings) as session:
        rows = session.execute(
            select(m.Instrument.code, m.ReportingCycle.period).join(
                m.Instrument, m.ReportingCycle.instrument_id == m.Instrument.id
            )
        ).all()
    foreign = sorted(f"{code} {period}" for code, period in rows if (code, period) not in wanted)
    if foreign:
        raise Refused(
            f"the database already holds other reporting cycles ({', '.join(foreign)}); the "
            "demo sends reminders for every open cycle, so run it on a var/ of its own, e.g. "
            "MOU_VAR_DIR=var/demo mou demo"
        )


def _languages(settings: Settings, instrument: str) -> list[str]:
    with session_scope(settings) as session:
        languages = session.scalar(select(m.Instrument.languages).filter_by(code=instrument))
    return list(languages or ["en"])


def _language_count(settings: Settings) -> int:
    from mou.catalogue.reference import read_catalogue

    wanted = {s.instrument for s in SCENARIOS}
    entries = read_catalogue(settings.catalogue_dir).instruments
    return sum(len(e.languages) for e in entries if e.code in wanted)


def _sender(settings: Settings, state: str) -> str | None:
    """The national focal point's address, as an email reply would come from."""
    with session_scope(settings) as session:
        rows = session.execute(
            select(m.Authority.kind, m.Authority.email)
            .join(m.RangeState, m.Authority.state_id == m.RangeState.id)
            .where(
                m.RangeState.code == state,
                m.Authority.disabled_at.is_(None),
                m.Authority.species_code.is_(None),
            )
            .order_by(m.Authority.id)
        ).all()
    by_kind = {kind: email for kind, email in reversed(rows)}
    return by_kind.get("focal_point") or by_kind.get("focal_ministry")


def _submissions_of(settings: Settings, cycle_id: int, state: str) -> int:
    with session_scope(settings) as session:
        return (
            session.scalar(
                select(func.count(m.Submission.id))
                .join(m.RangeState, m.Submission.state_id == m.RangeState.id)
                .where(m.Submission.cycle_id == cycle_id, m.RangeState.code == state)
            )
            or 0
        )


# --------------------------------------------------------------------------------------------
# The steps, through the protocol (each may run in a worker process)
# --------------------------------------------------------------------------------------------


def _open(
    settings: Settings, instrument: str, period: str, deadline: dt.date, today: dt.date
) -> Opened:
    from mou.cycle.opening import find_cycle, instrument_by_code
    from mou.service.protocol import open_and_dispatch

    with session_scope(settings) as session:
        # Run again on a later day, the demo keeps the deadline its cycle was opened with.
        existing = find_cycle(session, instrument_by_code(session, instrument).id, period)
        deadline = existing.deadline if existing else deadline
    opening = open_and_dispatch(settings, instrument, period, deadline, today=today)
    return opening.cycle_id, opening.created, opening.deadline


def _submit(
    settings: Settings, scenario: Scenario, cycle_id: int, step: Step, day: dt.date
) -> StepResult:
    from mou.demo.synthetic import synthetic_return
    from mou.service.protocol import INGEST_INLINE, process_submission, receive_file

    # Seeded by what the return is, so every run types the same answers; a correction is the
    # spoilt return's answers without the errors.
    seed = "errors" if step.kind == "correction" else step.kind
    rng = random.Random(f"{scenario.instrument}:{scenario.period}:{step.state}:{seed}")
    made = synthetic_return(
        settings,
        cycle_id,
        step.state,
        rng,
        submitted=min(day, dt.date.today()),  # a date after today would be a warning
        errors=ERRORS_PER_RETURN if step.kind == "errors" else 0,
    )
    suffix = {"correction": "-corrected", "revision": "-revised"}.get(step.kind, "")
    moment = dt.datetime.combine(day, dt.time(10, 0), dt.UTC)
    submission_id, _ = receive_file(
        settings,
        made.data,
        filename=f"{scenario.instrument}-{scenario.period}-{step.state}{suffix}.xlsx",
        sender=_sender(settings, step.state) if step.channel == "email" else None,
        channel=step.channel,
        # Received on the story's day, so a state the story makes late stands late in the
        # status, the dashboard and the reports (mid-morning UTC: the same date everywhere).
        received_at=moment,
        ingest=INGEST_INLINE,
    )
    # Decided a minute later on the same clock, so received comes before accepted.
    outcome = process_submission(settings, submission_id, now=moment + dt.timedelta(minutes=1))
    return StepResult(
        day=day,
        instrument=scenario.instrument,
        state=step.state,
        kind=step.kind,
        channel=step.channel,
        done_before=False,
        submission_id=submission_id,
        status=outcome.status,
        version=outcome.version,
        issues=sorted(i.code for i in outcome.issues if i.severity == "error"),
    )


def _remind(settings: Settings, day: dt.date) -> ReminderRun:
    """The reminders run on ``day``, with the states the new ones went to."""
    from mou.service.protocol import remind

    with session_scope(settings) as session:
        last = session.scalar(select(func.max(m.OutboxMessage.id))) or 0
    sent = remind(settings, day)
    run = ReminderRun(day=day, sent=sent)
    with session_scope(settings) as session:
        rows = session.execute(
            select(m.Instrument.code, m.ReportingCycle.period, m.RangeState.code)
            .select_from(m.OutboxMessage)
            .join(m.ReportingCycle, m.OutboxMessage.cycle_id == m.ReportingCycle.id)
            .join(m.Instrument, m.ReportingCycle.instrument_id == m.Instrument.id)
            .join(m.RangeState, m.OutboxMessage.state_id == m.RangeState.id)
            .where(m.OutboxMessage.kind == "reminder", m.OutboxMessage.id > last)
            .order_by(m.OutboxMessage.id)
        ).all()
    for instrument, period, state in rows:
        run.states.setdefault(f"{instrument} {period}", []).append(state)
    return run


def _chain(
    settings: Settings, scenario: Scenario, cycle_id: int, steps: list[tuple[Step, dt.date]]
) -> list[StepResult]:
    """One state's steps of one stretch between reminder runs, in order."""
    return [_submit(settings, scenario, cycle_id, step, day) for step, day in steps]


def _render(settings: Settings, cycle_id: int, language: str) -> Path:
    from mou.service.protocol import consolidate_and_render

    [pdf] = consolidate_and_render(settings, cycle_id, [language])
    return pdf


def _target(settings: Settings, cycle_id: int, language: str) -> Path:
    """Where ``consolidate_and_render`` writes the cycle's summary in that language."""
    from mou.service.protocol import reports_folder

    with session_scope(settings) as session:
        cycle = session.get(m.ReportingCycle, cycle_id)
        assert cycle is not None
        return reports_folder(settings, cycle) / f"progress-summary-{language}.pdf"


def _stale(settings: Settings, cycle_id: int, language: str) -> bool:
    """Whether the cycle's summary must be rendered: missing, or older than the cycle's data."""
    target = _target(settings, cycle_id, language)
    with session_scope(settings) as session:
        cycle = session.get(m.ReportingCycle, cycle_id)
        assert cycle is not None
        # Not received_at nor decided_at: they follow the story's days, which may lie ahead
        # of the real clock; each decision's receipt is written at the real time.
        moments = [
            cycle.opened_at,
            session.scalar(
                select(func.max(m.OutboxMessage.created_at)).filter_by(cycle_id=cycle_id)
            ),
            session.scalar(select(func.max(m.OutboxMessage.sent_at)).filter_by(cycle_id=cycle_id)),
        ]
    if not target.exists():
        return True
    # Aware UTC as read (UtcDateTime), so comparable with the file's time.
    latest = max((t for t in moments if t is not None), default=None)
    written = dt.datetime.fromtimestamp(target.stat().st_mtime, dt.UTC)
    return latest is None or written <= latest


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


def run_demo(
    settings: Settings,
    *,
    today: dt.date | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> DemoReport:
    """Run (or finish, or re-check) the demonstration cycles; see the module docstring.

    ``workers``: processes for dispatch, returns and PDFs (default: the CPUs, at most 4).
    Between two reminder runs the states' returns are independent, so they run side by side,
    as they would with several service workers; reminders always see every earlier return.
    """
    from mou.catalogue.bootstrap import prepare_database
    from mou.cycle.schedule import instrument_entry
    from mou.service.protocol import sweep

    today = today or dt.date.today()
    workers = workers or min(os.cpu_count() or 1, 4)
    timeline_size = sum(len(s.steps) for s in SCENARIOS) + len(REMINDER_OFFSETS) * 2
    total = 1 + len(SCENARIOS) + timeline_size + _language_count(settings)
    done = 0

    def tick(what: str, steps: int = 1) -> None:
        nonlocal done
        done += steps
        if progress:
            progress(done, total, what)

    prepare_database(settings)
    _refuse_foreign_cycles(settings)
    submissions_before = count_rows(settings, m.Submission)
    messages_before = count_rows(settings, m.OutboxMessage)
    # An interrupted earlier run may have left a file recorded but not decided.
    sweep(settings, older_than=dt.timedelta(0))
    tick("database ready")

    with worker_pool(settings, workers) as pool:
        openings = run_all(
            pool,
            [
                (
                    _open,
                    (
                        settings,
                        s.instrument,
                        s.period,
                        today
                        + dt.timedelta(days=instrument_entry(settings, s.instrument).response_days),
                        today,
                    ),
                    f"{s.instrument} {s.period} requested",
                    1,
                )
                for s in SCENARIOS
            ],
            tick,
        )
        opened = {s.instrument: o for s, o in zip(SCENARIOS, openings, strict=True)}
        steps, reminders = _play(settings, pool, opened, tick)

        # Longest first (CAMI: three languages, 121 activities) so the workers end together.
        jobs = [
            (opened[s.instrument][0], language)
            for s in sorted(SCENARIOS, key=lambda s: s.instrument != "cami")
            for language in _languages(settings, s.instrument)
        ]
        names = {cycle_id: instrument for instrument, (cycle_id, _, _) in opened.items()}
        # A summary newer than everything its cycle holds is kept: a re-run renders nothing.
        stale = [job for job in jobs if _stale(settings, *job)]
        for job in jobs:
            if job not in stale:
                tick(f"report {names[job[0]]} {job[1]} up to date")
        paths = run_all(
            pool,
            [(_render, (settings, *job), f"report {names[job[0]]} {job[1]}", 1) for job in stale],
            tick,
        )
    rendered = dict(zip(stale, paths, strict=True))

    cycles = []
    for scenario in SCENARIOS:
        cycle_id, created, _ = opened[scenario.instrument]
        pdfs = [_target(settings, *job) for job in jobs if job[0] == cycle_id]
        new = [pdf for (cid, _), pdf in rendered.items() if cid == cycle_id]
        cycles.append(cycle_summary(settings, scenario, cycle_id, created, pdfs, new))
    return demo_report(
        settings, today, cycles, steps, reminders, submissions_before, messages_before
    )


def _play(
    settings: Settings, pool: ProcessPoolExecutor | None, opened: dict[str, Opened], tick: Tick
) -> tuple[list[StepResult], list[ReminderRun]]:
    """Both cycles' timeline played in order: (the steps' results, the reminder runs).

    The steps between two reminder runs go to the workers as one chain per state, the state's
    steps in order; steps taken by an earlier run are skipped.
    """
    results: dict[tuple[str, str, int], StepResult] = {}
    order: list[tuple[str, str, int]] = []
    reminders: list[ReminderRun] = []
    stretch: list[StateTurn] = []

    def run_stretch() -> None:
        chains: dict[tuple[str, str], list[StateTurn]] = {}
        for turn in stretch:
            instrument, state = turn.scenario.instrument, turn.step.state
            if _submissions_of(settings, opened[instrument][0], state) >= turn.ordinal:
                # Taken by an earlier run: its submission is in the database already.
                step = turn.step
                results[turn.key] = StepResult(
                    turn.day, instrument, state, step.kind, step.channel, True
                )
                tick(f"{instrument} {state} {step.kind} (done before)")
            else:
                chains.setdefault((instrument, state), []).append(turn)
        calls: list[Call] = [
            (
                _chain,
                (
                    settings,
                    chain[0].scenario,
                    opened[instrument][0],
                    [(turn.step, turn.day) for turn in chain],
                ),
                f"{instrument} {state} " + ", ".join(turn.step.kind for turn in chain),
                len(chain),
            )
            for (instrument, state), chain in chains.items()
        ]
        for chain, chain_results in zip(chains.values(), run_all(pool, calls, tick), strict=True):
            for turn, result in zip(chain, chain_results, strict=True):
                results[turn.key] = result
        stretch.clear()

    deadlines = {instrument: deadline for instrument, (_, _, deadline) in opened.items()}
    for event in timeline(deadlines):
        if isinstance(event, ReminderDay):
            run_stretch()
            # Both cycles' reminders on one day: one run covers every open cycle.
            if not reminders or reminders[-1].day != event.day:
                reminders.append(_remind(settings, event.day))
            tick(f"reminders {event.day:%Y-%m-%d}")
            continue
        order.append(event.key)
        stretch.append(event)
    run_stretch()
    return [results[key] for key in order], reminders
