"""A state's next accepted return answers the Secretariat's request for correction."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.clock import utcnow
from mou.store import models as m


def _values(session: Session, submission_id: int) -> dict[str, set[tuple[str, str, str]]]:
    values: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for field_key, row_key, column_key, value in session.execute(
        select(m.Answer.field_key, m.Answer.row_key, m.Answer.column_key, m.Answer.value).where(
            m.Answer.submission_id == submission_id
        )
    ):
        values[field_key].add((row_key, column_key, repr(value)))
    return values


def answer_corrections(
    session: Session,
    submission_id: int,
    cycle_id: int,
    state_id: int,
    now: dt.datetime | None = None,
) -> list[int]:
    """Mark the state's open correction requests of the cycle answered by this return, and
    note for each commented field whether the return changed it. Returns their ids."""
    open_requests = session.scalars(
        select(m.CorrectionRequest).where(
            m.CorrectionRequest.cycle_id == cycle_id,
            m.CorrectionRequest.state_id == state_id,
            m.CorrectionRequest.answered_by_id.is_(None),
            m.CorrectionRequest.submission_id != submission_id,
        )
    ).all()
    if not open_requests:
        return []
    new = _values(session, submission_id)
    answered = []
    for correction in open_requests:
        old: dict[str, Any] = _values(session, correction.submission_id)
        for comment in correction.comments:
            if comment.field_key:
                comment.changed = old.get(comment.field_key, set()) != new.get(
                    comment.field_key, set()
                )
        correction.answered_by_id = submission_id
        correction.answered_at = now or utcnow()
        answered.append(correction.id)
    session.flush()
    return answered
