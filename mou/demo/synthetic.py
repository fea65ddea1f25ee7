"""Synthetic filled returns: what a ministry officer would type into a template.

The answers come from the typist (``mou.demo.typist``) over the sample data
(``mou.demo.sample_data``, ``mou.demo.sample_texts``); this module spoils them with typical
errors, types them into a template's cells, and fetches the template a state received from the
database. Names, institutions and addresses are fictitious (``@example.org``).

Answer shapes (as ``fill_workbook`` takes them): a scalar is ``{key: value}``; a free table is
``{key: [{column: value}, ...]}``; a table whose rows come from a list (``row_source``) is
``{key: {row_key: {column: value}}}`` keyed by activity code or choice value.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils.cell import range_boundaries

from mou.demo.sample_data import PROFILES, STATE_SPECIES
from mou.demo.sample_texts import NO_DATE, NO_FIGURE, OFF_LIST
from mou.demo.typist import Answers, Typist
from mou.forms.spec import FieldSpec, FormSpec
from mou.i18n.languages import pick
from mou.settings import Settings
from mou.workbook.layout import ROW_KEY_COLUMNS

# (code, names by language) or the catalogue's (code, names, scientific name).
SpeciesEntry = tuple[Any, ...]


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------


def synthetic_answers(
    form: FormSpec,
    state_code: str,
    language: str,
    rng: random.Random,
    *,
    species: Sequence[SpeciesEntry],
    activities: Sequence[str],
    period_end: dt.date,
    submitted: dt.date | None = None,
    state_name: str | None = None,
) -> Answers:
    """A complete, valid return for one state, typed as an officer would in ``language``.

    ``species``: the instrument's species as (code, names by language[, scientific name]);
    ``activities``: the activity codes of the programme of work; ``submitted``: the date typed
    as the submission date (default: the period's end, or today if that is later than today).
    """
    names = {entry[0]: pick(entry[1], language) for entry in species}
    plausible = [c for c in STATE_SPECIES.get(state_code, ()) if c in names] or list(names)
    typist = Typist(
        form=form,
        state=state_code,
        language=language,
        rng=rng,
        species=names,
        plausible=plausible,
        activities=list(activities),
        period_end=period_end,
        submitted=submitted or min(period_end, dt.date.today()),
        profile=PROFILES.get((form.instrument, state_code), {}),
    )
    typist.setup(state_name or state_code)
    return typist.answers()


# --------------------------------------------------------------------------------------------
# Typical errors
# --------------------------------------------------------------------------------------------


def with_errors(
    form: FormSpec, answers: Mapping[str, Any], language: str, count: int = 2
) -> tuple[Answers, list[str]]:
    """A copy of ``answers`` with up to ``count`` typical errors; (answers, issue codes).

    In order of preference: words in a number cell ("нет данных": ``not_integer``), an
    impossible year (2125 for 2025: ``above_max``), words in a date cell (``not_date``),
    a value off the dropdown list (``unknown_choice``).
    """
    changed: Answers = {
        key: (
            [dict(r) for r in value]
            if isinstance(value, list)
            else {k: dict(v) for k, v in value.items()}
            if isinstance(value, dict)
            else value
        )
        for key, value in answers.items()
    }
    codes: list[str] = []

    def cells() -> list[tuple[FieldSpec, dict[str, Any], str]]:
        """(spec, holder, key) of every answered cell, table cells first."""
        found = []
        for spec in form.fields:
            value = changed.get(spec.key)
            if spec.is_table and value:
                rows = value if isinstance(value, list) else list(value.values())
                columns = {c.key: c for c in spec.columns}
                found += [(columns[k], r, k) for r in rows for k in r if k in columns]
        for spec in form.fields:
            if not spec.is_table and spec.key in changed:
                found.append((spec, changed, spec.key))
        return found

    def number(spec: FieldSpec, holder: dict[str, Any], key: str) -> str | None:
        if spec.type != "integer" or not isinstance(holder[key], int):
            return None
        holder[key] = pick(NO_FIGURE, language)
        return "not_integer"

    def year(spec: FieldSpec, holder: dict[str, Any], key: str) -> str | None:
        if spec.type != "year" or spec.max is None or not isinstance(holder[key], int):
            return None
        if isinstance(spec.max, int) and holder[key] + 100 <= spec.max:
            return None
        holder[key] += 100  # 2125 for 2025: one finger on the wrong key
        return "above_max"

    def date(spec: FieldSpec, holder: dict[str, Any], key: str) -> str | None:
        if spec.type != "date":
            return None
        holder[key] = pick(NO_DATE, language)
        return "not_date"

    def choice(spec: FieldSpec, holder: dict[str, Any], key: str) -> str | None:
        if spec.type != "choice":
            return None
        holder[key] = pick(OFF_LIST, language)
        return "unknown_choice"

    for kind in (number, year, date, choice):
        if len(codes) >= count:
            break
        for spec, holder, key in cells():
            code = kind(spec, holder, key)
            if code:
                codes.append(code)
                break
    return changed, codes


# --------------------------------------------------------------------------------------------
# Filling a template
# --------------------------------------------------------------------------------------------


def _destination(wb: Any, key: str) -> tuple[Any, int, int, int, int]:
    """(worksheet, min_col, min_row, max_col, max_row) of a workbook-level defined name."""
    defined = wb.defined_names.get(key)
    if defined is None:
        raise ValueError(f"the template has no defined name {key!r}")
    destinations = list(defined.destinations)
    if len(destinations) != 1:
        raise ValueError(f"defined name {key!r} does not point at one range")
    sheet, ref = destinations[0]
    min_col, min_row, max_col, max_row = range_boundaries(ref.replace("$", ""))
    return wb[sheet], min_col, min_row, max_col or min_col, max_row or min_row


def _cell_value(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)
    return value


def _row_code(form: FormSpec, spec: FieldSpec, row_key: str) -> str:
    """What the template shows in a listed row's code column (the reader's row key)."""
    if spec.row_source == "@activities":
        return row_key
    values = [c.value for c in form.choices[spec.row_source or ""]]
    if row_key not in values:
        raise ValueError(f"{spec.key}: {row_key!r} is not a row of {spec.row_source}")
    return str(values.index(row_key) + 1)


def fill_workbook(template: bytes, form: FormSpec, answers: Mapping[str, Any]) -> bytes:
    """The template with ``answers`` typed into the cells their defined names point at."""
    wb = load_workbook(io.BytesIO(template))
    specs = {spec.key: spec for spec in form.fields}
    unknown = sorted(set(answers) - set(specs))
    if unknown:
        raise ValueError(f"no such fields in {form.form_id}: {', '.join(unknown)}")
    for key, value in answers.items():
        spec = specs[key]
        ws, min_col, min_row, _, max_row = _destination(wb, key)
        if not spec.is_table:
            ws.cell(row=min_row, column=min_col, value=_cell_value(value))
            continue
        positions = {column.key: i for i, column in enumerate(spec.columns)}
        if spec.row_source:
            codes = {
                str(ws.cell(row=r, column=min_col).value or "").strip(): r
                for r in range(min_row, max_row + 1)
            }
            placed = []
            for row_key, cells in value.items():
                code = _row_code(form, spec, row_key)
                if code not in codes:
                    raise ValueError(f"{key}: the template has no row {code!r}")
                placed.append((codes[code], cells))
            first_input = min_col + ROW_KEY_COLUMNS
        else:
            if len(value) > max_row - min_row + 1:
                raise ValueError(f"{key}: {len(value)} rows do not fit the table")
            placed = [(min_row + i, cells) for i, cells in enumerate(value)]
            first_input = min_col
        for row, cells in placed:
            for column_key, cell_value in cells.items():
                if cell_value is None:
                    continue
                column = first_input + positions[column_key]
                ws.cell(row=row, column=column, value=_cell_value(cell_value))
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def fill_with_errors(
    template: bytes, form: FormSpec, answers: Mapping[str, Any], language: str, count: int = 2
) -> tuple[bytes, list[str]]:
    """The template filled with ``answers`` spoilt by typical errors; (bytes, issue codes)."""
    spoilt, codes = with_errors(form, answers, language, count)
    return fill_workbook(template, form, spoilt), codes


# --------------------------------------------------------------------------------------------
# From the database: the template a state received, filled
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticReturn:
    """A filled template (``data``), the answers typed into it and its language."""

    data: bytes
    answers: Answers
    language: str
    expected_errors: tuple[str, ...] = ()  # issue codes the reader must report


def synthetic_return(
    settings: Settings,
    cycle_id: int,
    state_code: str,
    rng: random.Random,
    *,
    language: str | None = None,
    submitted: dt.date | None = None,
    errors: int = 0,
) -> SyntheticReturn:
    """The state's template for the cycle (in its request's language unless given), filled.

    With ``errors`` > 0 the return carries that many typical errors (see ``with_errors``).
    """
    from sqlalchemy import select

    from mou.cycle.context import activity_codes, species_of, template_for
    from mou.cycle.opening import get_cycle, state_by_code
    from mou.forms import load_form
    from mou.store import models as m
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        cycle = get_cycle(session, cycle_id)
        state = state_by_code(session, state_code)
        if language is None:
            request = session.scalars(
                select(m.ReportRequest).filter_by(cycle_id=cycle.id, state_id=state.id)
            ).one_or_none()
            language = request.language if request else state.language
        template = template_for(session, settings, cycle.id, state.code, language)
        form = load_form(settings.forms_dir, cycle.instrument.code)
        answers = synthetic_answers(
            form,
            state.code,
            language,
            rng,
            species=species_of(cycle.instrument),
            activities=activity_codes(session, cycle.instrument),
            period_end=cycle.period_end,
            submitted=submitted,
            state_name=pick(state.name, language),
        )
    if errors:
        data, codes = fill_with_errors(template, form, answers, language, errors)
        return SyntheticReturn(data, answers, language, tuple(codes))
    return SyntheticReturn(fill_workbook(template, form, answers), answers, language)
