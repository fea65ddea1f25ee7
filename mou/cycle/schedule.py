"""When cycles open by themselves: an rrule per instrument from its cycle length.

A biennial rule needs DTSTART, or Prefect places runs in even years counted from 2020.
"""

from __future__ import annotations

import datetime as dt

from dateutil.relativedelta import relativedelta

from mou.catalogue.reference import InstrumentEntry, read_catalogue
from mou.errors import Refused
from mou.settings import Settings


def cycle_rrule(instrument: InstrumentEntry) -> str | None:
    """The RFC 5545 rule (with DTSTART) of the instrument's scheduled requests."""
    if instrument.first_request is None:
        return None
    start = instrument.first_request.strftime("%Y%m%dT090000")
    months = instrument.cycle_months
    if months % 12 == 0:
        rule = f"FREQ=YEARLY;INTERVAL={months // 12}"
    else:
        rule = f"FREQ=MONTHLY;INTERVAL={months}"
    return f"DTSTART:{start}\nRRULE:{rule}"


def period_before(run: dt.date, months: int) -> str:
    """The reporting period that ends before a request sent on ``run``: 2025-2026."""
    month_start = run.replace(day=1)  # the period covers whole months before the request
    first = month_start - relativedelta(months=months)
    last = month_start - dt.timedelta(days=1)
    return f"{first.year}-{last.year}"


def instrument_entry(settings: Settings, code: str) -> InstrumentEntry:
    for entry in read_catalogue(settings.catalogue_dir).instruments:
        if entry.code == code:
            return entry
    raise Refused(f"unknown instrument {code!r}")


def cycle_for_run(code: str, run: dt.date, settings: Settings) -> tuple[str, dt.date]:
    """(period, deadline) of the cycle a scheduled run on ``run`` opens."""
    entry = instrument_entry(settings, code)
    return period_before(run, entry.cycle_months), run + dt.timedelta(days=entry.response_days)
