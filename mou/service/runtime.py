"""What a flow run knows about itself, from Prefect's runtime context."""

from __future__ import annotations

import datetime as dt

from mou.clock import as_utc


def scheduled_day() -> dt.date:
    """The day, in UTC, this flow run was scheduled for; outside a run, today in UTC.

    A daily run that starts late, or on a worker whose clock is set to another zone, still
    acts for the day it was meant for (a worker's local date can be a day off).
    """
    from prefect.runtime import flow_run

    moment = as_utc(flow_run.scheduled_start_time)
    assert moment is not None
    return moment.date()
