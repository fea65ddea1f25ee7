"""Named Secretariat accounts: add, authenticate, disable and enable, change the password,
list. Passwords are hashed with argon2id (``argon2-cffi``, RFC 9106 parameters); only the
hash is stored. Every change is written to the audit log in the same transaction, with the
acting admin's name, and needs the ``manage_users`` permission of ``mou.accounts.roles``.

Disabling an account or changing its password revokes all of its sessions
(``mou.accounts.sessions``), so a copied cookie stops working at once.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mou.accounts import audit
from mou.accounts.roles import ROLES, Actor, Role
from mou.accounts.sessions import revoke_all
from mou.clock import utcnow
from mou.errors import Refused
from mou.store import models as m

MIN_PASSWORD_LENGTH = 12
# argon2 takes any length; a cap keeps a megabyte "password" from being hashed on request.
MAX_PASSWORD_LENGTH = 1024
# Lower-case letters, digits and . _ - ; starts with a letter or digit; 2 to 60 characters.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{1,59}")

# argon2id with the library's defaults (RFC 9106 "low memory": t=3, m=64 MiB, p=4), about
# 0.15 s per hash on one core. Tests swap in cheaper parameters (tests/conftest.py).
PRODUCTION_HASHER = PasswordHasher()
HASHER = PRODUCTION_HASHER
# A hash verified when a name is unknown, so a wrong name costs as long as a wrong password
# (made once per hasher, when first needed: not at import).
_unknown_user_hashes: dict[int, str] = {}


def _unknown_user_hash() -> str:
    key = id(HASHER)
    if key not in _unknown_user_hashes:
        _unknown_user_hashes[key] = HASHER.hash("no such user: the time of a real check")
    return _unknown_user_hashes[key]


class AccountRefused(Refused):
    """A user-management step refused; ``key`` names the reason for a translated message."""

    def __init__(self, key: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.key = key
        self.params = params


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: Role
    full_name: str | None
    email: str | None
    created_at: dt.datetime
    created_by: str | None
    password_changed_at: dt.datetime | None
    disabled_at: dt.datetime | None
    last_seen_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role)

    def as_dict(self) -> dict[str, Any]:
        def moment(value: dt.datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value else None

        return {
            "name": self.name,
            "role": self.role,
            "full_name": self.full_name,
            "email": self.email,
            "active": self.active,
            "created_at": moment(self.created_at),
            "created_by": self.created_by,
            "password_changed_at": moment(self.password_changed_at),
            "disabled_at": moment(self.disabled_at),
            "last_seen_at": moment(self.last_seen_at),
        }


def _account(user: m.User, last_seen: dt.datetime | None = None) -> Account:
    return Account(
        id=user.id,
        name=user.name,
        role=user.role,  # type: ignore[arg-type]
        full_name=user.full_name,
        email=user.email,
        created_at=user.created_at,
        created_by=user.created_by,
        password_changed_at=user.password_changed_at,
        disabled_at=user.disabled_at,
        last_seen_at=last_seen,
    )


# --- rules ----------------------------------------------------------------------------------


def normalise_name(name: str) -> str:
    """The account name as stored: trimmed and lower-case (names are case-insensitive)."""
    return name.strip().lower()


def check_name(name: str) -> str:
    """The normalised name, or refused when it is not a valid account name."""
    normalised = normalise_name(name)
    if not NAME_PATTERN.fullmatch(normalised):
        raise AccountRefused(
            "bad_name",
            f"{name!r} is not a valid account name: 2 to 60 lower-case letters, digits, dots, "
            "hyphens or underscores, starting with a letter or digit (e.g. anna.petrova)",
        )
    return normalised


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise AccountRefused(
            "bad_role", f"the role must be one of {', '.join(ROLES)}, not {role!r}"
        )
    return role  # type: ignore[return-value]


def check_password(password: str, name: str) -> None:
    """Refuse a password that is too short, too long, or the account's name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountRefused(
            "short_password",
            f"the password must be at least {MIN_PASSWORD_LENGTH} characters long",
            minimum=MIN_PASSWORD_LENGTH,
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountRefused(
            "long_password",
            f"the password must be at most {MAX_PASSWORD_LENGTH} characters long",
            maximum=MAX_PASSWORD_LENGTH,
        )
    if name and name.lower() in password.lower():
        raise AccountRefused("name_in_password", "the password must not contain the account name")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- reading ----------------------------------------------------------------------------------


def _find(session: Session, name: str) -> m.User | None:
    return session.scalar(select(m.User).where(m.User.name == normalise_name(name)))


def _get(session: Session, name: str) -> m.User:
    user = _find(session, name)
    if user is None:
        raise AccountRefused(
            "no_such_user", f"there is no account {name!r} (see `mou user list`)", name=name
        )
    return user


def get_account(session: Session, name: str) -> Account | None:
    user = _find(session, name)
    return _account(user) if user else None


def has_users(session: Session) -> bool:
    """Whether any account exists (the sign-in page explains how to create the first)."""
    return session.scalar(select(func.count()).select_from(m.User)) != 0


def list_accounts(session: Session) -> list[Account]:
    """Every account, by name, with the last time one of its sessions was seen."""
    last_seen = dict(
        session.execute(
            select(m.UserSession.user_id, func.max(m.UserSession.last_seen_at)).group_by(
                m.UserSession.user_id
            )
        ).all()
    )
    users = session.scalars(select(m.User).order_by(m.User.name))
    return [_account(user, last_seen.get(user.id)) for user in users]


def authenticate(session: Session, name: str, password: str) -> Account | None:
    """The account when the name and password are right and it is not disabled, else None
    (one answer for every reason, so a failure tells nothing about which was wrong)."""
    user = _find(session, name) if len(password) <= MAX_PASSWORD_LENGTH else None
    if user is None:
        verify_password(_unknown_user_hash(), password)  # the same time as a known name
        return None
    if not verify_password(user.password_hash, password) or user.disabled_at is not None:
        return None
    if HASHER.check_needs_rehash(user.password_hash):  # parameters raised since it was set
        user.password_hash = hash_password(password)
    return _account(user)


# --- changes (each needs manage_users, each logged) ---------------------------------------


def add_user(
    session: Session,
    actor: Actor,
    name: str,
    role: str,
    password: str,
    *,
    full_name: str | None = None,
    email: str | None = None,
) -> Account:
    """A new active account; refused when the name is taken or the password too weak."""
    actor.require("manage_users")
    name, role = check_name(name), check_role(role)
    check_password(password, name)
    if _find(session, name) is not None:
        raise AccountRefused("name_taken", f"an account {name!r} exists already", name=name)
    now = utcnow()
    user = m.User(
        name=name,
        role=role,
        password_hash=hash_password(password),
        full_name=(full_name or "").strip()[:200] or None,
        email=(email or "").strip()[:254] or None,
        created_at=now,
        created_by=actor.name[:60],
        password_changed_at=now,
    )
    session.add(user)
    session.flush()
    audit.record(session, actor.name, "user.add", details={"user": name, "role": role}, at=now)
    return _account(user)


def disable_user(session: Session, actor: Actor, name: str) -> Account:
    """Disable the account and revoke its sessions; disabling it again changes nothing.
    Refused for the actor's own account and for the last active admin."""
    actor.require("manage_users")
    user = _get(session, name)
    if user.disabled_at is not None:
        return _account(user)
    if user.name == actor.name:
        raise AccountRefused("disable_self", "you cannot disable your own account")
    if user.role == "admin" and _active_admins(session) <= 1:
        raise AccountRefused(
            "last_admin",
            f"{user.name} is the last active admin: add another admin first",
            name=user.name,
        )
    now = utcnow()
    user.disabled_at = now
    revoked = revoke_all(session, user.id, now)
    audit.record(
        session,
        actor.name,
        "user.disable",
        details={"user": user.name, "sessions": revoked},
        at=now,
    )
    return _account(user)


def enable_user(session: Session, actor: Actor, name: str) -> Account:
    """Enable a disabled account again (with its old password); an active one is left as is."""
    actor.require("manage_users")
    user = _get(session, name)
    if user.disabled_at is None:
        return _account(user)
    user.disabled_at = None
    audit.record(session, actor.name, "user.enable", details={"user": user.name})
    return _account(user)


def set_password(session: Session, actor: Actor, name: str, password: str) -> Account:
    """A new password for the account; every session of it is revoked."""
    actor.require("manage_users")
    user = _get(session, name)
    check_password(password, user.name)
    now = utcnow()
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    revoked = revoke_all(session, user.id, now)
    audit.record(
        session,
        actor.name,
        "user.password",
        details={"user": user.name, "sessions": revoked},
        at=now,
    )
    return _account(user)


def _active_admins(session: Session) -> int:
    query = (
        select(func.count())
        .select_from(m.User)
        .where(m.User.role == "admin", m.User.disabled_at.is_(None))
    )
    return session.scalar(query) or 0
