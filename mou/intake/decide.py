"""Intake of returned workbooks: record the raw file first, then read, check and decide.

``record_submission`` keeps the bytes and a row before anything else happens (the system of
record); ``ingest_submission`` may run many times (retries, the sweep, two workers) and
decides once: its writes land only if the submission is still undecided at commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import PurePath

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, joinedload

from mou.cycle.context import form_context, latest_accepted
from mou.forms import load_form
from mou.i18n.languages import pick
from mou.i18n.texts import Messages
from mou.settings import Settings
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import insert_unless_present
from mou.workbook.extract import Extraction, Limits, Problem
from mou.workbook.identity import IdentityError, TemplateIdentity, verify_identity
from mou.workbook.sandbox import SandboxLimits, default_sandbox
from mou.workbook.validate import Issue, Validation, validate

log = logging.getLogger(__name__)


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


def safe_filename(name: str | None) -> str:
    """A display name only: never used as a path."""
    base = PurePath((name or "return.xlsx").replace("\\", "/")).name
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '/\\:*?"<>|')
    return cleaned[:200] or "return.xlsx"


def state_of_sender(session: Session, sender: str | None) -> m.RangeState | None:
    """The state whose authority writes from this address, if the address is known."""
    if not sender:
        return None
    address = sender.strip().lower()
    authority = session.scalars(
        select(m.Authority).where(func.lower(m.Authority.email) == address)
    ).first()
    return authority.state if authority else None


@dataclass(frozen=True)
class Recorded:
    submission_id: int
    sha256: str
    created: bool  # False: the same bytes were recorded before (or at the same moment)


def record_submission(
    session: Session,
    settings: Settings,
    data: bytes,
    *,
    filename: str | None,
    sender: str | None = None,
    channel: str = "cli",
    expected_state: str | None = None,
    expected_cycle_id: int | None = None,
) -> Recorded:
    """Keep the bytes and record a submission; the same bytes again give the first row."""
    sha256 = filestore.store(session, settings.files_dir, data)
    expected = None
    if expected_state:
        expected = session.scalars(
            select(m.RangeState).filter_by(code=expected_state.upper())
        ).one_or_none()
    expected = expected or state_of_sender(session, sender)
    # One statement whether or not the bytes are new: a row with the same file (committed, or
    # being written by another channel at this moment, which PostgreSQL waits for) stays.
    submission_id = session.execute(
        insert_unless_present(session, m.Submission, "file_sha256")
        .values(
            file_sha256=sha256,
            filename=safe_filename(filename),
            sender=sender,
            channel=channel,
            status="received",
            expected_state_id=expected.id if expected else None,
            expected_cycle_id=expected_cycle_id,
        )
        .returning(m.Submission.id)
    ).scalar_one_or_none()
    if submission_id is not None:
        return Recorded(submission_id, sha256, True)
    # The conflict was on this very row. (On PostgreSQL the attempt used up a sequence value:
    # ids have gaps, which no user sees.)
    first = session.scalars(select(m.Submission.id).filter_by(file_sha256=sha256)).one()
    return Recorded(first, sha256, False)


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        extract=Limits(settings.max_inflated_bytes, settings.max_sheet_cells),
        memory_bytes=settings.parse_memory_bytes,
        timeout_seconds=settings.parse_timeout_seconds,
    )


def _claimed_language(tokens: dict[str, str | None]) -> str | None:
    """The language a token claims, read without trusting it (only to choose words)."""
    import base64
    import json

    for token in tokens.values():
        try:
            payload = str(token).split(".")[1]
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            if data.get("language") in ("en", "ru", "fr"):
                return data["language"]
        except (IndexError, ValueError, AttributeError, TypeError):
            continue
    return None


def identify(extraction: Extraction, secret: str) -> TemplateIdentity | str:
    """The template's verified identity, or the code of the problem with it."""
    tokens = [t for t in extraction.tokens.values() if t]
    if not tokens:
        return "no_identity"
    identities = set()
    for token in tokens:
        try:
            identities.add(verify_identity(token, secret))
        except IdentityError:
            return "identity_tampered"
    if len(identities) != 1:
        return "identity_tampered"
    identity = identities.pop()
    meta = extraction.meta
    visible = {
        "instrument": identity.instrument,
        "form_version": identity.form_version,
        "cycle_id": identity.cycle_id,
        "state": identity.state,
        "language": identity.language,
    }
    for key, value in visible.items():
        if key in meta and str(meta[key]).strip() != str(value):
            return "identity_tampered"
    return identity


def _match_request(
    session: Session, submission: m.Submission, identity: TemplateIdentity, messages: Messages
) -> tuple[m.ReportingCycle, m.ReportRequest] | Issue:
    """The cycle and request the identity points to, or the reason it cannot be accepted."""

    def refuse(code: str, **params: object) -> Issue:
        return Issue("error", code, messages.issue(code, **params))

    cycle = session.get(
        m.ReportingCycle, identity.cycle_id, options=[joinedload(m.ReportingCycle.instrument)]
    )
    if cycle is None or cycle.instrument.code != identity.instrument:
        return refuse("unknown_cycle")
    language = messages.language
    # The state and its request for this cycle (if any) in one query.
    found = session.execute(
        select(m.RangeState, m.ReportRequest)
        .outerjoin(
            m.ReportRequest,
            (m.ReportRequest.state_id == m.RangeState.id) & (m.ReportRequest.cycle_id == cycle.id),
        )
        .where(m.RangeState.code == identity.state)
    ).one_or_none()
    state, request = found if found is not None else (None, None)
    state_name = pick(state.name, language) if state else identity.state
    if submission.expected_cycle_id and submission.expected_cycle_id != cycle.id:
        expected_cycle = session.get(m.ReportingCycle, submission.expected_cycle_id)
        return refuse(
            "wrong_cycle",
            found=cycle.period,
            expected=expected_cycle.period if expected_cycle else "?",
        )
    if submission.expected_state_id and state and submission.expected_state_id != state.id:
        expected = session.get(m.RangeState, submission.expected_state_id)
        assert expected is not None
        return refuse(
            "wrong_state",
            found=state_name,
            expected=pick(expected.name, language),
        )
    if cycle.status != "open":
        return refuse("cycle_closed", period=cycle.period)
    if identity.form_version != cycle.form_version:
        return refuse(
            "outdated_form",
            found=identity.form_version,
            expected=cycle.form_version,
            period=cycle.period,
        )
    if request is None:
        return refuse("not_requested", state=state_name, period=cycle.period)
    return cycle, request


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
    session: Session, settings: Settings, submission_id: int, now: dt.datetime | None = None
) -> IngestOutcome:
    """Read, check and decide one submission. Safe to repeat: a decided one is reported as is."""
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
            found = identify(extraction, settings.secret)
            claimed = found.language if isinstance(found, TemplateIdentity) else None
            language = _message_language(
                session, submission, claimed or _claimed_language(extraction.tokens)
            )
            messages = Messages(settings.forms_dir, language)
            if isinstance(found, str):
                issues.append(Issue("error", found, messages.issue(found)))
            else:
                identity = found
                matched = _match_request(session, submission, identity, messages)
                if isinstance(matched, Issue):
                    issues.append(matched)
                else:
                    cycle, request = matched
                    context = form_context(session, settings, cycle)
                    validation = validate(extraction, context, messages)
                    issues.extend(validation.issues)

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
) -> IngestOutcome:
    cycle, request, identity = matched
    now = now or m.utcnow()
    status = "accepted" if accepted else "rejected"
    superseded_id = None
    version = None
    if cycle is not None and request is not None:
        # Deciders of the same state's returns queue here (a row lock on PostgreSQL; SQLite
        # has one writer anyway) rather than collide on the version number and parse again.
        session.execute(
            select(m.ReportRequest.id).where(m.ReportRequest.id == request.id).with_for_update()
        )
        version = (
            session.scalar(
                select(func.max(m.Submission.version)).where(
                    m.Submission.cycle_id == cycle.id,
                    m.Submission.state_id == request.state_id,
                )
            )
            or 0
        ) + 1
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
                    "sheet": issue.sheet,
                    "cell": issue.cell,
                    "message": issue.message,
                }
                for issue in issues
            ],
        )
    if accepted and cycle is not None and request is not None:
        superseded_id = _store_answers(session, settings, submission.id, cycle, request, validation)
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
    # The latest *received* accepted return counts, whatever order they were decided in.
    current = (
        session.execute(
            select(m.Submission.id).where(
                m.Submission.cycle_id == cycle.id,
                m.Submission.state_id == request.state_id,
                m.Submission.status == "accepted",
                m.Submission.superseded_by_id.is_(None),
                m.Submission.id != submission_id,
            )
        )
        .scalars()
        .all()
    )
    newest = max((other for other in current if other > submission_id), default=None)
    if newest is not None:
        session.execute(
            update(m.Submission)
            .where(m.Submission.id == submission_id)
            .values(superseded_by_id=newest)
            .execution_options(synchronize_session=False)
        )
    older = [other for other in current if other < submission_id]
    if older:
        session.execute(
            update(m.Submission)
            .where(m.Submission.id.in_(older))
            .values(superseded_by_id=newest or submission_id)
            .execution_options(synchronize_session=False)
        )
    return max(older, default=None)


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
