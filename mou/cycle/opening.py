"""Reporting cycles and their requests: the protocol's first steps as plain functions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou import clock
from mou.errors import Refused
from mou.forms import load_form
from mou.settings import Settings
from mou.store import models as m

_PERIOD = re.compile(r"^(\d{4})-(\d{4})$")


@dataclass(frozen=True)
class OpenedCycle:
    cycle: m.ReportingCycle
    created: bool
    requests: list[m.ReportRequest]


def instrument_by_code(session: Session, code: str) -> m.Instrument:
    instrument = session.scalars(select(m.Instrument).filter_by(code=code)).one_or_none()
    if instrument is None:
        known = ", ".join(session.scalars(select(m.Instrument.code)).all())
        raise Refused(f"unknown instrument {code!r} (known: {known})")
    return instrument


def state_by_code(session: Session, code: str) -> m.RangeState:
    state = session.scalars(select(m.RangeState).filter_by(code=code.upper())).one_or_none()
    if state is None:
        raise Refused(f"unknown range state {code!r}: use an ISO 3166-1 alpha-2 code such as KZ")
    return state


def parse_period(period: str) -> tuple[dt.date, dt.date]:
    match = _PERIOD.match(period)
    if not match or int(match.group(2)) < int(match.group(1)):
        raise Refused(f"period {period!r} must look like 2025-2026")
    return dt.date(int(match.group(1)), 1, 1), dt.date(int(match.group(2)), 12, 31)


def request_reference(instrument: str, period: str, state: str) -> str:
    """The letter's reference number, e.g. CMS/BD-MOU/2025-2026/KZ."""
    short = {"bukhara-deer": "BD-MOU", "cami": "CAMI"}.get(instrument, instrument.upper())
    return f"CMS/{short}/{period}/{state}"


def open_cycle(
    session: Session,
    settings: Settings,
    instrument_code: str,
    period: str,
    deadline: dt.date,
    states: Sequence[str] | None = None,
    today: dt.date | None = None,
) -> OpenedCycle:
    """Create the cycle and one request per participating state; opening again adds nothing.

    ``today`` is the date of the request (default: today in UTC, from ``mou.clock``). A new
    cycle needs a period that has begun and a deadline not before the request. Opening a cycle
    that exists with another deadline, or with states it does not ask, is refused (nothing is
    changed): the deadline is changed by ``mou cycle extend``, and a cycle's states are the
    ones it was opened with. Without ``states`` an existing cycle keeps its own.
    """
    instrument = instrument_by_code(session, instrument_code)
    start, end = parse_period(period)
    if deadline <= end - dt.timedelta(days=366 * 3):
        raise Refused(f"deadline {deadline} is long before the period {period} ends")
    participants = {p.state.code: p.state for p in instrument.participations}
    wanted = [s.upper() for s in states] if states else None
    unknown = [s for s in wanted or () if s not in participants]
    if unknown:
        raise Refused(
            f"{', '.join(unknown)} not a range state of {instrument_code} "
            f"(range states: {', '.join(sorted(participants))})"
        )
    cycle = find_cycle(session, instrument.id, period)
    created = cycle is None
    if cycle is None:
        _check_new_cycle(period, start, deadline, today or clock.today())
        form = load_form(settings.forms_dir, instrument_code)
        cycle = m.ReportingCycle(
            instrument_id=instrument.id,
            period=period,
            period_start=start,
            period_end=end,
            deadline=deadline,
            form_version=form.version,
            status="open",
        )
        session.add(cycle)
        session.flush()
        for code in wanted or sorted(participants):
            state = participants[code]
            session.add(
                m.ReportRequest(
                    cycle_id=cycle.id,
                    state_id=state.id,
                    language=_request_language(instrument, state),
                    reference=request_reference(instrument_code, period, code),
                )
            )
        session.flush()
    requests = list(
        session.scalars(
            select(m.ReportRequest).filter_by(cycle_id=cycle.id).order_by(m.ReportRequest.id)
        )
    )
    if not created:
        if cycle.status == "closed":
            raise Refused(
                f"cycle {cycle.id} ({instrument_code} {period}) is closed: it sends no more "
                "requests (`mou cycle list` shows every cycle)"
            )
        _check_same_cycle(cycle, instrument_code, deadline, wanted, requests)
    return OpenedCycle(cycle=cycle, created=created, requests=requests)


def find_cycle(session: Session, instrument_id: int, period: str) -> m.ReportingCycle | None:
    """The instrument's cycle for ``period``, if it was opened."""
    return session.scalars(
        select(m.ReportingCycle).filter_by(instrument_id=instrument_id, period=period)
    ).one_or_none()


def _check_new_cycle(period: str, start: dt.date, deadline: dt.date, today: dt.date) -> None:
    if start > today:
        raise Refused(
            f"period {period} has not started (it starts on {start}, today is {today}): a cycle "
            "asks for reports on a period that has begun; open it once the period starts"
        )
    if deadline < today:
        raise Refused(
            f"deadline {deadline} is before today ({today}), the date of the requests: "
            "choose a later deadline"
        )


def _check_same_cycle(
    cycle: m.ReportingCycle,
    instrument_code: str,
    deadline: dt.date,
    wanted: Sequence[str] | None,
    requests: Sequence[m.ReportRequest],
) -> None:
    """Refuse opening an existing cycle with another deadline or other states (see open_cycle)."""
    name = f"cycle {cycle.id} ({instrument_code} {cycle.period})"
    if deadline != cycle.deadline:
        raise Refused(
            f"{name} is already open with the deadline {cycle.deadline}, not {deadline}; "
            f"nothing was changed or sent. To change it: mou cycle extend {cycle.id} "
            f"--deadline {deadline} --reason TEXT"
        )
    asked = [r.state.code for r in requests]
    others = [code for code in wanted or () if code not in asked]
    if others:
        raise Refused(
            f"{name} does not ask {', '.join(others)}: its states are the ones it was opened "
            f"with ({', '.join(sorted(asked))}); nothing was changed or sent. To send its "
            f"requests again, open it without --states or with --states {','.join(sorted(asked))}"
        )


def _request_language(instrument: m.Instrument, state: m.RangeState) -> str:
    """The state's language if the instrument works in it, else English."""
    return state.language if state.language in instrument.languages else "en"


def get_cycle(session: Session, cycle_id: int) -> m.ReportingCycle:
    cycle = session.get(m.ReportingCycle, cycle_id)
    if cycle is None:
        raise Refused(f"no reporting cycle with id {cycle_id}")
    return cycle
