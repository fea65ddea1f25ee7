"""The address book as data the Secretariat edits: contacts and their history, read.

The database is the address book; ``db/catalogue/authorities.yaml`` only seeds it, and the
Secretariat changes it through ``mou.catalogue.contact_edits`` (``mou contacts``, the
dashboard), every change kept in ``contact_changes``. Who receives a request is
``mou.catalogue.addressbook``: the enabled contacts, read when the message is made.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.errors import Refused
from mou.store import models as m

# foreign_affairs: the request goes To it; focal_ministry: Cc (CAMI programme of work 2.5.3);
# focal_point: national (4.1.3) or, with a species, for one species (4.1.2); receives no mail.
KINDS: Final = ("foreign_affairs", "focal_ministry", "focal_point")


@dataclass(frozen=True)
class Change:
    """One field of one contact changed: the history's line."""

    key: str
    at: dt.datetime
    actor: str
    field: str
    old: Any
    new: Any
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "at": self.at.isoformat(timespec="seconds"),
            "actor": self.actor,
            "field": self.field,
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Contact:
    """One contact as the Secretariat sees it."""

    key: str
    state: str
    kind: str
    species: str | None
    name: Mapping[str, str]
    email: str
    language: str
    address: str | None
    person: Mapping[str, Any] | None
    instruments: tuple[str, ...] | None  # None: every instrument the state takes part in
    disabled_at: dt.datetime | None
    updated_at: dt.datetime | None
    updated_by: str | None
    last_change: Change | None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "state": self.state,
            "kind": self.kind,
            "species": self.species,
            "name": dict(self.name),
            "email": self.email,
            "language": self.language,
            "address": self.address,
            "person": dict(self.person) if self.person else None,
            "instruments": list(self.instruments) if self.instruments is not None else None,
            "enabled": self.enabled,
            "disabled_at": _iso(self.disabled_at),
            "updated_at": _iso(self.updated_at),
            "updated_by": self.updated_by,
            "last_change": (
                {
                    "at": _iso(self.last_change.at),
                    "actor": self.last_change.actor,
                    "field": self.last_change.field,
                }
                if self.last_change
                else None
            ),
        }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


# ------------------------------------------------------------------------------- reading --


def authority_of(session: Session, key: str) -> m.Authority:
    authority = session.scalars(select(m.Authority).where(m.Authority.key == key)).one_or_none()
    if authority is None:
        raise Refused(f"no contact with key {key!r}: see `mou contacts list`")
    return authority


def state_of(session: Session, code: str) -> m.RangeState:
    state = session.scalars(
        select(m.RangeState).where(m.RangeState.code == code.strip().upper())
    ).one_or_none()
    if state is None:
        known = ", ".join(session.scalars(select(m.RangeState.code).order_by(m.RangeState.code)))
        raise Refused(f"unknown state {code!r}: use one of {known}")
    return state


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise Refused(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    return kind


def check_species(session: Session, code: str) -> str:
    if session.scalars(select(m.Species.id).where(m.Species.code == code)).first() is None:
        known = ", ".join(session.scalars(select(m.Species.code).order_by(m.Species.code)))
        raise Refused(f"unknown species {code!r}: use one of {known}")
    return code


def check_instrument(session: Session, code: str) -> str:
    if session.scalars(select(m.Instrument.id).where(m.Instrument.code == code)).first() is None:
        known = ", ".join(session.scalars(select(m.Instrument.code).order_by(m.Instrument.code)))
        raise Refused(f"unknown instrument {code!r}: use one of {known}")
    return code


def changes_of(session: Session, authority_ids: Iterable[int]) -> dict[int, list[m.ContactChange]]:
    ids = list(authority_ids)
    by_authority: dict[int, list[m.ContactChange]] = {}
    if not ids:
        return by_authority
    rows = session.scalars(
        select(m.ContactChange)
        .where(m.ContactChange.authority_id.in_(ids))
        .order_by(m.ContactChange.at, m.ContactChange.id)
    )
    for row in rows:
        by_authority.setdefault(row.authority_id, []).append(row)
    return by_authority


def as_change(key: str, row: m.ContactChange) -> Change:
    return Change(key, row.at, row.actor, row.field, row.old, row.new, row.reason)


def _contact(authority: m.Authority, changes: Sequence[m.ContactChange]) -> Contact:
    return Contact(
        key=authority.key,
        state=authority.state.code,
        kind=authority.kind,
        species=authority.species_code,
        name=dict(authority.name or {}),
        email=authority.email,
        language=authority.language,
        address=authority.address,
        person=dict(authority.person) if authority.person else None,
        instruments=tuple(authority.instruments) if authority.instruments is not None else None,
        disabled_at=authority.disabled_at,
        updated_at=authority.updated_at,
        updated_by=authority.updated_by,
        last_change=as_change(authority.key, changes[-1]) if changes else None,
    )


_KIND_ORDER = {kind: n for n, kind in enumerate(KINDS)}


def list_contacts(
    session: Session,
    *,
    state: str | None = None,
    kind: str | None = None,
    instrument: str | None = None,
    species: str | None = None,
    enabled: bool | None = None,
) -> list[Contact]:
    """The contacts, by state, kind and key; only those matching every filter given.

    ``instrument``: contacts for it (a contact for every instrument counts where its state
    takes part); ``species``: focal points for that species; ``enabled``: True or False.
    Unknown states, kinds, instruments or species are refused.
    """
    query = select(m.Authority).join(m.RangeState, m.Authority.state_id == m.RangeState.id)
    if state is not None:
        query = query.where(m.Authority.state_id == state_of(session, state).id)
    if kind is not None:
        query = query.where(m.Authority.kind == check_kind(kind))
    if species is not None:
        query = query.where(m.Authority.species_code == check_species(session, species))
    if enabled is True:
        query = query.where(m.Authority.disabled_at.is_(None))
    elif enabled is False:
        query = query.where(m.Authority.disabled_at.is_not(None))
    authorities = list(session.scalars(query))
    if instrument is not None:
        code = check_instrument(session, instrument)
        taking_part = set(
            session.scalars(
                select(m.Participation.state_id)
                .join(m.Instrument, m.Participation.instrument_id == m.Instrument.id)
                .where(m.Instrument.code == code)
            )
        )
        authorities = [
            a
            for a in authorities
            if (code in a.instruments if a.instruments is not None else a.state_id in taking_part)
        ]
    authorities.sort(
        key=lambda a: (a.state.code, _KIND_ORDER.get(a.kind, 9), a.species_code or "", a.key)
    )
    changes = changes_of(session, (a.id for a in authorities))
    return [_contact(a, changes.get(a.id, [])) for a in authorities]


def get_contact(session: Session, key: str) -> Contact:
    authority = authority_of(session, key)
    return _contact(authority, changes_of(session, [authority.id]).get(authority.id, []))


def contact_history(session: Session, key: str) -> list[Change]:
    """Every change of one contact, oldest first (a seeded contact starts with none)."""
    authority = authority_of(session, key)
    return [
        as_change(key, row) for row in changes_of(session, [authority.id]).get(authority.id, [])
    ]
