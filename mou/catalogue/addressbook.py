"""Who receives what: the ministries of a state for an instrument, from the catalogue."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
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
    """The state's ministry of foreign affairs and focal ministries for this instrument."""
    authorities = session.scalars(
        select(m.Authority).where(m.Authority.state_id == state_id).order_by(m.Authority.id)
    ).all()
    relevant = [a for a in authorities if a.instruments is None or instrument_code in a.instruments]
    return Ministries(
        foreign_affairs=[a for a in relevant if a.kind == "foreign_affairs"],
        focal=[a for a in relevant if a.kind == "focal_ministry"],
    )
