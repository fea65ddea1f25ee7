"""Reading the mailbox: one pass (``read_mailbox``), or a listener that waits in IDLE where
the server offers it and polls every ``MOU_IMAP_POLL_SECONDS`` otherwise.

Per message: fetch, record and handle (each committed, ``mou.mailbox.record``), then move it
to the processed folder. A crash between the commit and the move leaves the message in the
folder; the next pass finds it recorded and handled, and only moves it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mou.mailbox.imap import ImapMailbox, MailboxUnavailable
from mou.mailbox.message import parse_mail
from mou.mailbox.record import Handled, take_mail
from mou.settings import Settings

log = logging.getLogger(__name__)
RECONNECT_MAX = 300.0  # seconds between tries of a mailbox that cannot be reached


@dataclass
class MailboxPass:
    """What one pass over the folder did."""

    seen: int = 0
    handled: list[dict[str, Any]] = field(default_factory=list)  # one per message handled now
    already: int = 0  # handled before (a crash before the move, another reader): only moved
    submissions: list[int] = field(default_factory=list)  # returns recorded, to be decided
    left: list[str] = field(default_factory=list)  # messages left in the folder, and why

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_mailbox(settings: Settings, box: ImapMailbox | None = None) -> MailboxPass:
    """One pass over the folder: every message recorded, handled and moved."""
    if box is None:
        with ImapMailbox(settings) as opened:
            return read_folder(settings, opened)
    return read_folder(settings, box)


def read_folder(settings: Settings, box: ImapMailbox) -> MailboxPass:
    report = MailboxPass()
    for uid, size in box.waiting():
        report.seen += 1
        if size > settings.max_kept_bytes:
            # Not fetched: left in the folder for a person, named in the log each pass.
            report.left.append(f"UID {uid}: {size // 2**20} MB, over MOU_MAX_KEPT_BYTES")
            log.error("mailbox: message UID %s has %s bytes, over the limit: left", uid, size)
            continue
        raw = box.fetch(uid)
        if raw is None:
            continue  # moved meanwhile by another reader
        try:
            handled = take_message(settings, raw, box.folder)
        except Exception as exc:  # the database is away, or a fault of ours: next pass
            log.exception("mailbox: message UID %s not handled; left for the next pass", uid)
            report.left.append(f"UID {uid}: {type(exc).__name__}")
            continue
        # Only now, with its effects committed, is the server told.
        box.done(uid)
        if handled.already:
            report.already += 1
            continue
        report.handled.append({"mail": handled.mail_id, "kind": handled.kind, "note": handled.note})
        report.submissions.extend(handled.submissions)
    return report


def take_message(settings: Settings, raw: bytes, folder: str) -> Handled:
    mail = parse_mail(raw, own_address=settings.mail_from, max_inflated=settings.max_inflated_bytes)
    return take_mail(settings, raw, mail, folder)


class MailboxListener:
    """Reads the mailbox in a thread until stopped: a pass, then IDLE until the folder
    changes (or ``imap_poll_seconds`` without IDLE), again. A mailbox that cannot be reached
    is tried again after a growing pause; ``after_pass`` gets each pass's report."""

    def __init__(
        self, settings: Settings, after_pass: Callable[[MailboxPass], None] | None = None
    ) -> None:
        self.settings = settings
        self.after_pass = after_pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailbox-reader", daemon=True)
        self.mode = "connecting"  # idle | polling, once connected

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            try:
                with ImapMailbox(self.settings) as box:
                    self.mode = "idle" if box.can_idle else "polling"
                    log.info("mailbox: connected (%s)", self.mode)
                    pause = 1.0
                    self._serve(box)
            except MailboxUnavailable as exc:
                log.error("mailbox: %s; trying again in %.0f s", exc, pause)
            except Exception:
                log.exception("mailbox: connection lost; trying again in %.0f s", pause)
            if self._stop.wait(pause):
                return
            pause = min(RECONNECT_MAX, pause * 2)

    def _serve(self, box: ImapMailbox) -> None:
        while not self._stop.is_set():
            report = read_folder(self.settings, box)
            if self.after_pass is not None:
                try:
                    self.after_pass(report)
                except Exception:
                    log.exception("mailbox: after-pass step failed; the sweep finishes it")
            if report.handled or report.already:
                continue  # mail that came during the pass is not always announced: look again
            if box.can_idle:
                # Bounded by the poll interval too: a server that announced a message in a
                # command's answer during the pass would not announce it again in IDLE.
                box.wait_for_news(self._stop, longest=self.settings.imap_poll_seconds)
            elif self._stop.wait(self.settings.imap_poll_seconds):
                return
