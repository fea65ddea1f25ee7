"""``mou demo``: one whole reporting cycle of each instrument, on synthetic returns.

Runs the protocol functions only (as the flows and the CLI do): prepare the database, open
and dispatch a Bukhara Deer MoU cycle (2025-2026) and a CAMI cycle (2024-2026), receive and
process a synthetic return from every range state, run the reminders at deadline-14, deadline
and deadline+7, then consolidate and render the progress summaries.

The story (days relative to each cycle's deadline): most states report early; Turkmenistan
first sends a Bukhara deer return with typical errors, is refused, is reminded and corrects it;
Kazakhstan revises its accepted Bukhara deer return (the revision supersedes it); Afghanistan
(Bukhara deer) and Pakistan (CAMI) report only after the escalation at deadline+7; Nepal and
Bhutan (CAMI) report after the first reminder.

Dates: ``today`` is the day the cycles are opened (default: the real date); deadlines are
today + the instrument's ``response_days`` from the catalogue, as the scheduled opening does.
Reminders run on the demo's dates. Files are recorded at the real time (the protocol has no
clock for receipt), so the consolidated report counts a "late" return as late only if the real
date is past the deadline.

Idempotent: the cycles are found by instrument and period and reused; a state's steps already
taken (counted by its submissions in the cycle) are skipped; requests, reminders and receipts
are keyed in the outbox; a summary PDF newer than everything its cycle holds is kept. A second
run therefore adds no email, file, submission or PDF, and finishes what an interrupted run
left. Because reminders act on every open cycle, the demo refuses a database that holds any
other cycle: give it a var/ (and database) of its own.

Speed: dispatch, the returns between two reminder runs, and the PDFs run in forked worker
processes (``workers``), as several service workers would; ``workers=1`` runs everything in
this process (use it where forking is unwelcome, e.g. inside a threaded host).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from mou.errors import Refused
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope

Progress = Callable[[int, int, str], None]  # done, total, what


@dataclass(frozen=True)
class Step:
    """One state's action on a day counted from the cycle's deadline."""

    offset: int
    state: str
    kind: str  # return | errors | correction | revision
    channel: str  # inbox | email


@dataclass(frozen=True)
class Scenario:
    instrument: str
    period: str
    steps: tuple[Step, ...]


REMINDER_OFFSETS = (-14, 0, 7)  # before, due, first escalation (mou.cycle.reminders.STEPS)
ERRORS_PER_RETURN = 2

SCENARIOS = (
    Scenario(
        "bukhara-deer",
        "2025-2026",
        (
            Step(-75, "UZ", "return", "inbox"),
            Step(-60, "KZ", "return", "email"),
            Step(-45, "TJ", "return", "email"),
            Step(-30, "TM", "errors", "email"),
            Step(-10, "TM", "correction", "email"),
            Step(-5, "KZ", "revision", "inbox"),
            Step(12, "AF", "return", "email"),
        ),
    ),
    Scenario(
        "cami",
        "2024-2026",
        (
            Step(-100, "MN", "return", "email"),
            Step(-95, "KZ", "return", "inbox"),
            Step(-90, "UZ", "return", "email"),
            Step(-80, "CN", "return", "inbox"),
            Step(-75, "KG", "return", "email"),
            Step(-70, "TJ", "return", "email"),
            Step(-60, "IN", "return", "inbox"),
            Step(-50, "RU", "return", "email"),
            Step(-40, "IR", "return", "email"),
            Step(-30, "TM", "return", "inbox"),
            Step(-20, "AF", "return", "email"),
            Step(-7, "NP", "return", "email"),
            Step(-2, "BT", "return", "inbox"),
            Step(10, "PK", "return", "email"),
        ),
    ),
)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass
class StepResult:
    day: dt.date
    instrument: str
    state: str
    kind: str
    channel: str
    done_before: bool  # taken by an earlier run: nothing was sent again
    submission_id: int | None = None
    status: str | None = None
    version: int | None = None
    issues: list[str] = field(default_factory=list)  # error codes


@dataclass
class ReminderRun:
    day: dt.date
    sent: int  # new reminders
    states: dict[str, list[str]] = field(default_factory=dict)  # "instrument period" -> states


@dataclass
class CycleSummary:
    cycle_id: int
    instrument: str
    period: str
    deadline: dt.date
    created: bool
    states: list[str]
    accepted: list[str]  # states with a current accepted return
    submissions: int
    rejected: int
    superseded: int
    late: list[str]  # reported after the deadline in the demo's timeline
    corrected: list[str]  # refused first, then accepted
    pdfs: list[Path]  # the cycle's progress summaries, one per instrument language
    rendered: list[Path]  # those (re)written by this run


@dataclass
class DemoReport:
    """Where everything is, with counts; ``lines()`` is what ``mou demo`` prints."""

    database: str
    var_dir: Path
    files_dir: Path
    raw_files: int  # stored files (returns and generated attachments), sha256-addressed
    returns: int  # submissions recorded (all versions)
    outbox: dict[str, int]  # messages by kind
    outbox_status: dict[str, int]  # messages by status
    transport: str  # "files" or "smtp host:port"
    outbox_dir: Path | None  # .eml files when no SMTP relay is configured
    eml_files: int
    cycles: list[CycleSummary]
    steps: list[StepResult]
    reminders: list[ReminderRun]
    new_submissions: int  # in this run
    new_messages: int  # in this run
    opened_on: dt.date

    @property
    def pdfs(self) -> list[Path]:
        return [pdf for cycle in self.cycles for pdf in cycle.pdfs]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pdfs"] = self.pdfs
        return data

    def lines(self) -> list[str]:
        """A short account for a terminal."""
        out = []
        for cycle in self.cycles:
            how = "opened" if cycle.created else "already existed, reused"
            out.append(
                f"{cycle.instrument} {cycle.period} (cycle {cycle.cycle_id}, deadline "
                f"{cycle.deadline:%Y-%m-%d}): {how}"
            )
            out.append(
                f"  accepted {len(cycle.accepted)}/{len(cycle.states)} states; "
                f"{cycle.submissions} files received, {cycle.rejected} refused, "
                f"{cycle.superseded} superseded"
            )
            if cycle.corrected:
                out.append(f"  refused then corrected: {', '.join(cycle.corrected)}")
            if cycle.late:
                out.append(f"  reported after the deadline: {', '.join(cycle.late)}")
        for run in self.reminders:
            who = "; ".join(f"{k}: {', '.join(v)}" for k, v in run.states.items()) or "none due"
            out.append(f"reminders on {run.day:%Y-%m-%d}: {run.sent} new ({who})")
        out.append(f"database: {self.database}")
        out.append(f"raw files: {self.files_dir} ({self.raw_files} files, {self.returns} returns)")
        kinds = ", ".join(f"{n} {kind}s" for kind, n in sorted(self.outbox.items()))
        if self.outbox_dir is not None:
            out.append(f"emails: {self.outbox_dir} ({self.eml_files} .eml files; {kinds})")
        else:
            out.append(f"emails: sent through {self.transport} ({kinds})")
        for cycle in self.cycles:
            for pdf in cycle.pdfs:
                note = "" if pdf in cycle.rendered else " (up to date, kept)"
                out.append(f"report: {pdf}{note}")
        if self.new_submissions == 0 and self.new_messages == 0:
            out.append("nothing new: every step had been taken by an earlier run")
        else:
            out.append(
                f"this run: {self.new_submissions} returns received, "
                f"{self.new_messages} emails queued"
            )
        return out


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


def _count(settings: Settings, model: Any) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


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
            .where(m.RangeState.code == state)
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


def _submit(
    settings: Settings, scenario: Scenario, cycle_id: int, step: Step, day: dt.date
) -> StepResult:
    from mou.demo.synthetic import synthetic_return
    from mou.service.protocol import process_submission, receive_file

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
    submission_id, _ = receive_file(
        settings,
        made.data,
        filename=f"{scenario.instrument}-{scenario.period}-{step.state}{suffix}.xlsx",
        sender=_sender(settings, step.state) if step.channel == "email" else None,
        channel=step.channel,
    )
    outcome = process_submission(settings, submission_id)
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


def _summary(
    settings: Settings,
    scenario: Scenario,
    cycle_id: int,
    created: bool,
    pdfs: list[Path],
    rendered: list[Path],
) -> CycleSummary:
    with session_scope(settings) as session:
        cycle = session.get(m.ReportingCycle, cycle_id)
        assert cycle is not None
        states = [r.state.code for r in cycle.requests]
        rows = session.execute(
            select(m.RangeState.code, m.Submission.status, m.Submission.superseded_by_id)
            .join(m.RangeState, m.Submission.state_id == m.RangeState.id)
            .where(m.Submission.cycle_id == cycle_id)
        ).all()
        deadline = cycle.deadline
    accepted = sorted({s for s, status, by in rows if status == "accepted" and by is None})
    first_accepted: dict[str, int] = {}
    for step in scenario.steps:
        if step.kind != "errors":
            first_accepted.setdefault(step.state, step.offset)
    return CycleSummary(
        cycle_id=cycle_id,
        instrument=scenario.instrument,
        period=scenario.period,
        deadline=deadline,
        created=created,
        states=states,
        accepted=accepted,
        submissions=len(rows),
        rejected=sum(1 for _, status, _ in rows if status == "rejected"),
        superseded=sum(1 for _, _, by in rows if by is not None),
        late=sorted(s for s, offset in first_accepted.items() if offset > 0),
        corrected=sorted({s.state for s in scenario.steps if s.kind == "errors"}),
        pdfs=pdfs,
        rendered=rendered,
    )


def _render(settings: Settings, cycle_id: int, language: str) -> Path:
    from mou.service.protocol import consolidate_and_render

    [pdf] = consolidate_and_render(settings, cycle_id, [language])
    return pdf


def _as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns; they were stored as UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


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
        moments = [
            cycle.opened_at,
            session.scalar(select(func.max(m.Submission.received_at)).filter_by(cycle_id=cycle_id)),
            session.scalar(select(func.max(m.Submission.decided_at)).filter_by(cycle_id=cycle_id)),
            session.scalar(
                select(func.max(m.OutboxMessage.created_at)).filter_by(cycle_id=cycle_id)
            ),
            session.scalar(select(func.max(m.OutboxMessage.sent_at)).filter_by(cycle_id=cycle_id)),
        ]
    if not target.exists():
        return True
    latest = max((_as_utc(t) for t in moments if t is not None), default=None)
    written = dt.datetime.fromtimestamp(target.stat().st_mtime, dt.UTC)
    return latest is None or written <= latest


def _forget_connections(url: str) -> None:
    """In a forked worker: never use (nor close) the parent's pooled connections."""
    from mou.store.database import engine_for

    engine_for(url).dispose(close=False)


@contextmanager
def _workers(settings: Settings, count: int) -> Iterator[ProcessPoolExecutor | None]:
    """Worker processes for the CPU-bound steps (PDFs: WeasyPrint holds the GIL), or None.

    "fork" rather than "spawn", which would re-run the caller's main module; without fork,
    or with one worker, everything runs in this process.
    """
    if count <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    from mou.store.database import engine_for

    url = settings.effective_database_url
    engine_for(url).dispose()  # nothing pooled for the workers to inherit (they fork next)
    pool = ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_forget_connections,
        initargs=(url,),
    )
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


Call = tuple[Callable[..., Any], tuple[Any, ...], str, int]  # function, args, what, steps
Tick = Callable[[str, int], None]


def _run_all(pool: ProcessPoolExecutor | None, calls: Sequence[Call], tick: Tick) -> list[Any]:
    """Results of ``function(*args)`` in the order given, ticking ``what`` as each ends."""
    if pool is None:
        results = []
        for function, args, what, steps in calls:
            results.append(function(*args))
            tick(what, steps)
        return results
    futures = [pool.submit(function, *args) for function, args, _, _ in calls]
    labels = {future: call[2:] for future, call in zip(futures, calls, strict=True)}
    for future in as_completed(futures):
        future.result()  # the first failure stops the demo
        tick(*labels[future])
    return [future.result() for future in futures]


def _open(
    settings: Settings, instrument: str, period: str, deadline: dt.date
) -> tuple[int, bool, dt.date]:
    from mou.service.protocol import open_and_dispatch

    opening = open_and_dispatch(settings, instrument, period, deadline)
    return opening.cycle_id, opening.created, opening.deadline


def _chain(
    settings: Settings, scenario: Scenario, cycle_id: int, steps: list[tuple[Step, dt.date]]
) -> list[StepResult]:
    """One state's steps of one stretch between reminder runs, in order."""
    return [_submit(settings, scenario, cycle_id, step, day) for step, day in steps]


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
    submissions_before = _count(settings, m.Submission)
    messages_before = _count(settings, m.OutboxMessage)
    # An interrupted earlier run may have left a file recorded but not decided.
    sweep(settings, older_than=dt.timedelta(0))
    tick("database ready")

    with _workers(settings, workers) as pool:
        openings = _run_all(
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
                    ),
                    f"{s.instrument} {s.period} requested",
                    1,
                )
                for s in SCENARIOS
            ],
            tick,
        )
        opened = {s.instrument: o for s, o in zip(SCENARIOS, openings, strict=True)}
        steps, reminders = _timeline(settings, pool, opened, tick)

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
        paths = _run_all(
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
        cycles.append(_summary(settings, scenario, cycle_id, created, pdfs, new))
    return _report(settings, today, cycles, steps, reminders, submissions_before, messages_before)


def _timeline(
    settings: Settings,
    pool: ProcessPoolExecutor | None,
    opened: dict[str, tuple[int, bool, dt.date]],
    tick: Tick,
) -> tuple[list[StepResult], list[ReminderRun]]:
    """Both cycles' steps and reminder runs by date; on a day with both, reminders first."""
    events: list[tuple[dt.date, int, Any]] = []
    for scenario in SCENARIOS:
        _, _, deadline = opened[scenario.instrument]
        for offset in REMINDER_OFFSETS:
            events.append((deadline + dt.timedelta(days=offset), 0, None))
        for step in scenario.steps:
            events.append((deadline + dt.timedelta(days=step.offset), 1, (scenario, step)))
    events.sort(key=lambda e: (e[0], e[1]))

    results: dict[tuple[str, str, int], StepResult] = {}
    order: list[tuple[str, str, int]] = []
    reminders: list[ReminderRun] = []
    taken: dict[tuple[str, str], int] = {}
    stretch: list[tuple[Scenario, Step, dt.date, int]] = []

    def run_stretch() -> None:
        chains: dict[tuple[str, str], list[tuple[Scenario, Step, dt.date, int]]] = {}
        for scenario, step, day, ordinal in stretch:
            cycle_id = opened[scenario.instrument][0]
            if _submissions_of(settings, cycle_id, step.state) >= ordinal:
                # Taken by an earlier run: its submission is in the database already.
                key = (scenario.instrument, step.state, ordinal)
                results[key] = StepResult(
                    day, scenario.instrument, step.state, step.kind, step.channel, True
                )
                tick(f"{scenario.instrument} {step.state} {step.kind} (done before)")
            else:
                chains.setdefault((scenario.instrument, step.state), []).append(
                    (scenario, step, day, ordinal)
                )
        calls = [
            (
                _chain,
                (
                    settings,
                    chain[0][0],
                    opened[chain[0][0].instrument][0],
                    [(step, day) for _, step, day, _ in chain],
                ),
                f"{instrument} {state} " + ", ".join(step.kind for _, step, _, _ in chain),
                len(chain),
            )
            for (instrument, state), chain in chains.items()
        ]
        for chain, chain_results in zip(chains.values(), _run_all(pool, calls, tick), strict=True):
            for (scenario, step, _, ordinal), result in zip(chain, chain_results, strict=True):
                results[(scenario.instrument, step.state, ordinal)] = result
        stretch.clear()

    for day, _, action in events:
        if action is None:
            run_stretch()
            if not reminders or reminders[-1].day != day:
                reminders.append(_remind(settings, day))
            tick(f"reminders {day:%Y-%m-%d}")
            continue
        scenario, step = action
        ordinal = taken.get((scenario.instrument, step.state), 0) + 1
        taken[(scenario.instrument, step.state)] = ordinal
        order.append((scenario.instrument, step.state, ordinal))
        stretch.append((scenario, step, day, ordinal))
    run_stretch()
    return [results[key] for key in order], reminders


def _report(
    settings: Settings,
    today: dt.date,
    cycles: list[CycleSummary],
    steps: list[StepResult],
    reminders: list[ReminderRun],
    submissions_before: int,
    messages_before: int,
) -> DemoReport:
    with session_scope(settings) as session:
        kinds = dict(
            session.execute(
                select(m.OutboxMessage.kind, func.count(m.OutboxMessage.id)).group_by(
                    m.OutboxMessage.kind
                )
            ).all()
        )
        statuses = dict(
            session.execute(
                select(m.OutboxMessage.status, func.count(m.OutboxMessage.id)).group_by(
                    m.OutboxMessage.status
                )
            ).all()
        )
    smtp = bool(settings.smtp_host)
    outbox_dir = None if smtp else settings.outbox_dir
    submissions = _count(settings, m.Submission)
    messages = _count(settings, m.OutboxMessage)
    return DemoReport(
        database=make_url(settings.effective_database_url).render_as_string(hide_password=True),
        var_dir=settings.var_dir,
        files_dir=settings.files_dir,
        raw_files=_count(settings, m.StoredFile),
        returns=submissions,
        outbox=kinds,
        outbox_status=statuses,
        transport=f"smtp {settings.smtp_host}:{settings.smtp_port}" if smtp else "files",
        outbox_dir=outbox_dir,
        eml_files=len(list(outbox_dir.glob("*.eml"))) if outbox_dir and outbox_dir.exists() else 0,
        cycles=cycles,
        steps=steps,
        reminders=reminders,
        new_submissions=submissions - submissions_before,
        new_messages=messages - messages_before,
        opened_on=today,
    )
