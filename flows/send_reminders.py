"""send-reminders: the daily reminder round (rules in mou.cycle.reminders)."""

from __future__ import annotations

import datetime as dt

from prefect import flow

from mou.service.protocol import remind
from mou.service.runtime import scheduled_day
from mou.settings import get_settings


@flow(name="send-reminders")
def send_reminders_flow(today: dt.date | None = None) -> int:
    return remind(get_settings(), today or scheduled_day())
