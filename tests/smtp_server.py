"""A real SMTP server for tests (aiosmtpd in a thread) that keeps every message it accepts."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    """One accepted message: the SMTP envelope and the parsed content."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class Collector:
    """aiosmtpd handler: refuses recipients whose address starts with ``refuse``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("refuse"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self._received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 Message accepted for delivery"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)


class _EphemeralController(Controller):
    """Binds the port the OS gives (port 0) and reads it back before aiosmtpd's self-check;
    with SO_REUSEPORT, so it can bind while ``SmtpServer`` still holds the port (below)."""

    def _create_server(self) -> Any:
        return self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port, reuse_port=True
        )

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """Start, stop and restart (on the same port) a collecting SMTP server on 127.0.0.1.

    Stopped, it keeps its port bound but not listening: connections are refused, as by a relay
    that is down, and no other process can take the port before it starts again (a released
    port is soon given to someone else's port 0 on a busy machine).
    """

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self.collector = Collector()
        self.credentials = credentials
        self.port = 0
        self._controller: Controller | None = None
        self._held: socket.socket | None = None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok)

    def start(self) -> None:
        options: dict[str, Any] = {}
        if self.credentials is not None:
            options = {
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": False,
            }
        controller = _EphemeralController(
            self.collector, hostname="127.0.0.1", port=self.port, ready_timeout=5, **options
        )
        controller.start()
        self.port = controller.port
        self._controller = controller
        if self._held is not None:  # listening again: the placeholder can go
            self._held.close()
            self._held = None

    def stop(self) -> None:
        if self._controller is not None:
            if self._held is None:
                held = socket.socket()
                held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                held.bind(("127.0.0.1", self.port))  # bound, never listening
                self._held = held
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[Received]:
        return self.collector.received
