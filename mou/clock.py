"""The service's one notion of time: aware datetimes in UTC."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def today() -> dt.date:
    """Today's date in UTC: the date of a request made now (tests set it through ``utcnow``)."""
    return utcnow().date()


def as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """``moment`` in UTC; a naive value is taken to be UTC already (how the service writes)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)
