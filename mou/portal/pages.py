"""What the portal's pages show: texts, dates in the page's language, and plain view data read
from the database. Nothing here knows about HTTP.

The texts are data in ``forms/_portal.yaml`` (en/ru/fr); the leading underscore keeps the file
out of the form specifications that ``load_forms`` reads from the same folder."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from mou.clock import as_utc
from mou.cycle.standing import cycle_status, open_corrections, state_deadline
from mou.i18n.formatting import Formatter
from mou.intake.documents import DOCUMENT_TYPES, documents_of
from mou.store import models as m


def fmt_date(day: dt.date | None, language: str) -> str:
    return Formatter(language).date(day) if day else "—"


def fmt_moment(moment: dt.datetime | None, language: str) -> str:
    return Formatter(language).moment(moment)


# --- A ministry's link ------------------------------------------------------------------


@dataclass(frozen=True)
class LinkContext:
    """Plain values about the request a link stands for (safe to use after the session)."""

    token: str
    cycle_id: int
    cycle_status: str
    period: str
    deadline: dt.date
    expires: dt.date
    state_id: int
    state: str
    state_names: dict[str, str]
    instrument: str
    instrument_short: dict[str, str]
    instrument_names: dict[str, str]
    instrument_languages: tuple[str, ...]
    request_language: str
    reference: str
    original_deadline: dt.date | None = None  # set when the state's deadline was extended
    correction: LinkCorrection | None = None  # the Secretariat's open request for correction


@dataclass(frozen=True)
class LinkComment:
    field_key: str | None
    sheet: str | None
    cell: str | None
    text: str


@dataclass(frozen=True)
class LinkCorrection:
    submission_id: int
    requested_at: dt.datetime
    comments: tuple[LinkComment, ...]


def link_context(session: Session, token: str, cycle_id: int, state: str, expires: dt.date):
    """The request behind a verified token, or None when no such request exists."""
    cycle = session.get(m.ReportingCycle, cycle_id)
    if cycle is None:
        return None
    request = session.scalars(
        select(m.ReportRequest)
        .join(m.RangeState, m.ReportRequest.state_id == m.RangeState.id)
        .where(m.ReportRequest.cycle_id == cycle.id, m.RangeState.code == state)
    ).one_or_none()
    if request is None:
        return None
    instrument = cycle.instrument
    deadline = state_deadline(cycle, request)
    first = cycle.original_deadline or cycle.deadline
    correction = open_corrections(session, cycle.id).get(request.state_id)
    return LinkContext(
        token=token,
        cycle_id=cycle.id,
        cycle_status=cycle.status,
        period=cycle.period,
        deadline=deadline,
        original_deadline=first if first != deadline else None,
        correction=LinkCorrection(
            submission_id=correction.submission_id,
            requested_at=correction.requested_at,
            comments=tuple(
                LinkComment(c.field_key, c.sheet, c.cell, c.text)
                for c in sorted(correction.comments, key=lambda c: c.id)
            ),
        )
        if correction is not None
        else None,
        expires=expires,
        state_id=request.state_id,
        state=request.state.code,
        state_names=dict(request.state.name),
        instrument=instrument.code,
        instrument_short=dict(instrument.short_name),
        instrument_names=dict(instrument.name),
        instrument_languages=tuple(instrument.languages),
        request_language=request.language,
        reference=request.reference,
    )


def visible_to_link(cycle_id: int, state_id: int) -> Any:
    """Submissions a link may see: decided for its state and cycle, or sent through a link of
    that state and cycle and not (or not yet) matched to a request."""
    return or_(
        and_(m.Submission.cycle_id == cycle_id, m.Submission.state_id == state_id),
        and_(
            m.Submission.state_id.is_(None),
            m.Submission.expected_state_id == state_id,
            m.Submission.expected_cycle_id == cycle_id,
        ),
    )


def link_submissions(session: Session, link: LinkContext) -> list[m.Submission]:
    return list(
        session.scalars(
            select(m.Submission)
            .where(visible_to_link(link.cycle_id, link.state_id))
            .order_by(m.Submission.id.desc())
        )
    )


def link_submission(session: Session, link: LinkContext, submission_id: int) -> m.Submission | None:
    return session.scalars(
        select(m.Submission).where(
            m.Submission.id == submission_id, visible_to_link(link.cycle_id, link.state_id)
        )
    ).one_or_none()


# --- Submissions as data ------------------------------------------------------------------


@dataclass
class IssueView:
    severity: str
    code: str
    message: str
    sheet: str | None
    cell: str | None
    field: str | None


@dataclass
class DocumentView:
    """A supporting document kept with a submission (served at /dashboard/documents/ID)."""

    id: int
    filename: str
    kind: str  # "PDF", "Word", ... from the sniffed type
    size: int


@dataclass
class SubmissionView:
    id: int
    status: str  # received | accepted | rejected
    kind: str  # checking | accepted | warnings | refused
    filename: str
    channel: str
    sender: str | None
    received_at: dt.datetime
    decided_at: dt.datetime | None
    version: int | None
    language: str | None
    superseded_by: int | None
    current: bool
    state: str | None
    issues: list[IssueView] = field(default_factory=list)
    documents: list[DocumentView] = field(default_factory=list)

    @property
    def errors(self) -> list[IssueView]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[IssueView]:
        return [i for i in self.issues if i.severity != "error"]

    @property
    def decided(self) -> bool:
        return self.status in ("accepted", "rejected")


def submission_view(submission: m.Submission) -> SubmissionView:
    issues = [
        IssueView(i.severity, i.code, i.message, i.sheet, i.cell, i.field_key)
        for i in submission.issues
    ]
    errors = any(i.severity == "error" for i in issues)
    if submission.status == "accepted":
        kind = "warnings" if issues else "accepted"
    elif submission.status == "rejected" or errors:
        kind = "refused"
    else:
        kind = "checking"
    return SubmissionView(
        id=submission.id,
        status=submission.status,
        kind=kind,
        filename=submission.filename,
        channel=submission.channel,
        sender=submission.sender,
        received_at=as_utc(submission.received_at) or m.utcnow(),
        decided_at=as_utc(submission.decided_at),
        version=submission.version,
        language=submission.language,
        superseded_by=submission.superseded_by_id,
        current=submission.status == "accepted" and submission.superseded_by_id is None,
        state=submission.state.code if submission.state else None,
        issues=issues,
    )


# --- The secretariat's view ---------------------------------------------------------------


def cycles_overview(session: Session) -> list[dict[str, Any]]:
    cycles = session.scalars(
        select(m.ReportingCycle).order_by(m.ReportingCycle.opened_at.desc(), m.ReportingCycle.id)
    ).all()
    rows = []
    for cycle in cycles:
        status = cycle_status(session, cycle.id)
        rows.append(
            {
                "id": cycle.id,
                "instrument": cycle.instrument.code,
                "instrument_names": dict(cycle.instrument.short_name),
                "period": cycle.period,
                "deadline": cycle.deadline,
                "original_deadline": cycle.original_deadline,
                "status": cycle.status,
                "states": len(status["states"]),
                "summary": status["summary"],
            }
        )
    return rows


def set_aside_submissions(session: Session) -> list[dict[str, Any]]:
    """Returns the service could not decide (a fault of ours): the Secretariat follows them up
    with the sender; their state and cycle were never read, so no cycle page lists them."""
    from mou.intake.decide import PROCESSING_FAILED

    rows = session.execute(
        select(m.Submission)
        .join(m.ValidationIssue, m.ValidationIssue.submission_id == m.Submission.id)
        .where(m.ValidationIssue.code == PROCESSING_FAILED)
        .order_by(m.Submission.received_at.desc(), m.Submission.id)
    ).scalars()
    return [
        {
            "id": submission.id,
            "filename": submission.filename,
            "sender": submission.sender,
            "channel": submission.channel,
            "received_at": submission.received_at,
        }
        for submission in rows
    ]


def cycle_submissions(session: Session, cycle_id: int) -> dict[int, list[SubmissionView]]:
    """Every submission of the cycle by state id (matched, or expected through a link)."""
    rows = session.scalars(
        select(m.Submission)
        .where(
            or_(
                m.Submission.cycle_id == cycle_id,
                and_(m.Submission.cycle_id.is_(None), m.Submission.expected_cycle_id == cycle_id),
            )
        )
        .order_by(m.Submission.id.desc())
    ).all()
    documents = documents_of(session, [row.id for row in rows])
    by_state: dict[int, list[SubmissionView]] = {}
    for row in rows:
        state_id = row.state_id or row.expected_state_id
        if state_id is not None:
            view = submission_view(row)
            view.documents = [
                DocumentView(d.id, d.filename, DOCUMENT_TYPES[d.content_type][0], d.size)
                for d in documents[row.id]
                if d.content_type in DOCUMENT_TYPES
            ]
            by_state.setdefault(state_id, []).append(view)
    return by_state


def report_files(folder: Path) -> list[dict[str, Any]]:
    """The rendered PDFs of a cycle (names only; served by exact name from this list)."""
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.glob("*.pdf")):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            files.append(
                {
                    "name": path.name,
                    "size": stat.st_size,
                    "modified": dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC),
                }
            )
    return files


def detail_text(value: Any) -> str:
    """A value of an audit entry's details as one line: lists joined, a review comment as
    ``field: text``, a mapping as ``key: value`` pairs."""
    if isinstance(value, dict):
        if "text" in value:
            return f"{value.get('field') or '—'}: {value['text']}"
        return ", ".join(f"{k}: {detail_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(detail_text(v) for v in value) or "—"
    return "—" if value is None or value == "" else str(value)
