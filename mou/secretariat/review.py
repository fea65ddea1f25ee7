"""Reviewing returns: accept one despite its warnings (or, for admins, named errors), or send
it back to the state for correction with comments per field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openpyxl.utils import get_column_letter
from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.accounts.audit import record
from mou.accounts.roles import Actor
from mou.clock import utcnow
from mou.errors import Refused
from mou.forms import load_form
from mou.forms.spec import FormSpec
from mou.i18n.texts import Messages
from mou.intake.decide import NOT_WAIVABLE, reconsider, sandbox_limits
from mou.secretariat.cycles import required_reason
from mou.secretariat.notices import enqueue_correction_email
from mou.secretariat.results import ActionResult
from mou.settings import Settings
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import begin_sqlite_transaction, fit
from mou.workbook.extract import Problem
from mou.workbook.sandbox import default_sandbox


def _submission(session: Session, submission_id: int) -> m.Submission:
    """The return, its row locked until commit: two reviews of one return take turns."""
    begin_sqlite_transaction(session, immediate=True)
    session.execute(
        select(m.Submission.id).where(m.Submission.id == submission_id).with_for_update()
    )
    submission = session.get(m.Submission, submission_id)
    if submission is None:
        raise Refused(f"there is no return {submission_id} (see `mou status CYCLE`)")
    if submission.status == "received":
        raise Refused(f"return {submission_id} is still being read; try again in a minute")
    return submission


def _error_codes(submission: m.Submission) -> list[str]:
    return sorted({i.code for i in submission.issues if i.severity == "error"})


def accept_return(
    session: Session,
    settings: Settings,
    actor: Actor,
    submission_id: int,
    reason: str | None,
    waive: Sequence[str] = (),
) -> ActionResult:
    """Accept a return despite its warnings (the reason appears in the reports' data-quality
    section); an admin may also accept a refused one despite the error codes ``waive`` names."""
    actor.require("act")
    why = required_reason(reason)
    submission = _submission(session, submission_id)
    state = submission.state.code if submission.state else None
    if submission.review_reason is not None:
        return ActionResult(
            "review.accept",
            False,
            f"return {submission_id} was accepted by {submission.reviewed_by} already",
            cycle_id=submission.cycle_id,
            state=state,
            submission_id=submission_id,
        )
    waived: list[str] = []
    if submission.status == "rejected":
        errors = _error_codes(submission)
        if not waive:
            raise Refused(
                f"return {submission_id} was refused for {', '.join(errors) or 'its errors'}; "
                "an admin can accept it despite them with --waive CODE for each"
            )
        actor.require("waive_errors")
        unknown = sorted(set(waive) - set(errors))
        if unknown:
            raise Refused(f"return {submission_id} has no error {', '.join(unknown)}")
        left = sorted(set(errors) - set(waive))
        if left:
            raise Refused(f"return {submission_id} has other errors too: {', '.join(left)}")
        fixed = sorted(set(waive) & NOT_WAIVABLE)
        if fixed:
            raise Refused(
                f"{', '.join(fixed)} cannot be waived: the file is not the state's template "
                "for this request"
            )
        try:
            outcome = reconsider(session, settings, submission_id, frozenset(waive))
        except LookupError as exc:  # decided again meanwhile
            raise Refused(f"return {submission_id} changed meanwhile; look at it again") from exc
        if outcome.status != "accepted":
            still = sorted({i.code for i in outcome.issues if i.severity == "error"})
            raise Refused(f"return {submission_id} is still refused for {', '.join(still)}")
        waived = sorted(waive)
        session.refresh(submission)
        state = submission.state.code if submission.state else state
    elif waive:
        raise Refused(f"return {submission_id} was accepted: it has no error to waive")
    if submission.superseded_by_id is not None and not waived:
        raise Refused(
            f"return {submission_id} was replaced by return {submission.superseded_by_id}; "
            "review that one"
        )
    submission.review_reason = why
    submission.reviewed_by = actor.name
    submission.reviewed_at = utcnow()
    submission.waived_codes = waived or None
    record(
        session,
        actor.name,
        "review.accept",
        cycle_id=submission.cycle_id,
        state_id=submission.state_id,
        submission_id=submission_id,
        reason=why,
        details={"waived": waived} if waived else {},
    )
    return ActionResult(
        "review.accept",
        True,
        f"return {submission_id} accepted by the Secretariat"
        + (f" despite {', '.join(waived)}" if waived else "")
        + (f" as version {submission.version}" if waived else ""),
        cycle_id=submission.cycle_id,
        state=state,
        submission_id=submission_id,
        render=True,
    )


@dataclass(frozen=True)
class Comment:
    field_key: str | None  # None: a general comment
    text: str


def parse_comment(text: str | tuple[str | None, str], form: FormSpec) -> Comment:
    """``FIELD_KEY: text`` names a field of the form; anything else is a general comment.

    A pair ``(field_key or None, text)`` says which outright (the dashboard's form), so a
    general comment may begin with a word and a colon.
    """
    if isinstance(text, tuple):
        key, body = text[0] or None, text[1].strip()
        if key is not None and key not in {f.key for f in form.fields}:
            raise Refused(f"{key} is not a field of the {form.instrument} form")
        if not body:
            raise Refused("a comment has no text")
        return Comment(key, body)
    head, colon, rest = text.partition(":")
    body = rest.strip() if colon else ""
    known = {f.key for f in form.fields}
    if colon and head.strip() in known:
        if not body:
            raise Refused(f"the comment on {head.strip()} has no text")
        return Comment(head.strip(), body)
    if colon and head.strip() and " " not in head.strip() and len(head.strip()) < 60:
        # Looks like a field key but is none: say so rather than send it as general.
        raise Refused(
            f"{head.strip()} is not a field of the {form.instrument} form "
            "(see `mou form show INSTRUMENT`); write the comment without it to make it general"
        )
    if not text.strip():
        raise Refused("a comment has no text")
    return Comment(None, text.strip())


def _locations(settings: Settings, submission: m.Submission) -> dict[str, tuple[str, str]]:
    """Where each field is in the file the state sent: (sheet, cell or range)."""
    data = filestore.read_bytes(settings.files_dir, submission.file_sha256)
    extraction = default_sandbox(sandbox_limits(settings)).parse(data)
    if isinstance(extraction, Problem):
        return {}
    places = {}
    for key, named in extraction.names.items():
        first = f"{get_column_letter(named.min_col)}{named.min_row}"
        rows = len(named.rows)
        columns = max((len(r) for r in named.rows), default=1)
        if rows > 1 or columns > 1:
            last_col = get_column_letter(named.min_col + columns - 1)
            first = f"{first}:{last_col}{named.min_row + rows - 1}"
        places[key] = (named.sheet, first)
    return places


def return_for_correction(
    session: Session,
    settings: Settings,
    actor: Actor,
    submission_id: int,
    comments: Sequence[str | tuple[str | None, str]],
) -> ActionResult:
    """Send a return back to its state with the Secretariat's comments; its standing becomes
    "correction requested" until the state's next accepted return answers them."""
    actor.require("act")
    submission = _submission(session, submission_id)
    if submission.request_id is None or submission.cycle is None:
        raise Refused(
            f"return {submission_id} was not matched to a request (its sender was told why); "
            "there is nothing to send back"
        )
    cycle = submission.cycle
    state = submission.state.code if submission.state else None
    if not comments:
        raise Refused('give at least one comment (--comment "FIELD_KEY: text" or general text)')
    form = load_form(settings.forms_dir, cycle.instrument.code)
    parsed = [parse_comment(c, form) for c in comments]
    existing = session.scalars(
        select(m.CorrectionRequest).filter_by(submission_id=submission_id)
    ).one_or_none()
    if existing is not None:
        return ActionResult(
            "review.return",
            False,
            f"return {submission_id} was sent back on {existing.requested_at.date().isoformat()}",
            cycle_id=cycle.id,
            state=state,
            submission_id=submission_id,
        )
    if cycle.status != "open":
        raise Refused(f"cycle {cycle.id} is closed: a correction can no longer be sent")
    if submission.superseded_by_id is not None:
        raise Refused(
            f"return {submission_id} was replaced by return {submission.superseded_by_id}; "
            "review that one"
        )
    newer = session.scalars(
        select(m.Submission.id).where(
            m.Submission.cycle_id == cycle.id,
            m.Submission.state_id == submission.state_id,
            m.Submission.received_at > submission.received_at,
        )
    ).first()
    if newer is not None:
        raise Refused(f"{state} has sent a newer return ({newer}); review that one")
    places = _locations(settings, submission) if any(c.field_key for c in parsed) else {}
    language = submission.language or "en"
    texts = Messages(settings.forms_dir, language)
    correction = m.CorrectionRequest(
        submission_id=submission_id,
        cycle_id=cycle.id,
        state_id=submission.state_id,
        requested_by=actor.name,
    )
    session.add(correction)
    lines = []
    for comment in parsed:
        sheet, cell = places.get(comment.field_key or "", (None, None))
        session.add(
            m.ReviewComment(
                correction=correction,
                field_key=comment.field_key,
                sheet=fit(m.ReviewComment, "sheet", sheet),
                cell=fit(m.ReviewComment, "cell", cell),
                text=comment.text,
            )
        )
        if comment.field_key is None:
            lines.append(texts.email("correction_comment_general", text=comment.text))
        else:
            label = form.field(comment.field_key).label(language)
            key = "correction_comment_field" if sheet else "correction_comment_unplaced"
            lines.append(texts.email(key, field=label, cell=cell, sheet=sheet, text=comment.text))
    session.flush()
    message, _ = enqueue_correction_email(session, settings, correction, submission, lines)
    record(
        session,
        actor.name,
        "review.return",
        cycle_id=cycle.id,
        state_id=submission.state_id,
        submission_id=submission_id,
        details={"comments": [{"field": c.field_key, "text": c.text} for c in parsed]},
    )
    return ActionResult(
        "review.return",
        True,
        f"return {submission_id} sent back to {state} with {len(parsed)} comment(s)",
        cycle_id=cycle.id,
        state=state,
        submission_id=submission_id,
        emails=[message.key],
        render=True,
    )
