"""poll-mailbox: one pass over the Secretariat's mailbox (MOU_IMAP_*): returns recorded and
decided, other mail answered once or not at all, bounces marked. Off while MOU_IMAP_HOST is
unset."""

from __future__ import annotations

from typing import Any

from prefect import flow

from mou.service.mailbox import poll_mailbox
from mou.settings import get_settings


@flow(name="poll-mailbox", retries=1, retry_delay_seconds=30)
def poll_mailbox_flow() -> dict[str, Any]:
    settings = get_settings()
    if not settings.imap_host:
        return {"mailbox": "off"}
    report = poll_mailbox(settings)
    return {"seen": report.seen, "handled": len(report.handled), "returns": report.submissions}
