"""What forms need from the database: catalogue lists, carried-forward answers, templates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.cycle.opening import get_cycle, state_by_code
from mou.errors import Refused
from mou.forms import FormSpec, load_form
from mou.i18n.languages import pick
from mou.settings import Settings
from mou.store import models as m
from mou.workbook.builder import TemplateContext, build_template
from mou.workbook.identity import TemplateIdentity
from mou.workbook.validate import FormContext


def species_of(instrument: m.Instrument) -> list[tuple[str, dict[str, str], str]]:
    return [(s.code, s.name, s.scientific_name) for s in instrument.species]


def activities_of(session: Session, instrument: m.Instrument) -> list[m.Activity]:
    return list(
        session.scalars(
            select(m.Activity).filter_by(instrument_id=instrument.id).order_by(m.Activity.position)
        )
    )


def activity_codes(session: Session, instrument: m.Instrument) -> list[str]:
    """The programme's codes in order (columns only: validation runs once per return)."""
    return list(
        session.scalars(
            select(m.Activity.code)
            .filter_by(instrument_id=instrument.id)
            .order_by(m.Activity.position)
        )
    )


def form_context(session: Session, settings: Settings, cycle: m.ReportingCycle) -> FormContext:
    instrument = cycle.instrument
    return FormContext(
        form=load_form(settings.forms_dir, instrument.code),
        period_start=cycle.period_start,
        period_end=cycle.period_end,
        species=species_of(instrument),
        activities=activity_codes(session, instrument),
    )


def latest_accepted(
    session: Session, instrument_id: int, state_id: int, before: m.ReportingCycle | None = None
) -> m.Submission | None:
    """The state's newest accepted, not superseded return (optionally from an earlier cycle).

    Across cycles, the same return ``mou.cycle.standing`` counts within one: the latest cycle
    with such a return, and in it the newest received.
    """
    query = (
        select(m.Submission)
        .join(m.ReportingCycle, m.Submission.cycle_id == m.ReportingCycle.id)
        .where(
            m.ReportingCycle.instrument_id == instrument_id,
            m.Submission.state_id == state_id,
            m.Submission.status == "accepted",
            m.Submission.superseded_by_id.is_(None),
        )
        .order_by(
            m.ReportingCycle.period_end.desc(),
            m.Submission.received_at.desc(),
            m.Submission.id.desc(),
        )
    )
    if before is not None:
        query = query.where(m.ReportingCycle.period_end < before.period_start)
    return session.scalars(query.limit(1)).first()


def carried_forward_answers(form: FormSpec, submission: m.Submission) -> dict[str, Any]:
    """The answers of carry-forward fields, shaped as the template builder's ``prefill``."""
    keys = {f.key: f for f in form.fields if f.carry_forward}
    prefill: dict[str, Any] = {}
    for answer in submission.answers:
        spec = keys.get(answer.field_key)
        if spec is None:
            continue
        if spec.is_table:
            row = prefill.setdefault(answer.field_key, {}).setdefault(answer.row_key, {})
            row[answer.column_key] = answer.value
        else:
            prefill[answer.field_key] = answer.value
    return prefill


def template_for(
    session: Session,
    settings: Settings,
    cycle_id: int,
    state_code: str,
    language: str,
    *,
    instrument_code: str | None = None,
) -> bytes:
    """The workbook a state fills for a cycle, pre-filled from its last accepted report.

    ``instrument_code``, when the caller names one, must be the cycle's.
    """
    cycle = get_cycle(session, cycle_id)
    state = state_by_code(session, state_code)
    instrument = cycle.instrument
    if instrument_code is not None and instrument_code != instrument.code:
        raise Refused(
            f"cycle {cycle.id} is a {instrument.code} cycle ({cycle.period}), not "
            f"{instrument_code}: use `mou template {instrument.code} {state.code} --cycle "
            f"{cycle.id}`, or the cycle of {instrument_code}"
        )
    if language not in settings.languages:
        raise Refused(f"language {language!r} is not one of {', '.join(settings.languages)}")
    request = session.scalars(
        select(m.ReportRequest).filter_by(cycle_id=cycle.id, state_id=state.id)
    ).one_or_none()
    if request is None:
        raise Refused(f"{state.code} has no request in cycle {cycle.id} ({cycle.period})")
    form = load_form(settings.forms_dir, instrument.code)
    previous = latest_accepted(session, instrument.id, state.id, before=cycle)
    context = TemplateContext(
        form=form,
        identity=TemplateIdentity(
            instrument.code, cycle.form_version, cycle.id, state.code, language
        ),
        instrument_name=pick(instrument.short_name, language),
        state_name=pick(state.name, language),
        period=cycle.period,
        period_start=cycle.period_start,
        period_end=cycle.period_end,
        deadline=cycle.deadline,
        species=[(code, names) for code, names, _ in species_of(instrument)],
        activities=[(a.code, a.text) for a in activities_of(session, instrument)],
        prefill=carried_forward_answers(form, previous) if previous else {},
        prefill_period=previous.cycle.period if previous and previous.cycle else None,
    )
    return build_template(context, settings)
