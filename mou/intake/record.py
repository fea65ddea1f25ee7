"""Recording a returned workbook: the raw bytes and a row, before anything else happens.

This is the system of record: whatever happens to the reading and deciding later (a crash, a
lost event, a bad file), the file and the fact that it arrived are kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import PurePath

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.addressbook import state_of_address
from mou.settings import Settings
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import insert_unless_present


def safe_filename(name: str | None) -> str:
    """A display name only: never used as a path."""
    base = PurePath((name or "return.xlsx").replace("\\", "/")).name
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '/\\:*?"<>|')
    return cleaned[:200] or "return.xlsx"


def state_of_sender(session: Session, sender: str | None) -> m.RangeState | None:
    """The state whose contact writes from this address, if the address is known (disabled
    and former addresses of a contact included: see ``addressbook.state_of_address``)."""
    if not sender:
        return None
    return state_of_address(session, sender)


SENDER_MAX = 254


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
    received_at: dt.datetime | None = None,
) -> Recorded:
    """Keep the bytes and record a submission; the same bytes again give the first row.

    ``received_at``: when it arrived (default now); the demo plays its story on its own days."""
    if sender is not None and len(sender) > SENDER_MAX:
        sender = None  # not an address (RFC 5321 caps it): nobody to answer, nothing to store
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
            received_at=received_at or m.utcnow(),
        )
        .returning(m.Submission.id)
    ).scalar_one_or_none()
    if submission_id is not None:
        return Recorded(submission_id, sha256, True)
    # The conflict was on this very row. (On PostgreSQL the attempt used up a sequence value:
    # ids have gaps, which no user sees.)
    first = session.scalars(select(m.Submission.id).filter_by(file_sha256=sha256)).one()
    return Recorded(first, sha256, False)
