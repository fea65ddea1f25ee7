"""Scheduled flows act for the UTC day they were scheduled for, not the worker's local date."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator

import pytest
from prefect.runtime import flow_run


@pytest.fixture
def worker_in_kiribati() -> Iterator[None]:
    # UTC+14: at 12:00 UTC on 31 March it is already 1 April there.
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Kiritimati"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_the_reminder_round_is_for_the_day_it_was_scheduled(
    worker_in_kiribati: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.send_reminders as module

    # Yesterday's round at 23:30 UTC, started late (a backlog) on that worker.
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    scheduled = yesterday.replace(hour=23, minute=30, second=0, microsecond=0)
    monkeypatch.setitem(flow_run.FIELDS, "scheduled_start_time", lambda: scheduled)
    days: list[dt.date] = []
    monkeypatch.setattr(module, "remind", lambda settings, today: days.append(today) or 0)
    monkeypatch.setattr(module, "get_settings", lambda: None)
    module.send_reminders_flow.fn()
    assert days == [scheduled.date()]
    assert dt.date.today() > scheduled.date()  # what the worker's clock says is not it
