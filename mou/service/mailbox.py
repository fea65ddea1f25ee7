"""The mailbox in the service: a pass announces and decides the returns it recorded, and
sends the answers and alerts it enqueued. ``mou mailbox poll`` and the poll-mailbox
deployment make one pass; ``mou serve`` keeps a ``MailboxListener`` (IDLE, else polling)."""

from __future__ import annotations

import logging

from mou.mail.delivery import deliver_pending
from mou.mailbox.reader import MailboxListener, MailboxPass, read_mailbox
from mou.service import events
from mou.service.protocol import INGEST_INLINE, InlineIngest, process_submission
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope

log = logging.getLogger(__name__)


def poll_mailbox(settings: Settings) -> MailboxPass:
    """One pass over the mailbox; its returns decided here, answers and receipts sent."""
    report = read_mailbox(settings)
    after_pass(settings, report, ingest=None)
    return report


def after_pass(settings: Settings, report: MailboxPass, ingest: InlineIngest | None) -> None:
    """Announce each new return and decide it (in ``ingest``'s threads, or here); send."""
    for submission_id in report.submissions:
        _announce(settings, submission_id)
        if ingest is not None:
            ingest.submit(submission_id)
            continue
        try:
            process_submission(settings, submission_id)
        except Exception:  # the sweep decides it later
            log.exception("mailbox: submission %s not decided now", submission_id)
    if report.handled:
        deliver_pending(settings)


def _announce(settings: Settings, submission_id: int) -> None:
    with session_scope(settings) as session:
        sha256 = session.get(m.Submission, submission_id).file_sha256  # type: ignore[union-attr]
    events.emit(
        events.SUBMISSION_RECEIVED,
        f"mou.submission.{submission_id}",
        ingest=INGEST_INLINE,
        payload={"submission_id": submission_id, "sha256": sha256, "channel": "email"},
    )


def start_listener(settings: Settings, ingest: InlineIngest) -> MailboxListener:
    """The reader ``mou serve`` runs beside the drop folder, deciding returns at once."""
    listener = MailboxListener(
        settings, after_pass=lambda report: after_pass(settings, report, ingest)
    )
    listener.start()
    return listener
