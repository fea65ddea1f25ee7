"""Changing the address book: set, add, disable, enable one contact; seed from the catalogue.

``db/catalogue/authorities.yaml`` only seeds the address book (``seed_contacts``, run by
``mou db upgrade``):

- a key the database does not have yet is inserted;
- a row that exists is never changed by the file, edited or not: from the first seed on,
  contacts are edited with ``mou contacts`` (or the dashboard), never in the file;
- a catalogue contact whose key has left the file is disabled (not deleted: requests and the
  history refer to it), unless the Secretariat has edited it (then it is theirs); back in the
  file, and still untouched by the Secretariat, it is enabled again.

Each action takes an ``Actor`` and checks it may edit contacts. Every change writes one
``ContactChange`` row per field changed (who, when, old, new, why) and one entry in the audit
log, in the caller's transaction. Setting a field to the value it has changes and writes
nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.accounts.audit import record
from mou.accounts.roles import Actor
from mou.addresses import mailbox_address
from mou.catalogue.contacts import (
    Change,
    authority_of,
    check_instrument,
    check_kind,
    check_species,
    state_of,
)
from mou.clock import utcnow
from mou.errors import Refused
from mou.i18n.languages import LANGUAGES
from mou.store import models as m
from mou.store.database import fit

if TYPE_CHECKING:
    from mou.catalogue.reference import AuthorityEntry

# Who seeds and disables contacts from the catalogue file (in the history and the audit log).
CATALOGUE_ACTOR: Final = "catalogue"
CATALOGUE_FILE: Final = "db/catalogue/authorities.yaml"

_KEY = re.compile(r"[a-z0-9][a-z0-9-]{1,59}")
_NAME_MAX = 300
_EMAIL_MAX = 254
_ADDRESS_MAX = 500


class _Keep:
    """A field not given: left as it is (``None`` means "clear it" where a field may be empty)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


@dataclass(frozen=True)
class Edit:
    """What one action did to one contact: no changes when everything was as asked."""

    key: str
    changes: tuple[Change, ...]

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def fields(self) -> list[str]:
        return [c.field for c in self.changes]


@dataclass
class SeedReport:
    """What ``seed_contacts`` did: keys inserted, disabled (left the file), enabled again."""

    added: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)


def _email(text: str) -> str:
    try:
        address = mailbox_address(text)
        if len(address) > _EMAIL_MAX:  # RFC 5321; the column holds no more
            raise ValueError(address)
        return address
    except ValueError:
        shown = text if len(text) <= 80 else text[:79] + "…"
        raise Refused(
            f"{shown!r} is not an email address: give one address such as registry@mfa.example.org"
        ) from None


def _language(language: str) -> str:
    if language not in LANGUAGES:
        raise Refused(
            f"unknown language {language!r}: the language of correspondence is one of "
            f"{', '.join(LANGUAGES)}"
        )
    return language


def _line(what: str, text: str, limit: int) -> str | None:
    """A one-line text, trimmed; None when empty."""
    value = " ".join(text.split())
    if text.strip() and ("\n" in text.strip() or "\r" in text.strip()):
        raise Refused(f"{what} must be one line")
    if len(value) > limit:
        raise Refused(f"{what} is longer than {limit} characters")
    return value or None


def _address(text: str) -> str | None:
    value = "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())
    if len(value) > _ADDRESS_MAX:
        raise Refused(f"the postal address is longer than {_ADDRESS_MAX} characters")
    return value or None


def _instruments(session: Session, codes: Sequence[str] | None) -> list[str] | None:
    if codes is None:
        return None
    cleaned = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
    if not cleaned:
        raise Refused("give at least one instrument, or none for every instrument")
    return [check_instrument(session, c) for c in cleaned]


def _reason(reason: str | None) -> str | None:
    return reason.strip() if reason and reason.strip() else None


# ------------------------------------------------------------------------------- changing --


@dataclass
class _Pending:
    """Field changes of one contact, written together (history, audit, updated_*)."""

    authority: m.Authority
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)

    def compare(self, name: str, old: Any, new: Any) -> bool:
        if old == new:
            return False
        self.changes.append((name, old, new))
        return True


def _write(
    session: Session,
    actor_name: str,
    action: str,
    pending: _Pending,
    reason: str | None,
    now: dt.datetime | None,
    *,
    by_secretariat: bool = True,
) -> Edit:
    authority = pending.authority
    if not pending.changes:
        return Edit(authority.key, ())
    at = now or utcnow()
    who = fit(m.ContactChange, "actor", actor_name) or ""
    reason = _reason(reason)
    if by_secretariat:
        authority.updated_at = at
        authority.updated_by = fit(m.Authority, "updated_by", actor_name)
    session.flush()  # a new contact needs its id
    written = []
    for name, old, new in pending.changes:
        session.add(
            m.ContactChange(
                authority_id=authority.id,
                at=at,
                actor=who,
                field=name,
                old=old,
                new=new,
                reason=reason,
            )
        )
        written.append(Change(authority.key, at, who, name, old, new, reason))
    record(
        session,
        actor_name,
        action,
        state_id=authority.state_id,
        reason=reason,
        details={
            "key": authority.key,
            "changes": {name: {"old": old, "new": new} for name, old, new in pending.changes},
        },
        at=at,
    )
    session.flush()
    return Edit(authority.key, tuple(written))


def _check_names(names: Mapping[str, str | None]) -> None:
    for language, text in names.items():
        _language(language)
        if _line(f"the {language} name", text or "", _NAME_MAX) is None and language == "en":
            raise Refused("the English name cannot be removed: every contact has one")


def _set_name(pending: _Pending, names: Mapping[str, str | None]) -> None:
    _check_names(names)
    authority = pending.authority
    current = dict(authority.name or {})
    updated = dict(current)
    for language, text in names.items():
        _language(language)
        value = _line(f"the {language} name", text or "", _NAME_MAX)
        if value is None:
            if language == "en":
                raise Refused("the English name cannot be removed: every contact has one")
            updated.pop(language, None)
        else:
            updated[language] = value
        pending.compare(f"name.{language}", current.get(language), updated.get(language))
    if updated != current:
        authority.name = updated  # a new dict: JSON columns see assignments, not mutations


def _set_person(pending: _Pending, name: str | _Keep | None, title: str | _Keep | None) -> None:
    authority = pending.authority
    current = dict(authority.person or {})
    updated = dict(current)
    for part, text in (("name", name), ("title", title)):
        if isinstance(text, _Keep):
            continue
        value = _line(f"the person's {part}", text or "", _NAME_MAX)
        if value is None:
            updated.pop(part, None)
        else:
            updated[part] = value
        pending.compare(f"person.{part}", current.get(part), updated.get(part))
    if updated != current:
        authority.person = updated or None


def set_contact(
    session: Session,
    actor: Actor,
    key: str,
    *,
    email: str | _Keep = KEEP,
    names: Mapping[str, str | None] | None = None,
    language: str | _Keep = KEEP,
    address: str | _Keep | None = KEEP,
    addresses: Mapping[str, str | None] | None = None,
    person_name: str | _Keep | None = KEEP,
    person_title: str | _Keep | None = KEEP,
    instruments: Sequence[str] | _Keep | None = KEEP,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Edit:
    """Change the fields given of the contact ``key``; the others stay.

    ``addresses``: language -> the postal address as a letter in that language writes it
    (None or "" removes it).

    ``names``: language -> name (None or "" removes a translation; English stays);
    ``address``, ``person_name``, ``person_title``: None or "" clears them; ``instruments``:
    None for every instrument the state takes part in. Values equal to the current ones change
    nothing and write nothing. Raises ``Refused`` for an unknown key or a bad value, and
    ``NotAllowed`` when the actor may not edit contacts.
    """
    actor.require("edit_contacts")
    authority = authority_of(session, key)
    pending = _Pending(authority)
    # Check every value before changing any, so a refusal leaves the contact as it was.
    new_email = _email(email) if not isinstance(email, _Keep) else None
    new_language = _language(language) if not isinstance(language, _Keep) else None
    new_address = _address(address or "") if not isinstance(address, _Keep) else None
    new_instruments = (
        _instruments(session, instruments) if not isinstance(instruments, _Keep) else None
    )
    _check_names(names or {})
    for part, text in (("name", person_name), ("title", person_title)):
        if not isinstance(text, _Keep):
            _line(f"the person's {part}", text or "", _NAME_MAX)
    if new_email is not None and pending.compare("email", authority.email, new_email):
        authority.email = fit(m.Authority, "email", new_email) or new_email
    if names:
        _set_name(pending, names)
    if new_language is not None and pending.compare("language", authority.language, new_language):
        authority.language = new_language
    if not isinstance(address, _Keep) and pending.compare(
        "address", authority.address, new_address
    ):
        authority.address = new_address
    if addresses:
        current = dict(authority.addresses or {})
        for lang, text in sorted(addresses.items()):
            new = _address(text or "")
            if pending.compare(f"address_{lang}", current.get(lang), new):
                if new is None:
                    current.pop(lang, None)
                else:
                    current[lang] = new
        authority.addresses = current or None
    _set_person(pending, person_name, person_title)
    if not isinstance(instruments, _Keep) and pending.compare(
        "instruments", authority.instruments, new_instruments
    ):
        authority.instruments = new_instruments
    return _write(session, actor.name, "contact.set", pending, reason, now)


def add_contact(
    session: Session,
    actor: Actor,
    key: str,
    *,
    state: str,
    kind: str,
    email: str,
    name: Mapping[str, str],
    language: str | None = None,
    species: str | None = None,
    address: str | None = None,
    person_name: str | None = None,
    person_title: str | None = None,
    instruments: Sequence[str] | None = None,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Edit:
    """A new contact: ``name`` needs English; ``language`` defaults to the state's; a
    ``species`` makes a focal point for that species (kind focal_point only). Adding a key
    that exists is refused, whatever its values (use ``set_contact``)."""
    actor.require("edit_contacts")
    key = key.strip()
    if not _KEY.fullmatch(key):
        raise Refused(
            f"contact key {key!r}: 2-60 lower-case letters, digits and hyphens, e.g. kz-saiga-fp"
        )
    if session.scalars(select(m.Authority.id).where(m.Authority.key == key)).first():
        raise Refused(f"a contact with key {key!r} exists: change it with `mou contacts set`")
    range_state = state_of(session, state)
    check_kind(kind)
    if species is not None:
        if kind != "focal_point":
            raise Refused("only a focal point (kind focal_point) is for a species")
        check_species(session, species)
    if not (name.get("en") or "").strip():
        raise Refused("a new contact needs its name in English (--name)")
    checked_email = _email(email)
    checked_language = _language(language) if language else range_state.language
    checked_instruments = _instruments(session, instruments)
    authority = m.Authority(
        key=key,
        state_id=range_state.id,
        kind=kind,
        species_code=species,
        name={},
        email=checked_email,
        language=checked_language,
        address=None,
        person=None,
        instruments=checked_instruments,
    )
    authority.state = range_state
    session.add(authority)
    pending = _Pending(authority)
    pending.compare("state", None, range_state.code)
    pending.compare("kind", None, kind)
    pending.compare("species", None, species)
    pending.compare("email", None, checked_email)
    _set_name(pending, name)
    pending.compare("language", None, checked_language)
    authority.address = _address(address or "")
    pending.compare("address", None, authority.address)
    _set_person(pending, person_name, person_title)
    pending.compare("instruments", None, checked_instruments)
    return _write(session, actor.name, "contact.add", pending, reason, now)


def _enable(
    session: Session,
    actor_name: str,
    authority: m.Authority,
    enabled: bool,
    reason: str | None,
    now: dt.datetime | None,
    *,
    by_secretariat: bool = True,
) -> Edit:
    pending = _Pending(authority)
    if pending.compare("enabled", authority.disabled_at is None, enabled):
        authority.disabled_at = None if enabled else (now or utcnow())
    action = "contact.enable" if enabled else "contact.disable"
    return _write(session, actor_name, action, pending, reason, now, by_secretariat=by_secretariat)


def disable_contact(
    session: Session,
    actor: Actor,
    key: str,
    *,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Edit:
    """Stop sending to the contact ``key`` (kept, with its history); already disabled: no-op."""
    actor.require("edit_contacts")
    return _enable(session, actor.name, authority_of(session, key), False, reason, now)


def enable_contact(
    session: Session,
    actor: Actor,
    key: str,
    *,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Edit:
    """Send to the contact ``key`` again; already enabled: no-op."""
    actor.require("edit_contacts")
    return _enable(session, actor.name, authority_of(session, key), True, reason, now)


# ------------------------------------------------------------------------------- seeding --


def seed_contacts(
    session: Session, entries: Sequence[AuthorityEntry], now: dt.datetime | None = None
) -> SeedReport:
    """Seed the address book from the catalogue file (the rules are in the module's text).

    Running it twice changes nothing. Disabling and enabling again are in the history and the
    audit log, by ``catalogue``.
    """
    report = SeedReport()
    existing = {a.key: a for a in session.scalars(select(m.Authority))}
    states = {s.code: s for s in session.scalars(select(m.RangeState))}
    listed = set()
    for entry in entries:
        listed.add(entry.key)
        authority = existing.get(entry.key)
        if authority is None:
            session.add(
                m.Authority(
                    key=entry.key,
                    state_id=states[entry.state].id,
                    kind=entry.kind,
                    species_code=entry.species,
                    name=entry.name.as_dict(),
                    email=entry.email,
                    language=entry.language,
                    address=entry.address,
                    addresses=entry.addresses,
                    person=entry.person,
                    instruments=entry.instruments,
                )
            )
            report.added.append(entry.key)
        elif authority.disabled_at is not None and authority.updated_at is None:
            # Untouched by the Secretariat, so disabled by an earlier seed: back in the file.
            _enable(
                session,
                CATALOGUE_ACTOR,
                authority,
                True,
                f"listed again in {CATALOGUE_FILE}",
                now,
                by_secretariat=False,
            )
            report.enabled.append(entry.key)
        if (
            authority is not None
            and authority.updated_at is None
            and authority.addresses is None
            and entry.addresses
        ):
            # A column a newer catalogue brings (the addresses per language), filled in on a
            # contact nobody has edited; nothing the Secretariat set is ever changed.
            authority.addresses = dict(entry.addresses)
    for key, authority in sorted(existing.items()):
        if key in listed or authority.disabled_at is not None or authority.updated_at is not None:
            continue
        _enable(
            session,
            CATALOGUE_ACTOR,
            authority,
            False,
            f"no longer in {CATALOGUE_FILE}",
            now,
            by_secretariat=False,
        )
        report.disabled.append(key)
    session.flush()
    return report
