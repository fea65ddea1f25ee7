"""The carriers of outbox messages: an SMTP relay, or ``.eml`` files in the outbox folder.

A transport sends one built message; whether and when to send is ``mou.mail.delivery``'s.
``TransportUnavailable`` says the carrier itself is down, so the run stops rather than fail
every message in turn.
"""

from __future__ import annotations

import base64
import os
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from mou.mail.message import eml_filename, parse_address
from mou.settings import Settings
from mou.store.models import OutboxMessage


class TransportUnavailable(Exception):
    """The transport itself is down (cannot connect, log in, or create the outbox folder)."""


class Transport(Protocol):
    """Carries built messages; one per delivery run, closed at its end."""

    def send(self, mail: EmailMessage, message: OutboxMessage) -> dict[str, tuple[int, bytes]]:
        """Deliver; returns the recipients the relay refused while accepting the others."""
        ...

    def close(self) -> None:
        """End the run's connection, if any."""
        ...


def transport_for(settings: Settings) -> Transport:
    """The configured SMTP relay, or, with no relay configured, the outbox folder."""
    if settings.smtp_host:
        return SmtpTransport(settings)
    return FileTransport(settings.outbox_dir)


class SmtpTransport:
    """One SMTP connection per run, reopened after any error."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        try:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                _login(smtp, s.smtp_user, s.smtp_password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, mail: EmailMessage, message: OutboxMessage) -> dict[str, tuple[int, bytes]]:
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except Exception as exc:  # whatever stops the session stops every message
                raise TransportUnavailable(str(exc)) from exc
        envelope_from = parse_address(message.sender).addr_spec
        recipients = [parse_address(text).addr_spec for text in (*message.to, *message.cc)]
        try:
            return self._smtp.send_message(mail, from_addr=envelope_from, to_addrs=recipients)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    if (user + password).isascii():
        smtp.login(user, password)
        return
    # smtplib encodes credentials as ASCII; AUTH PLAIN is defined on UTF-8 (RFC 4616).
    smtp.ehlo_or_helo_if_needed()
    if "PLAIN" not in smtp.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPException("the relay offers no AUTH PLAIN for a non-ASCII password")
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


class FileTransport:
    """The embedded default: one ``.eml`` file per message, written atomically."""

    def __init__(self, outbox_dir: Path) -> None:
        self._dir = outbox_dir

    def send(self, mail: EmailMessage, message: OutboxMessage) -> dict[str, tuple[int, bytes]]:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportUnavailable(str(exc)) from exc
        target = self._dir / eml_filename(message.key)
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".sending-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(mail.as_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return {}

    def close(self) -> None:
        pass
