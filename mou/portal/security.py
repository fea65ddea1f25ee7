"""The portal's defences: security headers, error containment, CSRF tokens, the signed
secretariat session, a size-limited request body and spreadsheet sniffing.

Every key is derived from the service's secret with its own label (``mou.keyring``), so a
CSRF token, a session cookie and a portal link can never stand in for one another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mou.keyring import CSRF, SESSION, derive_key

log = logging.getLogger(__name__)

CSRF_COOKIE = "mou_csrf"
CSRF_FIELD = "csrf_token"
SESSION_COOKIE = "mou_session"
SESSION_SECONDS = 8 * 3600

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


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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


# --- The secretariat session: a signed, expiring cookie ------------------------------------


def _session_key(secret: str, secretariat_token: str) -> bytes:
    # Bound to the configured token: changing the token signs everybody out.
    fingerprint = hashlib.sha256(secretariat_token.encode("utf-8")).hexdigest()
    return derive_key(secret, f"{SESSION}|{fingerprint}")


def make_session(secret: str, secretariat_token: str, now: float | None = None) -> str:
    body = {"sid": secrets.token_urlsafe(16), "exp": int((now or time.time()) + SESSION_SECONDS)}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_mac(_session_key(secret, secretariat_token), payload)}"


def read_session(
    secret: str, secretariat_token: str, cookie: str | None, now: float | None = None
) -> str | None:
    """The session id if the cookie is genuine and current, else None."""
    if not cookie or not secretariat_token or "." not in cookie:
        return None
    payload, _, mac = cookie.rpartition(".")
    expected = _mac(_session_key(secret, secretariat_token), payload)
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    try:
        body = json.loads(_unb64(payload))
        if int(body["exp"]) < (now or time.time()):
            return None
        return str(body["sid"])
    except (ValueError, KeyError, TypeError):
        return None


def token_matches(configured: str, offered: str | None) -> bool:
    if not configured or not offered:
        return False
    return hmac.compare_digest(
        hashlib.sha256(configured.encode("utf-8")).digest(),
        hashlib.sha256(offered.encode("utf-8")).digest(),
    )


class LoginThrottle:
    """At most ``attempts`` failed sign-ins per client in ``window`` seconds (in memory)."""

    def __init__(self, attempts: int = 10, window: float = 300.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window]
            self._failures[client] = recent
            return len(recent) >= self.attempts

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


# --- Request bodies ---------------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


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
    """Outermost layer: adds the security headers (``Cache-Control: no-store`` on everything
    but static assets) and turns any unhandled exception into the plain error page."""

    def __init__(self, app: Any, error_page: ErrorPage) -> None:
        self.app = app
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")
        started = False

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in SECURITY_HEADERS and k.lower() != b"cache-control"
                ]
                headers.extend(SECURITY_HEADERS.items())
                cache = b"public, max-age=3600" if static else b"no-store"
                headers.append((b"cache-control", cache))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("portal: unhandled error on %s", scope.get("path"))
            if started:
                raise
            status, headers, body = self.error_page(scope)
            await send_with_headers(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            await send_with_headers({"type": "http.response.body", "body": body})
