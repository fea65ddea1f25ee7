"""The reporting protocol as plain functions: open and dispatch, receive, process, remind,
sweep, consolidate. Flows, the CLI and the portal are entrypoints that only call these.

Each step commits what it did before announcing it; each can be repeated safely.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from mou.cycle.dispatch import dispatch_request
from mou.cycle.opening import open_cycle
from mou.cycle.reminders import send_reminders
from mou.intake.alerts import enqueue_set_aside_alert
from mou.intake.decide import (
    PROCESSING_FAILED,
    IngestOutcome,
    count_failed_attempt,
    ingest_submission,
    set_aside,
)
from mou.intake.receipts import enqueue_receipt
from mou.intake.record import record_submission
from mou.mail.delivery import DeliveryReport, deliver_pending
from mou.service import events
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope

log = logging.getLogger(__name__)
DECISION_TRIES = 5
# Failed attempts (over all runs and the sweep) before a return is set aside as refused.
ATTEMPTS_BEFORE_SET_ASIDE = 3
# Who ingests a received return, as the `mou.ingest` label of mou.submission.received:
# "queued" - the warm task workers (`mou worker`, or the one in `mou serve`), woken for it;
# "inline" - the process that received it, right away (the sweep is the fallback).
INGEST_QUEUED = "queued"
INGEST_INLINE = "inline"
Progress = Callable[[int, int, str], None]  # done, total, what


@dataclass
class CycleOpening:
    cycle_id: int
    instrument: str
    period: str
    deadline: dt.date
    created: bool
    dispatched: list[str] = field(default_factory=list)  # states whose request is new
    already: list[str] = field(default_factory=list)  # states requested before
    delivery: DeliveryReport | None = None


def open_and_dispatch(
    settings: Settings,
    instrument: str,
    period: str,
    deadline: dt.date,
    states: Sequence[str] | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
) -> CycleOpening:
    """Open the cycle, enqueue one request per state (each in its own transaction), send.

    ``today``: the date of the requests (default: today in UTC); see ``open_cycle`` for what
    is refused."""
    with session_scope(settings) as session:
        opened = open_cycle(session, settings, instrument, period, deadline, states, today)
        result = CycleOpening(
            opened.cycle.id, instrument, period, opened.cycle.deadline, opened.created
        )
        requests = [(r.id, r.state.code) for r in opened.requests]
    if result.created:
        events.emit(
            events.CYCLE_OPENED,
            f"mou.cycle.{result.cycle_id}",
            instrument=instrument,
            cycle_id=result.cycle_id,
            payload={"period": period, "deadline": deadline.isoformat()},
        )
    for done, (request_id, state) in enumerate(requests, start=1):
        with session_scope(settings) as session:
            message, created = dispatch_request(session, settings, request_id)
            message_id = message.message_id
        (result.dispatched if created else result.already).append(state)
        if created:
            events.emit(
                events.REQUEST_DISPATCHED,
                f"mou.request.{request_id}",
                instrument=instrument,
                cycle_id=result.cycle_id,
                state=state,
                payload={"request_id": request_id, "message_id": message_id},
            )
        if progress:
            progress(done, len(requests), state)
    result.delivery = deliver_pending(settings)
    return result


def receive_file(
    settings: Settings,
    data: bytes,
    *,
    filename: str | None,
    sender: str | None = None,
    state: str | None = None,
    cycle_id: int | None = None,
    channel: str = "cli",
    ingest: str = INGEST_QUEUED,
    received_at: dt.datetime | None = None,
) -> tuple[int, bool]:
    """Keep the bytes and the row (committed), then announce; (submission id, new).

    ``ingest`` says who ingests it (the event's `mou.ingest` label): a "queued" return
    wakes the warm task workers (``mou.service.tasks``); an inline one is decided by the
    caller."""
    with session_scope(settings) as session:
        recorded = record_submission(
            session,
            settings,
            data,
            filename=filename,
            sender=sender,
            channel=channel,
            expected_state=state,
            expected_cycle_id=cycle_id,
            received_at=received_at,
        )
    submission_id, sha256 = recorded.submission_id, recorded.sha256
    if recorded.created:
        events.emit(
            events.SUBMISSION_RECEIVED,
            f"mou.submission.{submission_id}",
            state=state,
            cycle_id=cycle_id,
            ingest=ingest,
            payload={"submission_id": submission_id, "sha256": sha256, "channel": channel},
        )
        if ingest == INGEST_QUEUED:
            from mou.service.tasks import wake_decisions

            wake_decisions()
    return submission_id, recorded.created


def decide_submission(
    settings: Settings, submission_id: int, now: dt.datetime | None = None
) -> IngestOutcome:
    """Decide one submission, whatever goes wrong while deciding it.

    A lost version race is decided again at once. A database that cannot be reached is left
    to the sweep (nothing can be written now; it never sets a return aside). Any other fault
    is counted on the submission and tried once more; the return stays undecided for the
    sweep until ``ATTEMPTS_BEFORE_SET_ASIDE`` faults have been counted, then it is set aside
    as refused with a plain message, so it gets a receipt and never holds back the others.
    """
    last_fault = ""
    for attempt in range(1, DECISION_TRIES + 1):
        try:
            with session_scope(settings) as session:
                return ingest_submission(session, settings, submission_id, now=now)
        except IntegrityError:
            # Another worker decided a return of the same state at the same moment and took
            # the version number: decide again on the committed state.
            log.info("submission %s: version taken concurrently, deciding again", submission_id)
            if attempt < DECISION_TRIES:
                continue
            last_fault = "its answers could not be stored (a conflict every time)"
            faults = _count_failure(settings, submission_id)
        except OperationalError:
            raise  # the database is away or busy (not counted): the sweep decides it later
        except Exception as exc:
            log.exception("submission %s: deciding failed (attempt %s)", submission_id, attempt)
            last_fault = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
            faults = _count_failure(settings, submission_id)
        if faults >= ATTEMPTS_BEFORE_SET_ASIDE:
            break
        if attempt >= 2:
            raise UndecidedSubmission(submission_id)
    with session_scope(settings) as session:
        outcome = set_aside(session, settings, submission_id)
        if not outcome.already_decided:
            enqueue_set_aside_alert(session, settings, submission_id, last_fault)
    log.error("submission %s: set aside as %s", submission_id, PROCESSING_FAILED)
    return outcome


class UndecidedSubmission(Exception):
    """Deciding a submission failed twice in this run; the sweep tries it again later."""


def _count_failure(settings: Settings, submission_id: int) -> int:
    try:
        with session_scope(settings) as session:
            return count_failed_attempt(session, submission_id)
    except OperationalError:
        return 0


def decide_and_announce(
    settings: Settings, submission_id: int, now: dt.datetime | None = None
) -> IngestOutcome:
    """Decide one submission (once) and announce its outcome; no receipt (see below)."""
    outcome = decide_submission(settings, submission_id, now)
    # Announced by the process that decided it, once: a repeat (the sweep, a second worker)
    # finds it decided and says nothing.
    if outcome.status in ("accepted", "rejected") and not outcome.already_decided:
        with session_scope(settings) as session:
            submission = session.get(m.Submission, submission_id)
            instrument = (
                submission.cycle.instrument.code if submission and submission.cycle else None
            )
            sha256 = submission.file_sha256 if submission else None
        events.emit(
            events.SUBMISSION_ACCEPTED
            if outcome.status == "accepted"
            else events.SUBMISSION_REJECTED,
            f"mou.submission.{submission_id}",
            instrument=instrument,
            cycle_id=outcome.cycle_id,
            state=outcome.state,
            payload={
                "submission_id": submission_id,
                "cycle_id": outcome.cycle_id,
                "sha256": sha256,
                "version": outcome.version,
                "errors": sum(1 for i in outcome.issues if i.severity == "error"),
                "warnings": sum(1 for i in outcome.issues if i.severity == "warning"),
            },
        )
    return outcome


def process_submission(
    settings: Settings, submission_id: int, now: dt.datetime | None = None
) -> IngestOutcome:
    """Decide (once), announce, enqueue the receipt and send it, all in this process; then
    ask the warm workers to render the cycle's summaries (``mou.service.tasks``)."""
    outcome = decide_and_announce(settings, submission_id, now)
    with session_scope(settings) as session:
        try:
            enqueue_receipt(session, settings, submission_id)
        except ValueError:  # an address that cannot be written to: keep the outcome
            log.warning("no receipt for submission %s: unusable address", submission_id)
    deliver_pending(settings)
    if outcome.status == "accepted" and not outcome.already_decided and outcome.cycle_id:
        from mou.service.tasks import wake_consolidation

        wake_consolidation()  # the render finds the stale cycles in the database
    return outcome


def _undecided(settings: Settings, submission_id: int) -> bool:
    with session_scope(settings) as session:
        submission = session.get(m.Submission, submission_id)
        return submission is not None and submission.status == "received"


class InlineIngest:
    """Ingest returns in this process as soon as they are received (`mou serve`'s drop folder
    and portal): no flow-run process to start between a drop and its receipt.

    Deciding is idempotent, so a crash here loses nothing: the sweep decides what is left.
    """

    def __init__(self, settings: Settings, workers: int = 2) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mou-ingest")

    def submit(self, submission_id: int) -> Future[IngestOutcome | None]:
        return self._pool.submit(self._process, submission_id)

    def _process(self, submission_id: int) -> IngestOutcome | None:
        from mou.service.intake_work import claim, release

        try:
            # A return a warm worker's drain holds is that drain's (a backlog older than
            # the workers' look age can meet one): never parsed twice at once.
            if not claim(self.settings, submission_id) and _undecided(self.settings, submission_id):
                return None
            return process_submission(self.settings, submission_id)
        except Exception:  # a database hiccup: the sweep decides it later
            log.exception("ingest of submission %s failed; the sweep will retry", submission_id)
            release(self.settings, submission_id)
            return None

    def close(self) -> None:
        """Finish the return being decided; leave the queued ones to the sweep."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def remind(settings: Settings, today: dt.date) -> int:
    """Enqueue and send today's reminders; returns how many were new."""
    with session_scope(settings) as session:
        count = len(send_reminders(session, settings, today))
    deliver_pending(settings)
    return count


@dataclass
class SweepReport:
    ingested: list[int] = field(default_factory=list)
    receipts: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # could not be decided now; next sweep
    reports: list[int] = field(default_factory=list)  # cycles whose summaries were stale
    temporary_files: int = 0  # half-written files a killed process left
    delivery: DeliveryReport | None = None


def sweep(
    settings: Settings,
    older_than: dt.timedelta = dt.timedelta(seconds=30),
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> SweepReport:
    """Finish whatever a lost event or a crash left: undecided submissions, missing receipts,
    progress summaries out of date, unsent emails. Safe to run at any time, on any number of
    machines."""
    now = now or m.utcnow()
    report = SweepReport()
    with session_scope(settings) as session:
        waiting = session.scalars(
            select(m.Submission.id)
            .where(m.Submission.status == "received", m.Submission.received_at <= now - older_than)
            .order_by(m.Submission.id)
        ).all()
        decided = session.scalars(
            select(m.Submission.id).where(m.Submission.status.in_(("accepted", "rejected")))
        ).all()
        receipts = set(
            session.scalars(
                select(m.OutboxMessage.submission_id).where(m.OutboxMessage.kind == "receipt")
            ).all()
        )
    for done, submission_id in enumerate(waiting, start=1):
        # One return that cannot be decided now must not stop the sweep for the others.
        try:
            process_submission(settings, submission_id)
            report.ingested.append(submission_id)
        except Exception:
            log.exception("sweep: submission %s not decided; next sweep", submission_id)
            report.failed.append(submission_id)
        if progress:
            progress(done, len(waiting), f"submission {submission_id}")
    for submission_id in decided:
        if submission_id in receipts:
            continue
        try:
            with session_scope(settings) as session:
                _, created = enqueue_receipt(session, settings, submission_id)
        except ValueError:  # an address no message can be written to: nobody to tell
            log.warning("sweep: no receipt for submission %s: unusable address", submission_id)
            continue
        except Exception:  # e.g. its summary PDF cannot be rendered now: the next sweep
            log.exception("sweep: receipt of submission %s not written", submission_id)
            report.failed.append(submission_id)
            continue
        if created:
            report.receipts.append(submission_id)
    report.temporary_files = remove_leftover_files(settings, now)
    try:
        report.reports = render_stale_reports(settings)
    except Exception:  # the reports wait for the next sweep; the mail below must not
        log.exception("sweep: progress summaries not rendered")
    report.delivery = deliver_pending(settings)
    return report


# Half-written files: the file store's, the .eml outbox's, the reports'. A writer renames its
# own the moment it is done, so one an hour old was left by a process that died.
LEFTOVER_PATTERNS = (
    ("files_dir", "**/.incoming-*"),
    ("outbox_dir", ".sending-*.tmp"),
    ("var_dir", "reports/*/.*.partial"),
)
LEFTOVER_AGE = dt.timedelta(hours=1)


def remove_leftover_files(settings: Settings, now: dt.datetime | None = None) -> int:
    """Delete the half-written files of processes that died mid-write; returns how many."""
    cutoff = (now or m.utcnow()) - LEFTOVER_AGE
    removed = 0
    for folder_name, pattern in LEFTOVER_PATTERNS:
        folder = getattr(settings, folder_name)
        if not folder.is_dir():
            continue
        for path in folder.glob(pattern):
            try:
                modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
                if modified < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue  # gone meanwhile, or not ours to remove
    return removed


def reports_folder(settings: Settings, cycle: m.ReportingCycle) -> Path:
    return settings.var_dir / "reports" / f"{cycle.instrument.code}-{cycle.period}"


def consolidate_and_render(
    settings: Settings, cycle_id: int, languages: Sequence[str] | None = None
) -> list[Path]:
    """Render the cycle's progress summary in each language to var/reports/ (atomic writes).

    The folder's ``rendered.json`` then names the accepted returns the files were made from,
    so anyone can tell from the database alone whether they are out of date.
    """
    from mou.reporting.consolidation import consolidate

    with session_scope(settings) as session:
        cycle = session.get(m.ReportingCycle, cycle_id)
        if cycle is None:
            return []
        folder = reports_folder(settings, cycle)
        wanted = list(languages or cycle.instrument.languages)
    folder.mkdir(parents=True, exist_ok=True)
    # Renders of one cycle take turns, each reading the database once it has its turn, so
    # an older snapshot never lands after a newer one under a manifest that names the newer.
    with _turn(folder):
        with session_scope(settings) as session:
            consolidated = consolidate(session, cycle_id, forms_dir=settings.forms_dir)
            mark = standing_mark(session, cycle_id)
        return _render(settings, consolidated, folder, wanted, mark)


def standing_mark(session: Any, cycle_id: int) -> str:
    """A digest of what the reports say of each state beyond its answers (outcome, deadline,
    excuse, correction, the Secretariat's review): a report made under another mark is stale,
    whoever changed it and whether or not the render after the change ran."""
    from mou.cycle.standing import cycle_status

    status = cycle_status(session, cycle_id)
    reviewed = session.execute(
        select(m.Submission.id, m.Submission.review_reason).where(
            m.Submission.cycle_id == cycle_id, m.Submission.review_reason.is_not(None)
        )
    ).all()
    seen = {
        "status": status["status"],
        "deadline": status["deadline"],
        "states": [
            [
                s["state"],
                s["outcome"],
                s["on_time"],
                s["deadline"],
                s["excused"],
                s["correction_requested"],
            ]
            for s in status["states"]
        ],
        "reviewed": sorted([i, r] for i, r in reviewed),
        # What the cover says of the meeting (mou cycle meeting).
        "meeting": getattr(session.get(m.ReportingCycle, cycle_id), "meeting", None),
    }
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:20]


def render_if_stale(settings: Settings, cycle_id: int, rounds: int = 5) -> list[Path]:
    """Render the cycle's progress summaries if they are out of date, and again while they are
    (returns accepted during a render); returns the files written, none if up to date.

    What consolidation runs do: any number of them, for one cycle or several, may run at once.
    Those of one cycle take turns (the cycle's render lock) and each decides from the database
    and ``rendered.json`` whether there is anything to do, so a burst of runs costs one render
    and no run of one cycle waits for, or cancels, another cycle's.
    """
    from mou.reporting.consolidation import consolidate

    written: list[Path] = []
    for _ in range(rounds):
        with session_scope(settings) as session:
            cycle = session.get(m.ReportingCycle, cycle_id)
            if cycle is None:
                return written
            folder = reports_folder(settings, cycle)
            languages = list(cycle.instrument.languages)
        folder.mkdir(parents=True, exist_ok=True)
        with _turn(folder):
            with session_scope(settings) as session:
                counted = _counted_returns(session, cycle_id).get(cycle_id, set())
                mark = standing_mark(session, cycle_id)
                if not _out_of_date(folder, languages, counted, mark):
                    return written
                consolidated = consolidate(session, cycle_id, forms_dir=settings.forms_dir)
            written = _render(settings, consolidated, folder, languages, mark)
    return written


@contextmanager
def _turn(folder: Path) -> Iterator[None]:
    with (folder / ".render.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _render(
    settings: Settings, consolidated: Any, folder: Path, wanted: list[str], mark: str
) -> list[Path]:
    from mou.reporting.progress_summary import render_progress_summary

    written = []
    for language in wanted:
        pdf = render_progress_summary(consolidated, language, settings)
        target = folder / f"progress-summary-{language}.pdf"
        _write_atomically(target, pdf)
        written.append(target)
    rendered_from = sorted(r.submission_id for r in consolidated.returns)
    manifest = _manifest(folder)
    manifest.update({language: rendered_from for language in wanted})
    manifest.update({f"{language}{MARK}": mark for language in wanted})
    _write_atomically(folder / MANIFEST, json.dumps(manifest, sort_keys=True).encode())
    return written


MANIFEST = "rendered.json"  # language -> ids of the accepted returns its summary was made from
MARK = "@standing"  # language + MARK -> the standing mark it was made under


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_atomically(target: Path, data: bytes) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(target)


def _counted_returns(session: Session, cycle_id: int | None = None) -> dict[int, set[int]]:
    """Cycle id -> the ids of its accepted returns that count now (of one cycle, or all)."""
    query = select(m.Submission.cycle_id, m.Submission.id).where(
        m.Submission.status == "accepted",
        m.Submission.superseded_by_id.is_(None),
        m.Submission.cycle_id.is_not(None),
    )
    if cycle_id is not None:
        query = query.where(m.Submission.cycle_id == cycle_id)
    counted: dict[int, set[int]] = {}
    for cycle, submission_id in session.execute(query):
        counted.setdefault(cycle, set()).add(submission_id)
    return counted


def _out_of_date(folder: Path, languages: Sequence[str], counted: set[int], mark: str) -> bool:
    """Whether a cycle's summaries are missing, made from other returns than ``counted`` or
    under another standing ``mark`` (a cycle with no counted return has nothing to render)."""
    if not counted:
        return False
    manifest = _manifest(folder)
    return any(
        set(manifest.get(language, ())) != counted
        or manifest.get(f"{language}{MARK}") != mark
        or not (folder / f"progress-summary-{language}.pdf").exists()
        for language in languages
    )


def stale_reports(settings: Settings) -> list[int]:
    """Cycles whose progress summaries are missing or made from other accepted returns than
    the ones that count now (a render lost to a crash, or a burst that came during one)."""
    with session_scope(settings) as session:
        counted = _counted_returns(session)
        cycles = session.scalars(
            select(m.ReportingCycle).where(m.ReportingCycle.id.in_(counted))
        ).all()
        places = {c.id: (reports_folder(settings, c), list(c.instrument.languages)) for c in cycles}
        marks = {c.id: standing_mark(session, c.id) for c in cycles}
    return [
        cycle_id
        for cycle_id, (folder, languages) in sorted(places.items())
        if _out_of_date(folder, languages, counted[cycle_id], marks[cycle_id])
    ]


def render_stale_reports(settings: Settings, rounds: int = 5) -> list[int]:
    """Render every stale cycle, again until none is (returns accepted meanwhile count too);
    returns the cycles rendered. Any process may run it: the database says what is stale."""
    rendered: list[int] = []
    failing: set[int] = set()
    for _ in range(rounds):
        stale = [cycle_id for cycle_id in stale_reports(settings) if cycle_id not in failing]
        national = [c for c in stale_national_reports(settings) if c not in failing]
        if not stale and not national:
            break
        for cycle_id in sorted(set(stale) | set(national)):
            try:
                written = False
                if cycle_id in stale:  # a consolidation run may just have rendered it
                    written = bool(render_if_stale(settings, cycle_id, rounds=1))
                if cycle_id in national:
                    render_national_reports(settings, cycle_id)
                    written = True
            except Exception:  # one cycle that cannot be rendered must not stop the others
                log.exception("reports of cycle %s not rendered", cycle_id)
                failing.add(cycle_id)
                continue
            if written:
                rendered.append(cycle_id)
    return rendered


def stale_national_reports(settings: Settings) -> list[int]:
    """Cycles whose national reports are released but not made from the returns that count."""
    with session_scope(settings) as session:
        released = session.scalars(
            select(m.Publication.cycle_id).where(
                m.Publication.kind == "national-reports", m.Publication.withdrawn_at.is_(None)
            )
        ).all()
        stale = []
        for cycle in session.scalars(
            select(m.ReportingCycle).where(m.ReportingCycle.id.in_(set(released)))
        ):
            counted = {
                code: submission_id
                for submission_id, code in session.execute(
                    select(m.Submission.id, m.RangeState.code)
                    .join(m.RangeState, m.Submission.state_id == m.RangeState.id)
                    .where(
                        m.Submission.cycle_id == cycle.id,
                        m.Submission.status == "accepted",
                        m.Submission.superseded_by_id.is_(None),
                    )
                )
            }
            folder = reports_folder(settings, cycle) / NATIONAL
            try:
                made_from = json.loads((folder / "national.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                made_from = None
            if made_from != counted:
                stale.append(cycle.id)
    return sorted(stale)


NATIONAL = "national"  # sub-folder of a cycle's reports: each counted return's own summary


def render_national_reports(settings: Settings, cycle_id: int) -> list[Path]:
    """Each counted return's national report, in the return's language and English, for the
    public page (``mou publish --national-reports``); ``national.json`` names their returns."""
    from mou.reporting.consolidation.returns import read_return
    from mou.reporting.state_summary import render_state_summary

    with session_scope(settings) as session:
        cycle = session.get(m.ReportingCycle, cycle_id)
        if cycle is None:
            return []
        folder = reports_folder(settings, cycle) / NATIONAL
        counted = session.execute(
            select(m.Submission.id, m.RangeState.code, m.Submission.language)
            .join(m.RangeState, m.Submission.state_id == m.RangeState.id)
            .where(
                m.Submission.cycle_id == cycle_id,
                m.Submission.status == "accepted",
                m.Submission.superseded_by_id.is_(None),
            )
        ).all()
        returns = {
            code: (submission_id, language or "en", read_return(session, submission_id))
            for submission_id, code, language in counted
        }
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with _turn(folder):
        for code, (_, language, returned) in sorted(returns.items()):
            for lang in dict.fromkeys([language, "en"]):
                target = folder / f"{code}-{lang}.pdf"
                _write_atomically(target, render_state_summary(returned, lang, settings))
                written.append(target)
        made_from = {code: submission_id for code, (submission_id, _, _) in returns.items()}
        _write_atomically(folder / "national.json", json.dumps(made_from, sort_keys=True).encode())
    return written


def national_reports(settings: Settings, cycle_id: int) -> dict[str, list[Path]]:
    """The national reports on disk for a cycle, by state code (what the public page lists)."""
    with session_scope(settings) as session:
        cycle = session.get(m.ReportingCycle, cycle_id)
        if cycle is None:
            return {}
        folder = reports_folder(settings, cycle) / NATIONAL
    try:
        made_from = json.loads((folder / "national.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        code: sorted(folder.glob(f"{code}-*.pdf"))
        for code in sorted(made_from)
        if isinstance(code, str) and code.isalpha()
    }
