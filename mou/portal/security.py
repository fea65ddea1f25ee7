"""The portal's defences: security headers (HSTS over https), error containment, CSRF tokens,
the sign-in throttle (by client and by account name) and who its client is (behind trusted
proxies), size- and time-limited request bodies and spreadsheet sniffing. The sessions
themselves are rows of the database (``mou.accounts.sessions``).

Every key is derived from the service's secret with its own label (``mou.keyring``), so a
CSRF token and a portal link can never stand in for one another.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mou.clock import utcnow
from mou.keyring import CSRF, derive_key
from mou.settings import Settings
from mou.store.database import session_scope
from mou.store.models import SignInFailure

log = logging.getLogger(__name__)

CSRF_COOKIE = "mou_csrf"
CSRF_FIELD = "csrf_token"
SESSION_COOKIE = "mou_session"

CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    b"content-security-policy": CSP.encode(),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
}
# Only over https: a browser ignores it over http, and a portal reached both ways (a test
# server, a plain-http address inside the network) must stay reachable over http.
HSTS_HEADER = b"strict-transport-security"
HSTS = b"max-age=31536000"

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")  # .xls, and password-protected .xlsx
# Spreadsheets the intake itself reads or explains (.xls/.ods/.xlsm get a precise message).
SPREADSHEET_MAGIC = {
    ".xlsx": (ZIP_MAGIC, OLE_MAGIC),
    ".xlsm": (ZIP_MAGIC,),
    ".ods": (ZIP_MAGIC,),
    ".xls": (OLE_MAGIC,),
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(key: bytes, *parts: str) -> str:
    return _b64(hmac.new(key, "|".join(parts).encode("utf-8"), hashlib.sha256).digest())


# --- CSRF: double submit (cookie nonce == form nonce) and bound to its scope ---------------


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(secret: str, scope: str, nonce: str) -> str:
    """The hidden form value: the cookie's nonce and a MAC binding it to the link/session."""
    return f"{nonce}.{_mac(derive_key(secret, CSRF), scope, nonce)}"


def csrf_valid(secret: str, scope: str, cookie_nonce: str | None, submitted: str | None) -> bool:
    if not cookie_nonce or not submitted or "." not in submitted:
        return False
    nonce, _, mac = submitted.rpartition(".")
    expected = _mac(derive_key(secret, CSRF), scope, nonce)
    same_nonce = hmac.compare_digest(nonce.encode(), cookie_nonce.encode())
    return hmac.compare_digest(mac.encode(), expected.encode()) and same_nonce


def valid_nonce(value: str | None) -> bool:
    return (
        bool(value) and 16 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum()
    )


# --- Who the client is, and how many failed sign-ins it and a name have had -------------

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    """The IP address in ``text``, as proxies write it (``v4``, ``v4:port``, ``v6``,
    ``[v6]:port``); an IPv4 address mapped into IPv6 (a dual-stack socket) as IPv4."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The reverse proxies (addresses or networks) whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` are believed (``MOU_PORTAL_TRUSTED_PROXIES``)."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)

    def trusts(self, host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """Who sent the request: the peer, unless it is a trusted proxy; then the right-most
        address of ``X-Forwarded-For`` that is not a trusted proxy (the left-most when all
        are). Each proxy appends the address it was connected from, so what is left of the
        last untrusted hop was written by the client and could be anything."""
        hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
        if not self.trusts(peer) or not hops:
            return peer
        for hop in reversed(hops):
            if not self.trusts(hop):
                return _display(hop)
        return _display(hops[0])


def _display(hop: str) -> str:
    address = _address(hop)
    return str(address) if address is not None else hop


def client_key(host: str) -> str:
    """Whom failures are counted for: the address, or for IPv6 its /64 network, since one
    host (one customer line) has a whole /64 to take addresses from."""
    address = _address(host)
    if address is None:
        return host[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def name_key(name: str) -> str:
    """Whom failures are counted for besides the client: the account name tried (``@name``,
    never an address), so guesses spread over many addresses still stop."""
    return "@" + name.strip().lower()[:63]


class SignInThrottle:
    """At most ``attempts`` failed sign-ins in ``window`` seconds per client and per account
    name: wrong passwords on the sign-in form and the API's ``/api/session``, and unknown
    bearer tokens on the API, all together.

    An attempt is counted before the password is compared, so parallel requests cannot all
    pass the check before any failure is written; a right password forgets the failures of
    its client and its name. They are rows of the project database (``SignInFailure``, keyed
    by ``client_key`` or ``name_key``): a restart does not forget them, every portal process
    on the database counts the same ones, and rows older than the window are deleted as new
    ones are written. (Counting by name lets a guesser hold one account up for the window,
    not get in: the price of stopping a guesser who has many addresses.)
    """

    def __init__(self, settings: Settings, attempts: int = 10, window: float = 300.0) -> None:
        self.settings = settings
        self.attempts = attempts
        self.window = dt.timedelta(seconds=window)

    @staticmethod
    def _keys(client: str, name: str | None) -> list[str]:
        keys = [client_key(client)]
        if name and name.strip():
            keys.append(name_key(name))
        return keys

    def retry_after(self, client: str, name: str | None = None) -> int:
        """Seconds until ``client`` (or anyone, for account ``name``) may try again; 0 now."""
        now = utcnow()
        with session_scope(self.settings) as session:
            return max(self._wait(session, key, now) for key in self._keys(client, name))

    def attempt(self, client: str, name: str | None = None) -> int:
        """Count an attempt of ``client`` (on account ``name``), before it is checked: 0 to go
        on (the attempt stays counted as a failure unless ``succeeded`` follows), else the
        seconds to wait (and the attempt is not counted, so trying during the block does not
        prolong it)."""
        keys, now = self._keys(client, name), utcnow()
        if wait := self.retry_after(client, name):
            return wait
        with session_scope(self.settings) as session:
            session.execute(
                delete(SignInFailure).where(SignInFailure.failed_at <= now - self.window)
            )
            rows = [SignInFailure(client=key, failed_at=now) for key in keys]
            session.add_all(rows)
            session.flush()
            row_ids = [row.id for row in rows]
        # Counted once committed: of parallel attempts, the n-th to commit sees at least n.
        with session_scope(self.settings) as session:
            counts = session.execute(
                select(SignInFailure.client, func.count())
                .where(SignInFailure.client.in_(keys), SignInFailure.failed_at > now - self.window)
                .group_by(SignInFailure.client)
            ).all()
            if all(count <= self.attempts for _, count in counts):
                return 0
            session.execute(delete(SignInFailure).where(SignInFailure.id.in_(row_ids)))
            session.flush()
            return max(1, *(self._wait(session, key, now) for key in keys))

    def succeeded(self, client: str, name: str | None = None) -> None:
        """A right password: the failures of the client and of the name are forgotten."""
        with session_scope(self.settings) as session:
            session.execute(
                delete(SignInFailure).where(SignInFailure.client.in_(self._keys(client, name)))
            )

    def _wait(self, session: Session, key: str, now: dt.datetime) -> int:
        # Blocked while ``attempts`` failures are in the window: until the oldest of the
        # latest ``attempts`` leaves it.
        latest = session.scalars(
            select(SignInFailure.failed_at)
            .where(SignInFailure.client == key, SignInFailure.failed_at > now - self.window)
            .order_by(SignInFailure.failed_at.desc())
            .limit(self.attempts)
        ).all()
        if len(latest) < self.attempts:
            return 0
        return max(1, math.ceil((latest[-1] + self.window - now).total_seconds()))


# --- Request bodies ---------------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    """The request body paused longer than allowed, or was not complete in time."""


def timed_receive(receive: Receive, pause: float, total: float) -> Receive:
    """``receive`` that raises ``BodyTimeout`` when the next part of the body takes more than
    ``pause`` seconds, or the whole body more than ``total`` from when the app first asks for
    it. Without it a client sending a byte now and then holds a request open for as long as
    it likes (uvicorn has no such limit). Once the body is complete, waiting (for the client
    to disconnect) is not limited."""
    complete = False
    deadline: float | None = None

    async def receive_in_time() -> dict[str, Any]:
        nonlocal complete, deadline
        if complete:
            return await receive()
        now = time.monotonic()
        if deadline is None:
            deadline = now + total
        wait = min(pause, deadline - now)
        if wait <= 0:
            raise BodyTimeout
        try:
            message = await asyncio.wait_for(receive(), wait)
        except TimeoutError:
            raise BodyTimeout from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return receive_in_time


async def limited_stream(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass the body through while counting; stop at the first byte over ``limit``."""
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge
        yield chunk


@dataclass(frozen=True)
class Sniffed:
    ok: bool
    reason: str = ""  # no_file | not_spreadsheet


def sniff_spreadsheet(filename: str, head: bytes) -> Sniffed:
    """Accept .xlsx (and the spreadsheet types the intake explains) whose bytes agree."""
    if not head:
        return Sniffed(False, "no_file")
    name = filename.lower().strip()
    suffix = name[name.rfind(".") :] if "." in name else ""
    magics = SPREADSHEET_MAGIC.get(suffix)
    if magics is None or not any(head.startswith(magic) for magic in magics):
        return Sniffed(False, "not_spreadsheet")
    return Sniffed(True)


def content_disposition(filename: str, fallback: str) -> str:
    """``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987)."""
    from urllib.parse import quote

    ascii_name = "".join(ch for ch in filename if ch.isascii() and (ch.isalnum() or ch in "._-"))
    stem = ascii_name.rsplit(".", 1)[0] if "." in ascii_name else ascii_name
    if not any(ch.isalnum() for ch in stem):
        ascii_name = fallback
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


# --- ASGI middleware: headers on every response, and no traceback ever reaches a user ------

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ErrorPage = Callable[[Scope], tuple[int, list[tuple[bytes, bytes]], bytes]]


class SecurityMiddleware:
    """Adds the security headers (``Cache-Control: no-store`` on everything but static assets,
    HSTS over https), limits the time a request body may take to arrive (``timed_receive``)
    and turns any unhandled exception into the plain error page. Outermost but for
    ``ProxiedClient``, which first says who the client is and over which scheme it came."""

    def __init__(
        self,
        app: Any,
        error_page: ErrorPage,
        *,
        published_https: bool = False,
        body_pause: float = 30.0,
        body_total: float = 300.0,
    ) -> None:
        self.app = app
        self.error_page = error_page
        self.published_https = published_https
        self.body_pause = body_pause
        self.body_total = body_total

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")
        https = self.published_https or scope.get("scheme") == "https"
        started = False

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in SECURITY_HEADERS
                    and k.lower() not in (b"cache-control", HSTS_HEADER)
                ]
                headers.extend(SECURITY_HEADERS.items())
                cache = b"public, max-age=3600" if static else b"no-store"
                headers.append((b"cache-control", cache))
                if https:
                    headers.append((HSTS_HEADER, HSTS))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(
                scope, timed_receive(receive, self.body_pause, self.body_total), send_with_headers
            )
        except Exception:
            log.exception("portal: unhandled error on %s", scope.get("path"))
            if started:
                raise
            status, headers, body = self.error_page(scope)
            await send_with_headers(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            await send_with_headers({"type": "http.response.body", "body": body})


class ProxiedClient:
    """Outermost layer: when the peer is a trusted proxy, the request's client is the one it
    forwarded (``TrustedProxies.client``) and its scheme the one it was reached by
    (``X-Forwarded-Proto``, when a single http or https). From anyone else these headers are
    ignored: any client can write them. uvicorn's own handling is off (``server``): it trusts
    127.0.0.1 by default, so every local process could pass for any address."""

    def __init__(self, app: Any, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if scope["type"] == "http" and peer and self.proxies.trusts(peer[0]):
            headers = scope.get("headers", [])
            forwarded = ", ".join(
                v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"
            )
            protos = [v.decode("latin-1").strip() for k, v in headers if k == b"x-forwarded-proto"]
            scope = {**scope, "client": (self.proxies.client(peer[0], forwarded), 0)}
            if len(protos) == 1 and protos[0] in ("http", "https"):
                scope["scheme"] = protos[0]
        await self.app(scope, receive, send)
