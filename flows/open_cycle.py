"""open-cycle: open a reporting cycle and dispatch every state's request (also biennial)."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from mou.cycle.schedule import cycle_for_run
from mou.service.protocol import open_and_dispatch
from mou.service.runtime import scheduled_day
from mou.settings import get_settings


@flow(name="open-cycle", log_prints=True)
def open_cycle_flow(
    instrument: str,
    period: str | None = None,
    deadline: dt.date | None = None,
    states: list[str] | None = None,
) -> int:
    """Open ``instrument``'s cycle; without a period, the one that ended before today."""
    settings = get_settings()
    day = scheduled_day()
    if period is None or deadline is None:
        period, deadline = cycle_for_run(instrument, day, settings)
    logger = get_run_logger()
    opening = open_and_dispatch(
        settings,
        instrument,
        period,
        deadline,
        states,
        progress=lambda done, total, state: logger.info("request %s/%s: %s", done, total, state),
        today=day,
    )
    create_table_artifact(
        key=f"cycle-{opening.cycle_id}-requests",
        table=[{"state": s, "request": "dispatched now"} for s in opening.dispatched]
        + [{"state": s, "request": "dispatched before"} for s in opening.already],
        description=f"{instrument} {period}: requests (deadline {opening.deadline})",
    )
    return opening.cycle_id
