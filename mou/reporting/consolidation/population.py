"""The population section: counted sites and national totals of each state, and the change
since the previous cycle of the same instrument that has accepted data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.cycle.standing import Standing, cycle_standings
from mou.forms.spec import FormSpec
from mou.reporting.consolidation.labels import Labels
from mou.reporting.consolidation.model import (
    PopulationSite,
    PopulationSummary,
    StatePopulation,
    StateReturn,
)
from mou.store import models as m

# Field keys with a fixed meaning in the population section (Bukhara Deer MoU form).
POPULATION_TABLE = "population_sites"
NATIONAL_TOTAL = "national_total"
NATIONAL_TREND = "national_trend"


def as_int(value: Any) -> int | None:
    """A whole number as stored (an int, or a float without fraction); anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _site_rows(returned: StateReturn, form: FormSpec, labels: Labels) -> list[PopulationSite]:
    spec = form.field(POPULATION_TABLE)
    columns = {c.key: c for c in spec.columns}
    rows = returned.table(POPULATION_TABLE)
    sites = []
    for row_key in sorted(rows, key=lambda r: labels.row_sort_key(spec, r)):
        row = rows[row_key]
        method = row.get("count_method")
        trend = row.get("trend")
        method_choices = columns["count_method"].choices if "count_method" in columns else None
        trend_choices = columns["trend"].choices if "trend" in columns else None
        sites.append(
            PopulationSite(
                row=row_key,
                site=str(row.get("site") or ""),
                protected_area=row.get("protected_area") or None,
                year=as_int(row.get("count_year")),
                count=as_int(row.get("count")),
                method=method,
                method_label=labels.choice(method_choices, method),
                trend=trend,
                trend_label=labels.choice(trend_choices, trend),
            )
        )
    return sites


def _national_totals(session: Session, standings: Mapping[int, Standing]) -> dict[str, int]:
    """National totals as reported, by state code, from a cycle's counted returns."""
    counted = [s.counted.id for s in standings.values() if s.counted is not None]
    if not counted:
        return {}
    totals: dict[str, int] = {}
    rows = session.execute(
        select(m.RangeState.code, m.Answer.value)
        .join(m.Submission, m.Answer.submission_id == m.Submission.id)
        .join(m.RangeState, m.Submission.state_id == m.RangeState.id)
        .where(
            m.Answer.submission_id.in_(counted),
            m.Answer.field_key == NATIONAL_TOTAL,
            m.Answer.row_key == "",
            m.Answer.column_key == "",
        )
    ).all()
    for code, value in rows:
        number = as_int(value)
        if number is not None:
            totals[code] = number
    return totals


def _previous_cycle(
    session: Session, cycle: m.ReportingCycle
) -> tuple[m.ReportingCycle, dict[int, Standing]] | None:
    """The latest earlier cycle of the instrument in which some return counts, with its
    standings (the same rule as this cycle's decides what counts there)."""
    earlier = session.scalars(
        select(m.ReportingCycle)
        .where(
            m.ReportingCycle.instrument_id == cycle.instrument_id,
            m.ReportingCycle.period_start < cycle.period_start,
        )
        .order_by(m.ReportingCycle.period_start.desc(), m.ReportingCycle.id.desc())
    ).all()
    for candidate in earlier:
        standings = cycle_standings(session, candidate)
        if any(s.counted is not None for s in standings.values()):
            return candidate, standings
    return None


def population(
    session: Session,
    cycle: m.ReportingCycle,
    returns: Sequence[StateReturn],
    form: FormSpec,
    labels: Labels,
) -> PopulationSummary | None:
    """The population section of the cycle; None when the form has no population fields."""
    keys = {f.key for f in form.fields}
    if POPULATION_TABLE not in keys and NATIONAL_TOTAL not in keys:
        return None
    found = _previous_cycle(session, cycle)
    previous = found[0] if found else None
    previous_totals = _national_totals(session, found[1]) if found else {}
    if not previous_totals:
        previous = None  # accepted returns without national totals give nothing to compare
    trend_choices = form.field(NATIONAL_TREND).choices if NATIONAL_TREND in keys else None
    states = []
    for returned in returns:
        sites = _site_rows(returned, form, labels) if POPULATION_TABLE in keys else []
        total = as_int(returned.value(NATIONAL_TOTAL))
        trend = returned.value(NATIONAL_TREND)
        before = previous_totals.get(returned.state.code)
        states.append(
            StatePopulation(
                state=returned.state,
                sites=tuple(sites),
                sites_total=sum(s.count or 0 for s in sites),
                national_total=total,
                national_trend=trend if isinstance(trend, str) else None,
                national_trend_label=labels.choice(trend_choices, trend),
                previous_total=before,
                change=total - before if total is not None and before is not None else None,
            )
        )
    reported = {s.state.code: s.national_total for s in states if s.national_total is not None}
    comparable = tuple(code for code in reported if code in previous_totals)
    has_previous = previous is not None and bool(previous_totals)
    previous_total = sum(previous_totals.values()) if has_previous else None
    comparable_previous = sum(previous_totals[c] for c in comparable) if has_previous else None
    reported_total = sum(reported.values())
    return PopulationSummary(
        states=tuple(states),
        reported_total=reported_total,
        sites_total=sum(s.sites_total for s in states),
        previous_cycle_id=previous.id if previous else None,
        previous_period=previous.period if previous else None,
        previous_total=previous_total,
        change=reported_total - previous_total if previous_total is not None else None,
        comparable_states=comparable,
        comparable_previous_total=comparable_previous,
        comparable_change=(
            sum(reported[c] for c in comparable) - comparable_previous
            if comparable_previous is not None
            else None
        ),
        new_states=tuple(c for c in reported if has_previous and c not in previous_totals),
        missing_states=tuple(code for code in sorted(previous_totals) if code not in reported),
    )
