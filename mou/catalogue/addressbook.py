"""Who receives what: the ministries of a state for an instrument, from the address book.

Read when a message is made, so a request or reminder goes to the contacts valid then; a
message already in the outbox keeps the addressees it was made with (``mou request resend``
makes a new one). Disabled contacts receive nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mou.store import models as m


@dataclass(frozen=True)
class Ministries:
    foreign_affairs: list[m.Authority]
    focal: list[m.Authority]  # focal ministry or state committee

    @property
    def foreign_affairs_emails(self) -> list[str]:
        return [a.email for a in self.foreign_affairs]

    @property
    def focal_emails(self) -> list[str]:
        return [a.email for a in self.focal]


def ministries_of(session: Session, state_id: int, instrument_code: str) -> Ministries:
    """The state's enabled ministry of foreign affairs and focal ministries for this
    instrument, in the order they were added."""
    authorities = session.scalars(
        select(m.Authority)
        .where(m.Authority.state_id == state_id, m.Authority.disabled_at.is_(None))
        .order_by(m.Authority.id)
    ).all()
    relevant = [a for a in authorities if a.instruments is None or instrument_code in a.instruments]
    return Ministries(
        foreign_affairs=[a for a in relevant if a.kind == "foreign_affairs"],
        focal=[a for a in relevant if a.kind == "focal_ministry"],
    )


def state_of_address(session: Session, address: str) -> m.RangeState | None:
    """The state whose contact writes from ``address``: an enabled contact's first, then a
    disabled one's, then an address a contact had before it was changed (latest first).

    Disabled and former addresses still count: a ministry may answer from the address the
    request went to, and the sender's state is a cross-check against the workbook's own
    identity (a return from one state's address with another state's template is refused),
    never a reason to send anything to that address.
    """
    wanted = address.strip().lower()
    if not wanted:
        return None
    current = session.scalars(
        select(m.Authority).where(func.lower(m.Authority.email) == wanted).order_by(m.Authority.id)
    ).all()
    if current:
        return min(current, key=lambda a: a.disabled_at is not None).state
    # The history is small (a few changes per contact): compared here, whatever JSON type the
    # database gives the old value.
    former = session.scalars(
        select(m.ContactChange)
        .where(m.ContactChange.field == "email")
        .order_by(m.ContactChange.at.desc(), m.ContactChange.id.desc())
    )
    for change in former:
        if isinstance(change.old, str) and change.old.strip().lower() == wanted:
            authority = session.get(m.Authority, change.authority_id)
            if authority is not None:
                return authority.state
    return None
