"""Deciding a recorded return: read it in the sandbox, check it, accept or refuse it, once.

``ingest_submission`` may run many times (retries, the sweep, two workers) and decides once:
its writes land only if the submission is still undecided at commit. The rules it applies are
plain functions in ``rules.py``; recording the file comes first, in ``record.py``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace
from time import monotonic, sleep

from sqlalchemy import exists, insert, or_, select, update
from sqlalchemy.orm import Session, joinedload

from mou.cycle.context import form_context, latest_accepted
from mou.forms import load_form
from mou.i18n.languages import pick
from mou.i18n.texts import Messages
from mou.intake.corrections import answer_corrections
from mou.intake.rules import (
    RequestFacts,
    claimed_language,
    identify,
    request_problem,
    supersession,
    version_for,
)
from mou.settings import Settings
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import begin_sqlite_transaction, fit
from mou.workbook.extract import Limits, Problem
from mou.workbook.identity import TemplateIdentity
from mou.workbook.sandbox import SandboxLimits, default_sandbox
from mou.workbook.validate import Issue, Validation, validate

log = logging.getLogger(__name__)

# A warm worker's claim on a return it decides (mou.service.intake_work): longer than a
# decision can take, two parses of the sandbox (one waiting for the other) at their time
# limit (parse_timeout_seconds, 20 s), each followed by the order wait below.
CLAIM_LEASE = dt.timedelta(seconds=50)
# An accepted return waits this long at most for older returns other deciders are reading
# (below); a decision takes well under a second, so this is for a slow one.
ORDER_WAIT_SECONDS = 5.0
# A claim held longer than this is not waited for: its decider is stuck or was killed (the
# lease keeps other drains off it for longer).
HELD_FOR_A_DECISION = dt.timedelta(seconds=10)


@dataclass
class IngestOutcome:
    submission_id: int
    status: str  # accepted | rejected | received (not decided: lost a race, try again)
    language: str
    issues: list[Issue] = field(default_factory=list)
    state: str | None = None
    cycle_id: int | None = None
    version: int | None = None
    superseded_id: int | None = None
    already_decided: bool = False


# The issue of a return that could not be decided (a fault of ours, not of the file).
PROCESSING_FAILED = "processing_failed"


def set_aside(
    session: Session, settings: Settings, submission_id: int, now: dt.datetime | None = None
) -> IngestOutcome:
    """Refuse a return that could not be decided, with a plain message and no version.

    For a file whose reading or deciding keeps failing (a fault of the service): it must not
    wait for ever nor hold back the others. The raw file stays; the Secretariat sees the
    refusal and its reason on the dashboard and can ask for the file again.
    """
    submission = session.get(m.Submission, submission_id)
    if submission is None:
        raise LookupError(f"no submission {submission_id}")
    if submission.status != "received":
        return _outcome(session, submission, already_decided=True)
    language = _message_language(session, submission, None)
    messages = Messages(settings.forms_dir, language)
    issue = Issue("error", PROCESSING_FAILED, messages.issue(PROCESSING_FAILED))
    return _decide(
        session,
        settings,
        submission,
        [issue],
        Validation(),
        (None, None, None),
        language,
        False,
        now,
    )


def count_failed_attempt(session: Session, submission_id: int) -> int:
    """Count one failed attempt at deciding a submission; returns how many there were."""
    session.execute(
        update(m.Submission)
        .where(m.Submission.id == submission_id, m.Submission.status == "received")
        .values(ingest_attempts=m.Submission.ingest_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return (
        session.scalar(select(m.Submission.ingest_attempts).where(m.Submission.id == submission_id))
        or 0
    )


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        extract=Limits(settings.max_inflated_bytes, settings.max_sheet_cells),
        memory_bytes=settings.parse_memory_bytes,
        timeout_seconds=settings.parse_timeout_seconds,
    )


def _match_request(
    session: Session,
    submission: m.Submission,
    identity: TemplateIdentity,
    messages: Messages,
    waive: frozenset[str] = frozenset(),
) -> tuple[m.ReportingCycle, m.ReportRequest] | Issue:
    """The cycle and request the identity points to, or the reason it cannot be accepted."""
    cycle = session.get(
        m.ReportingCycle, identity.cycle_id, options=[joinedload(m.ReportingCycle.instrument)]
    )
    if cycle is not None and cycle.instrument.code != identity.instrument:
        cycle = None
    state = request = None
    if cycle is not None:
        # The state and its request for this cycle (if any) in one query.
        found = session.execute(
            select(m.RangeState, m.ReportRequest)
            .outerjoin(
                m.ReportRequest,
                (m.ReportRequest.state_id == m.RangeState.id)
                & (m.ReportRequest.cycle_id == cycle.id),
            )
            .where(m.RangeState.code == identity.state)
        ).one_or_none()
        state, request = found if found is not None else (None, None)
    problem = request_problem(
        identity,
        RequestFacts(
            cycle_found=cycle is not None,
            # The Secretariat may still accept a late file of a closed cycle by hand.
            cycle_open=cycle is not None and (cycle.status == "open" or "cycle_closed" in waive),
            form_version=cycle.form_version if cycle else None,
            cycle_id=cycle.id if cycle else None,
            state_id=state.id if state else None,
            requested=request is not None,
            expected_cycle_id=submission.expected_cycle_id,
            expected_state_id=submission.expected_state_id,
        ),
    )
    if problem is None:
        assert cycle is not None and request is not None
        return cycle, request
    return Issue(
        "error",
        problem,
        messages.issue(
            problem,
            **_problem_params(
                session, problem, submission, identity, cycle, state, messages.language
            ),
        ),
    )


def _problem_params(
    session: Session,
    problem: str,
    submission: m.Submission,
    identity: TemplateIdentity,
    cycle: m.ReportingCycle | None,
    state: m.RangeState | None,
    language: str,
) -> dict[str, object]:
    """The names a refusal's message gives, in the sender's language."""
    state_name = pick(state.name, language) if state else identity.state
    period = cycle.period if cycle else "?"
    if problem == "wrong_cycle":
        expected_cycle = session.get(m.ReportingCycle, submission.expected_cycle_id)
        return {"found": period, "expected": expected_cycle.period if expected_cycle else "?"}
    if problem == "wrong_state":
        expected = session.get(m.RangeState, submission.expected_state_id)
        return {"found": state_name, "expected": pick(expected.name, language) if expected else "?"}
    if problem == "cycle_closed":
        return {"period": period}
    if problem == "outdated_form":
        return {
            "found": identity.form_version,
            "expected": cycle.form_version if cycle else "?",
            "period": period,
        }
    if problem == "not_requested":
        return {"state": state_name, "period": period}
    return {}


def _message_language(session: Session, submission: m.Submission, claimed: str | None) -> str:
    if claimed:
        return claimed
    if submission.expected_state_id:
        state = session.get(m.RangeState, submission.expected_state_id)
        if state:
            return state.language
    return "en"


def _limit_issue(problem: Problem, settings: Settings) -> Problem:
    if problem.code == "oversized_content":
        return Problem(problem.code, {"limit": settings.max_inflated_bytes // 2**20})
    return problem


def ingest_submission(
    session: Session,
    settings: Settings,
    submission_id: int,
    now: dt.datetime | None = None,
    waive: frozenset[str] = frozenset(),
    in_order: bool = True,
) -> IngestOutcome:
    """Read, check and decide one submission. Safe to repeat: a decided one is reported as is.

    ``in_order``: an accepted return first lets the deciders of older ones finish, so a state's
    versions follow the order received (not for a return decided again long after, nor inside
    a caller's transaction that holds the database's write lock: ``reconsider``).

    ``waive``: error codes the Secretariat accepts the return despite (``reconsider``); they
    are kept as warnings.
    """
    submission = session.get(m.Submission, submission_id)
    if submission is None:
        raise LookupError(f"no submission {submission_id}")
    if submission.status != "received":
        return _outcome(session, submission, already_decided=True)
    data = filestore.read_bytes(settings.files_dir, submission.file_sha256)

    issues: list[Issue] = []
    validation = Validation()
    identity: TemplateIdentity | None = None
    cycle = request = None
    if len(data) > settings.max_upload_bytes:
        language = _message_language(session, submission, None)
        messages = Messages(settings.forms_dir, language)
        limit = settings.max_upload_bytes // 2**20
        issues.append(
            Issue("error", "file_too_large", messages.issue("file_too_large", limit=limit))
        )
    else:
        extraction = default_sandbox(sandbox_limits(settings)).parse(data)
        if isinstance(extraction, Problem):
            language = _message_language(session, submission, None)
            messages = Messages(settings.forms_dir, language)
            problem = _limit_issue(extraction, settings)
            issues.append(
                Issue("error", problem.code, messages.issue(problem.code, **problem.params))
            )
        else:
            found = identify(extraction, settings.keyring)
            claimed = found.language if isinstance(found, TemplateIdentity) else None
            language = _message_language(
                session, submission, claimed or claimed_language(extraction.tokens)
            )
            messages = Messages(settings.forms_dir, language)
            if isinstance(found, str):
                issues.append(Issue("error", found, messages.issue(found)))
            else:
                identity = found
                matched = _match_request(session, submission, identity, messages, waive)
                if isinstance(matched, Issue):
                    issues.append(matched)
                else:
                    cycle, request = matched
                    context = form_context(session, settings, cycle)
                    validation = validate(extraction, context, messages)
                    issues.extend(validation.issues)

    if waive:
        issues = [
            replace(i, severity="warning") if i.severity == "error" and i.code in waive else i
            for i in issues
        ]
    accepted = cycle is not None and not any(i.severity == "error" for i in issues)
    return _decide(
        session,
        settings,
        submission,
        issues,
        validation,
        (cycle, request, identity),
        language,
        accepted,
        now,
        in_order,
    )


def _decide(
    session: Session,
    settings: Settings,
    submission: m.Submission,
    issues: list[Issue],
    validation: Validation,
    matched: tuple[m.ReportingCycle | None, m.ReportRequest | None, TemplateIdentity | None],
    language: str,
    accepted: bool,
    now: dt.datetime | None,
    in_order: bool = False,
) -> IngestOutcome:
    cycle, request, identity = matched
    now = now or m.utcnow()
    status = "accepted" if accepted else "rejected"
    superseded_id = None
    version = None
    if accepted and cycle is not None and request is not None:
        if in_order:
            _wait_for_older_decisions(session, submission, request.state_id)
        # Only an accepted return takes a version (a refused one keeps its receipt number, the
        # submission id). Deciders of the same state's returns queue here, so each numbers
        # against the others' committed decisions: a row lock on PostgreSQL (READ COMMITTED:
        # the query after it sees what the lock's last holder committed), the write lock on
        # SQLite (taken now, not at the first write, or the query could read a number another
        # process is about to commit). After the parse, so no lock is held through it.
        begin_sqlite_transaction(session, immediate=True)
        session.execute(
            select(m.ReportRequest.id).where(m.ReportRequest.id == request.id).with_for_update()
        )
        version = version_for(
            submission.id,
            session.execute(
                select(m.Submission.id, m.Submission.version).where(
                    m.Submission.cycle_id == cycle.id,
                    m.Submission.state_id == request.state_id,
                    m.Submission.status == "accepted",
                )
            ),
        )
    # Decide only if nobody else did meanwhile: the conditional update is the lock. It is the
    # transaction's first write, after the parse, so SQLite's single write lock is not held
    # through the parse (which would serialise every worker).
    won = session.execute(
        update(m.Submission)
        .where(m.Submission.id == submission.id, m.Submission.status == "received")
        .values(
            ingest_attempts=m.Submission.ingest_attempts + 1,
            status=status,
            decided_at=now,
            language=language,
            cycle_id=cycle.id if cycle else None,
            state_id=request.state_id if request else None,
            request_id=request.id if request else None,
            form_version=identity.form_version if identity else None,
            version=version,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        session.rollback()
        session.refresh(submission)
        return _outcome(session, submission, already_decided=True)
    # Core inserts in one batch each: per-object ORM bookkeeping was most of the decision's
    # cost (see benchmarks/RESULTS-intake.md).
    if issues:
        session.execute(
            insert(m.ValidationIssue),
            [
                {
                    "submission_id": submission.id,
                    "severity": issue.severity,
                    "code": issue.code,
                    "field_key": issue.field_key,
                    "sheet": fit(m.ValidationIssue, "sheet", issue.sheet),
                    "cell": fit(m.ValidationIssue, "cell", issue.cell),
                    "message": issue.message,
                }
                for issue in issues
            ],
        )
    if accepted and cycle is not None and request is not None:
        superseded_id = _store_answers(session, settings, submission.id, cycle, request, validation)
        answer_corrections(session, submission.id, cycle.id, request.state_id, now)
    submission_id = submission.id
    session.expire(submission)  # the update above went around the ORM
    return IngestOutcome(
        submission_id=submission_id,
        status=status,
        language=language,
        issues=list(issues),
        state=identity.state if request and identity else None,
        cycle_id=cycle.id if cycle else None,
        version=version,
        superseded_id=superseded_id,
    )


def _wait_for_older_decisions(session: Session, submission: m.Submission, state_id: int) -> None:
    """Let deciders of older returns of the state commit first, so versions follow the order
    received.

    Several deciders parse at once; the one of a later return of a state could otherwise take
    its number before the earlier one, which then takes none (rules.version_for). An older
    return's state is known only once it is read, so every older return another decider is
    reading (a claim in hand, taken less than ``HELD_FOR_A_DECISION`` ago) that may be the
    state's is waited for: one that arrived through another state's link or contact would be
    refused as of the wrong state. Parses still overlap; numbering goes in order. The wait
    ends after ``ORDER_WAIT_SECONDS``, or sooner if this return's own claim would run out.

    Each look is a statement of its own on the caller's session: PostgreSQL (READ COMMITTED)
    and SQLite (no transaction is open before the first write) both see what the older
    deciders have committed.
    """
    deadline = monotonic() + ORDER_WAIT_SECONDS
    own_claim = submission.decision_claimed_at
    pause = 0.002
    while monotonic() < deadline:
        now = m.utcnow()
        if own_claim is not None and now - own_claim > CLAIM_LEASE - HELD_FOR_A_DECISION:
            return
        held = session.scalar(
            select(
                exists().where(
                    m.Submission.id < submission.id,
                    m.Submission.status == "received",
                    m.Submission.decision_claimed_by.is_not(None),
                    m.Submission.decision_claimed_at >= now - HELD_FOR_A_DECISION,
                    or_(
                        m.Submission.expected_state_id.is_(None),
                        m.Submission.expected_state_id == state_id,
                    ),
                )
            )
        )
        if not held:
            return
        sleep(pause)  # a name of this module's: the tests see each pause
        pause = min(pause * 2, 0.01)  # an older decider commits any moment: look often


def _store_answers(
    session: Session,
    settings: Settings,
    submission_id: int,
    cycle: m.ReportingCycle,
    request: m.ReportRequest,
    validation: Validation,
) -> int | None:
    """Store an accepted return's values and supersede the state's older return, if any."""
    carry = {
        f.key
        for f in load_form(settings.forms_dir, cycle.instrument.code).fields
        if f.carry_forward
    }
    earlier: dict[tuple[str, str, str], object] = {}
    if carry:
        previous = latest_accepted(session, cycle.instrument_id, request.state_id, before=cycle)
        if previous is not None:
            earlier = {
                (a.field_key, a.row_key, a.column_key): a.value
                for a in session.execute(
                    select(
                        m.Answer.field_key, m.Answer.row_key, m.Answer.column_key, m.Answer.value
                    ).where(m.Answer.submission_id == previous.id)
                )
            }
    rows = []
    for answer in validation.answers:
        key = (answer.field_key, answer.row_key, answer.column_key)
        rows.append(
            {
                "submission_id": submission_id,
                "field_key": answer.field_key,
                "row_key": answer.row_key,
                "column_key": answer.column_key,
                "value": answer.value,
                "carried_forward": answer.field_key in carry
                and key in earlier
                and earlier[key] == answer.value,
            }
        )
    if rows:
        # Straight to the connection: the ORM's bulk layer cost more than the insert itself.
        # (No autoflush there: every write of the decision above is a Core statement too.)
        session.connection().execute(insert(m.Answer.__table__), rows)
    current = session.scalars(
        select(m.Submission.id).where(
            m.Submission.cycle_id == cycle.id,
            m.Submission.state_id == request.state_id,
            m.Submission.status == "accepted",
            m.Submission.superseded_by_id.is_(None),
            m.Submission.id != submission_id,
        )
    ).all()
    change = supersession(submission_id, current)
    if change.superseded_by is not None:
        session.execute(
            update(m.Submission)
            .where(m.Submission.id == submission_id)
            .values(superseded_by_id=change.superseded_by)
            .execution_options(synchronize_session=False)
        )
    if change.supersedes:
        session.execute(
            update(m.Submission)
            .where(m.Submission.id.in_(change.supersedes))
            .values(superseded_by_id=change.successor)
            .execution_options(synchronize_session=False)
        )
    return max(change.supersedes, default=None)


def _outcome(
    session: Session, submission: m.Submission, already_decided: bool = False
) -> IngestOutcome:
    issues = [
        Issue(i.severity, i.code, i.message, i.field_key, i.sheet, i.cell)
        for i in session.scalars(
            select(m.ValidationIssue)
            .filter_by(submission_id=submission.id)
            .order_by(m.ValidationIssue.id)
        )
    ]
    return IngestOutcome(
        submission_id=submission.id,
        status=submission.status,
        language=submission.language or "en",
        issues=issues,
        state=submission.state.code if submission.state else None,
        cycle_id=submission.cycle_id,
        version=submission.version,
        already_decided=already_decided,
    )


# Refusals no person can overrule: the file is not a genuine template of the request.
NOT_WAIVABLE = frozenset(
    {
        "no_identity",
        "identity_tampered",
        "unknown_cycle",
        "wrong_cycle",
        "wrong_state",
        "not_requested",
        PROCESSING_FAILED,
    }
)


def reconsider(
    session: Session,
    settings: Settings,
    submission_id: int,
    waive: frozenset[str],
    now: dt.datetime | None = None,
) -> IngestOutcome:
    """Decide a refused return again, accepting it despite the ``waive``d error codes.

    In the caller's transaction: the refusal's issues are replaced by the new decision's, so
    if the return is still refused the caller rolls back and nothing changes.
    """
    reopened = session.execute(
        update(m.Submission)
        .where(m.Submission.id == submission_id, m.Submission.status == "rejected")
        .values(status="received", decided_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if reopened != 1:
        raise LookupError(f"submission {submission_id} is not a refused return")
    session.execute(
        m.ValidationIssue.__table__.delete().where(m.ValidationIssue.submission_id == submission_id)
    )
    session.expire_all()
    return ingest_submission(session, settings, submission_id, now=now, waive=waive, in_order=False)
