"""Personal portal links: one per state and cycle, signed with the service secret.

A link is ``{base}/r/{token}`` with ``token = {cycle}.{STATE}.{YYYYMMDD}.{kid}.{signature}``:

- ``signature`` is HMAC-SHA256 over ``mou-portal-link|v1|{cycle}|{STATE}|{expires}`` with the
  key the service derives for links (``mou.keyring``, so it can never be confused with a
  workbook identity signature), base64url without padding; checked with a constant-time
  comparison. ``kid`` names the secret that signed it, so links sent before a rotation of
  ``MOU_SECRET`` keep working while the old secret is in ``MOU_PREVIOUS_SECRETS``.
- **Expiry policy.** The signed date is the cycle's deadline plus a grace period
  (``settings.portal_link_grace_days``, default 90 days) so late returns can still be
  uploaded. The link stops working at the end of that day (UTC) *or* as soon as the cycle is
  closed, whichever comes first (the closed-cycle check is made against the database by the
  portal). A reminder or a new request email carries a fresh link if the deadline moves.

Nothing in the token is secret (cycle, state and date are visible); only the signature makes it
a capability, so a link for one state can never be turned into a link for another.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from mou.clock import utcnow
from mou.i18n.formatting import Formatter
from mou.i18n.texts import PortalTexts
from mou.keyring import PORTAL_LINK, Keyring
from mou.store import models as m
from mou.store.database import session_scope

_DOMAIN = b"mou-portal-link|v1"
# {cycle}.{STATE}.{YYYYMMDD}.{key id}.{signature}; links sent before key ids had no key id.
_TOKEN = re.compile(r"(\d{1,9})\.([A-Z]{2})\.(\d{8})\.(?:([0-9a-f]{8})\.)?([A-Za-z0-9_-]{43})")


class InvalidLink(Exception):
    """Malformed, tampered or unknown: the portal answers 404 and says nothing more."""


class ExpiredLink(Exception):
    """Genuine but past its date (or its cycle is closed): the portal answers 403."""


@dataclass(frozen=True)
class PortalLink:
    cycle_id: int
    state: str
    expires: dt.date
    token: str


def _legacy_key(secret: str) -> bytes:
    # How links were keyed before key ids: they verify against every configured secret.
    return hmac.new(secret.encode("utf-8"), b"mou-portal-link-key", hashlib.sha256).digest()


def _signature(key: bytes, cycle_id: int, state_code: str, expires: dt.date) -> str:
    message = b"|".join(
        (_DOMAIN, str(cycle_id).encode(), state_code.encode(), expires.isoformat().encode())
    )
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _keyring(keys: Keyring | str) -> Keyring:
    return keys if isinstance(keys, Keyring) else Keyring(keys)


def portal_token(keys: Keyring | str, cycle_id: int, state_code: str, expires: dt.date) -> str:
    """The signed token of one state's link for one cycle, valid until ``expires`` (inclusive)."""
    state = state_code.upper()
    if not re.fullmatch(r"[A-Z]{2}", state) or cycle_id < 0:
        raise ValueError("a portal token needs a cycle id and a two-letter state code")
    kid, key = _keyring(keys).signing_key(PORTAL_LINK)
    signature = _signature(key, cycle_id, state, expires)
    return f"{cycle_id}.{state}.{expires:%Y%m%d}.{kid}.{signature}"


def verify_portal_token(
    keys: Keyring | str, token: str, today: dt.date | None = None
) -> PortalLink:
    """The link's cycle and state; InvalidLink if not genuine, ExpiredLink if past its date.

    The signature is checked before the date, so a forged date is "invalid", never "expired".
    """
    keyring = _keyring(keys)
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise InvalidLink
    cycle_text, state, date_text, kid, signature = match.groups()
    try:
        expires = dt.datetime.strptime(date_text, "%Y%m%d").date()
    except ValueError as exc:
        raise InvalidLink from exc
    cycle_id = int(cycle_text)
    if kid is not None:
        key = keyring.verifying_key(PORTAL_LINK, kid)
        candidates = [key] if key is not None else []
    else:
        candidates = [_legacy_key(secret) for secret in keyring.secrets]
    if not any(
        hmac.compare_digest(
            _signature(key, cycle_id, state, expires).encode("ascii"), signature.encode("ascii")
        )
        for key in candidates
    ):
        raise InvalidLink
    link = PortalLink(cycle_id, state, expires, token)
    if (today or utcnow().date()) > expires:
        raise ExpiredLink(link)
    return link


def grace_days(settings: Any) -> int:
    return settings.portal_link_grace_days


def link_expiry(settings: Any, deadline: dt.date) -> dt.date:
    """The last day a link of a cycle with this deadline works (if the cycle stays open)."""
    return deadline + dt.timedelta(days=grace_days(settings))


def portal_base_url(settings: Any) -> str:
    base = settings.portal_base_url or (f"http://{settings.portal_host}:{settings.portal_port}")
    return base.rstrip("/")


def portal_link(
    settings: Any, cycle_id: int, state_code: str, *, deadline: dt.date | None = None
) -> str:
    """The personal upload link of a state for a cycle (absolute URL).

    Pass ``deadline`` when the caller already has the cycle (no database access then).
    """
    if deadline is None:
        with session_scope(settings) as session:
            cycle = session.get(m.ReportingCycle, cycle_id)
            if cycle is None:
                raise LookupError(f"no reporting cycle {cycle_id}")
            deadline = cycle.deadline
    token = portal_token(settings.keyring, cycle_id, state_code, link_expiry(settings, deadline))
    return f"{portal_base_url(settings)}/r/{token}"


def request_email_paragraph(
    settings: Any,
    cycle_id: int,
    state_code: str,
    language: str,
    *,
    deadline: dt.date,
    state_name: str,
) -> str:
    """The paragraph the request email adds about the portal, in the request's language."""
    expiry = link_expiry(settings, deadline)
    texts = PortalTexts(settings.forms_dir, language)
    return texts.get(
        "email_paragraph",
        link=portal_link(settings, cycle_id, state_code, deadline=deadline),
        state=state_name,
        valid_until=Formatter(language).date(expiry),
    )
