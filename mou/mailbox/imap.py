"""The Secretariat's mailbox over IMAP (imapclient): list, fetch, move, wait for news.

One connection per ``ImapMailbox``; ``MOU_IMAP_SECURITY`` says how it is protected: ``ssl``
(IMAP over TLS, port 993), ``starttls`` (port 143, upgraded before the login) or ``none``
(loopback tests only). Certificates are checked against the system's authorities.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from types import TracebackType
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mou.settings import Settings

log = logging.getLogger(__name__)
# RFC 2177: re-issue IDLE before 29 minutes, servers drop an idle client after 30.
IDLE_RENEW_SECONDS = 25 * 60


class MailboxUnavailable(Exception):
    """The mailbox cannot be reached or refuses the login; the message says which, no secret."""


class ImapMailbox:
    """The folder ``MOU_IMAP_FOLDER``; read messages are moved to the processed folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder = settings.imap_folder
        self.processed = settings.imap_processed_folder
        self._client: IMAPClient | None = None
        self.capabilities: set[str] = set()

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise MailboxUnavailable("not connected")
        return self._client

    @property
    def can_idle(self) -> bool:
        return "IDLE" in self.capabilities

    def __enter__(self) -> ImapMailbox:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        s = self.settings
        where = f"{s.imap_host}:{s.effective_imap_port}"
        context = ssl.create_default_context()
        try:
            client = IMAPClient(
                s.imap_host,
                port=s.effective_imap_port,
                ssl=s.imap_security == "ssl",
                ssl_context=context if s.imap_security == "ssl" else None,
                timeout=s.imap_timeout,
            )
        except (OSError, IMAPClientError) as exc:
            raise MailboxUnavailable(f"cannot reach the mailbox at {where}: {exc}") from exc
        try:
            if s.imap_security == "starttls":
                client.starttls(context)
            client.login(s.imap_user, s.imap_password)
            self.capabilities = {
                c.decode("ascii", "replace").upper() for c in client.capabilities()
            }
            if not client.folder_exists(self.processed):
                client.create_folder(self.processed)
            client.select_folder(self.folder)
        except (OSError, IMAPClientError) as exc:
            _quietly_close(client)
            # imapclient's messages name the command, never the password.
            raise MailboxUnavailable(
                f"the mailbox at {where} refused {s.imap_user or 'the login'}: {exc}"
            ) from exc
        self._client = client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _quietly_close(client)

    def waiting(self) -> list[tuple[int, int]]:
        """(UID, size) of each message in the folder, oldest first."""
        client = self.client
        uids = client.search(["NOT", "DELETED"])
        if not uids:
            return []
        sizes = client.fetch(uids, ["RFC822.SIZE"])
        return sorted((uid, int(data.get(b"RFC822.SIZE", 0))) for uid, data in sizes.items())

    def fetch(self, uid: int) -> bytes | None:
        """The message's bytes, or None if it is gone (another reader moved it)."""
        # BODY.PEEK: reading does not mark it seen; moving it is the sign it was taken.
        found = self.client.fetch([uid], ["BODY.PEEK[]"])
        data = found.get(uid, {})
        raw = data.get(b"BODY[]")
        return bytes(raw) if raw is not None else None

    def done(self, uid: int) -> None:
        """Move the message to the processed folder (MOVE, or COPY and expunge)."""
        client = self.client
        if "MOVE" in self.capabilities:
            client.move([uid], self.processed)
            return
        client.copy([uid], self.processed)
        client.add_flags([uid], [b"\\Deleted"], silent=True)
        if "UIDPLUS" in self.capabilities:
            client.uid_expunge([uid])
        else:
            client.expunge()

    def wait_for_news(self, stop: threading.Event, longest: float | None = None) -> bool:
        """Wait in IDLE until the folder changes (True), ``stop`` is set or ``longest``
        seconds pass (False). Without IDLE, the caller polls instead."""
        client = self.client
        longest = IDLE_RENEW_SECONDS if longest is None else longest
        deadline = time.monotonic() + longest
        client.idle()
        news = False
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                # A one-second wait on the socket, so a stop is seen within a second.
                responses: list[Any] = client.idle_check(timeout=1.0)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    news = True
                    break
        finally:
            client.idle_done()
        return news


def _quietly_close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            log.debug("mailbox connection already closed")
