"""deliver-outbox: send pending emails (retries with back-off live in the outbox rows)."""

from __future__ import annotations

from prefect import flow

from mou.mail.delivery import deliver_pending
from mou.settings import get_settings


@flow(name="deliver-outbox")
def deliver_outbox_flow() -> int:
    return deliver_pending(get_settings()).sent
