"""One state's return as read: the submission's answers in form order and its warnings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from mou.cycle.standing import Standing
from mou.errors import Refused
from mou.forms.spec import FormSpec, load_form
from mou.reporting.consolidation.labels import (
    ACTIVITIES_SOURCE,
    SPECIES_SOURCE,
    Labels,
    field_label,
    field_order,
    labels_for,
    translated,
)
from mou.reporting.consolidation.model import (
    CycleInfo,
    DataWarning,
    DocumentRef,
    StateRef,
    StateReturn,
)
from mou.store import models as m
from mou.workbook.validate import AnswerValue


def default_forms_dir() -> Path:
    """The configured forms folder (when the caller does not name one)."""
    from mou.settings import get_settings

    return get_settings().forms_dir


def state_ref(state: m.RangeState, role: str) -> StateRef:
    """A state of the catalogue as plain data; ``role`` is signatory or range_state."""
    return StateRef(
        code=state.code,
        iso3=state.iso3,
        name=dict(state.name),
        language=state.language,
        role=role,
    )


def cycle_info(cycle: m.ReportingCycle, form: FormSpec, labels: Labels) -> CycleInfo:
    """The cycle, its instrument and its form as plain data."""
    instrument = cycle.instrument
    return CycleInfo(
        id=cycle.id,
        instrument_code=instrument.code,
        instrument_name=dict(instrument.name),
        instrument_short_name=dict(instrument.short_name),
        secretariat=dict(instrument.secretariat),
        instrument_languages=tuple(instrument.languages),
        period=cycle.period,
        period_start=cycle.period_start,
        period_end=cycle.period_end,
        deadline=cycle.deadline,
        form_id=form.form_id,
        form_version=cycle.form_version,
        form_title=translated(form.title),
        status=cycle.status,
        opened_at=cycle.opened_at,
        closed_at=cycle.closed_at,
        catalogue_choices={
            ACTIVITIES_SOURCE: labels.choices(ACTIVITIES_SOURCE),
            SPECIES_SOURCE: labels.choices(SPECIES_SOURCE),
        },
        meeting=dict(cycle.meeting or {}),
    )


def counted_submissions(
    session: Session, standings: Mapping[int, Standing]
) -> dict[int, m.Submission]:
    """State id -> the submission its standing counts (states without one are left out)."""
    ids = {s.counted.id: state_id for state_id, s in standings.items() if s.counted is not None}
    if not ids:
        return {}
    rows = session.scalars(select(m.Submission).where(m.Submission.id.in_(list(ids))))
    return {ids[row.id]: row for row in rows}


def answers_for(session: Session, submission_ids: Iterable[int]) -> dict[int, list[m.Answer]]:
    """Submission id -> its stored answers, in one query."""
    ids = list(submission_ids)
    by_submission: dict[int, list[m.Answer]] = defaultdict(list)
    if not ids:
        return by_submission
    for answer in session.scalars(
        select(m.Answer).where(m.Answer.submission_id.in_(ids)).order_by(m.Answer.id)
    ):
        by_submission[answer.submission_id].append(answer)
    return by_submission


def warnings_for(
    session: Session, submission_ids: Iterable[int]
) -> dict[int, list[m.ValidationIssue]]:
    """Submission id -> the warnings it was accepted with, in one query."""
    ids = list(submission_ids)
    by_submission: dict[int, list[m.ValidationIssue]] = defaultdict(list)
    if not ids:
        return by_submission
    for issue in session.scalars(
        select(m.ValidationIssue)
        .where(
            m.ValidationIssue.submission_id.in_(ids),
            m.ValidationIssue.severity == "warning",
        )
        .order_by(m.ValidationIssue.id)
    ):
        by_submission[issue.submission_id].append(issue)
    return by_submission


def _sorted_answers(
    answers: Iterable[m.Answer], form: FormSpec, labels: Labels
) -> tuple[AnswerValue, ...]:
    order = field_order(form)
    specs = {f.key: f for f in form.fields}

    def key(a: m.Answer) -> tuple[Any, ...]:
        spec = specs.get(a.field_key)
        if spec is None:
            return (len(order), a.field_key, (2, a.row_key), 0, a.column_key)
        columns = [c.key for c in spec.columns]
        column = columns.index(a.column_key) if a.column_key in columns else len(columns)
        return (order[a.field_key], "", labels.row_sort_key(spec, a.row_key), column, "")

    return tuple(
        AnswerValue(a.field_key, a.row_key, a.column_key, a.value, bool(a.carried_forward))
        for a in sorted(answers, key=key)
    )


def state_return(
    cycle: CycleInfo,
    state: StateRef,
    submission: m.Submission,
    answers: Iterable[m.Answer],
    issues: Iterable[m.ValidationIssue],
    form: FormSpec,
    labels: Labels,
) -> StateReturn:
    """What ``submission`` says: its answers in form order, and the warnings it came with."""
    return StateReturn(
        cycle=cycle,
        state=state,
        submission_id=submission.id,
        version=submission.version or 1,
        filename=submission.filename,
        language=submission.language,
        received_at=submission.received_at,
        decided_at=submission.decided_at,
        answers=_sorted_answers(answers, form, labels),
        warnings=tuple(
            DataWarning(
                state_code=state.code,
                code=issue.code,
                field_key=issue.field_key,
                field_label=field_label(form, issue.field_key),
                sheet=issue.sheet,
                cell=issue.cell,
                message=issue.message,
            )
            for issue in issues
        ),
        review_reason=submission.review_reason,
        waived_codes=tuple(submission.waived_codes or ()),
        documents=_documents(submission),
    )


# The names of the types the intake keeps (mou.intake.documents sniffs them).
DOCUMENT_KINDS = {
    "application/pdf": "PDF",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word",
    "application/vnd.oasis.opendocument.text": "OpenDocument",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel",
    "application/vnd.oasis.opendocument.spreadsheet": "OpenDocument",
}


def _documents(submission: m.Submission) -> tuple[DocumentRef, ...]:
    session = object_session(submission)
    if session is None:
        return ()
    return tuple(
        DocumentRef(
            d.filename,
            DOCUMENT_KINDS.get(d.content_type, d.content_type.rpartition("/")[2].upper()),
            d.size,
        )
        for d in session.scalars(
            select(m.SupportingDocument)
            .where(m.SupportingDocument.submission_id == submission.id)
            .order_by(m.SupportingDocument.id)
        )
    )


def read_return(
    session: Session, submission_id: int, *, forms_dir: Path | None = None
) -> StateReturn:
    """One submission's answers as read (for the receipt), whether or not it still counts."""
    submission = session.get(m.Submission, submission_id)
    if submission is None or submission.cycle is None or submission.state is None:
        raise Refused(f"submission {submission_id} does not exist or has not been read yet")
    cycle = submission.cycle
    form = load_form(forms_dir or default_forms_dir(), cycle.instrument.code)
    labels = labels_for(session, cycle.instrument, form)
    roles = {p.state_id: p.role for p in cycle.instrument.participations}
    state = state_ref(submission.state, roles.get(submission.state.id, "range_state"))
    issues = [i for i in submission.issues if i.severity == "warning"]
    return state_return(
        cycle_info(cycle, form, labels),
        state,
        submission,
        submission.answers,
        issues,
        form,
        labels,
    )
