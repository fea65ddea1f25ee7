"""Sessions of the named accounts: a browser's cookie or a script's bearer token.

The token is 256 random bits given to the client once; the database keeps only its SHA-256
(``user_sessions.token_hash``), so a copy of the database signs no one in. A session ends at
its expiry (``SESSION_SECONDS`` after sign-in), after ``IDLE_SECONDS`` unused, when it is
revoked (sign-out), and with all the account's others when the account is disabled or its
password changed. A revoked row is kept (who was signed in, when, from where).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mou.accounts.roles import Actor, Role
from mou.clock import as_utc, utcnow
from mou.store import models as m

SESSION_SECONDS = 8 * 3600  # a working day: then the password again
IDLE_SECONDS = 2 * 3600  # unused this long, a session ends
# last_seen_at is written at most this often, not on every page.
TOUCH_SECONDS = 60


@dataclass(frozen=True)
class SignedIn:
    """Who a request comes from: the account's actor and its session."""

    session_id: int
    user_id: int
    actor: Actor
    full_name: str | None
    expires_at: dt.datetime

    @property
    def name(self) -> str:
        return self.actor.name

    @property
    def role(self) -> Role:
        return self.actor.role


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(
    session: Session, user_id: int, client: str | None = None, now: dt.datetime | None = None
) -> str:
    """A new session of the account; returns its token (shown once, never stored)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(
        m.UserSession(
            token_hash=token_hash(token),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(seconds=SESSION_SECONDS),
            client=(client or "")[:64] or None,
        )
    )
    session.flush()
    return token


def resume(session: Session, token: str | None, now: dt.datetime | None = None) -> SignedIn | None:
    """Who holds ``token``: None when it is unknown, revoked, expired, idle too long, or its
    account disabled. Notes that it was seen (at most once a minute)."""
    if not token or len(token) > 128:
        return None
    now = now or utcnow()
    row = session.scalar(select(m.UserSession).where(m.UserSession.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None:
        return None
    last_seen = as_utc(row.last_seen_at) or now
    if as_utc(row.expires_at) <= now or last_seen + dt.timedelta(seconds=IDLE_SECONDS) <= now:
        return None
    user = row.user
    if user.disabled_at is not None:
        return None
    if now - last_seen >= dt.timedelta(seconds=TOUCH_SECONDS):
        row.last_seen_at = now
    return SignedIn(
        session_id=row.id,
        user_id=user.id,
        actor=Actor(user.name, user.role),  # type: ignore[arg-type]
        full_name=user.full_name,
        expires_at=as_utc(row.expires_at) or now,
    )


def end_session(session: Session, token: str | None, now: dt.datetime | None = None) -> bool:
    """Revoke the session of ``token`` (sign-out); whether there was one to end."""
    if not token or len(token) > 128:
        return False
    result = session.execute(
        update(m.UserSession)
        .where(m.UserSession.token_hash == token_hash(token), m.UserSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return bool(result.rowcount)


def revoke_all(session: Session, user_id: int, now: dt.datetime | None = None) -> int:
    """Revoke every open session of the account; how many there were."""
    result = session.execute(
        update(m.UserSession)
        .where(m.UserSession.user_id == user_id, m.UserSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return int(result.rowcount or 0)
