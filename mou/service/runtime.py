"""What a flow run knows about itself, from Prefect's runtime context."""

from __future__ import annotations

import datetime as dt


def scheduled_day() -> dt.date:
    """The day, in UTC, this flow run was scheduled for; outside a run, today in UTC.

    A daily run that starts late, or on a worker whose clock is set to another zone, still
    acts for the day it was meant for (a worker's local date can be a day off).
    """
    from prefect.runtime import flow_run

    moment: dt.datetime = flow_run.scheduled_start_time
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).date()
