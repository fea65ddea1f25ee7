"""Synthetic returns: typed as an officer would, accepted by the real reader, spoilt on demand.

Every return goes through the protocol (``receive_file`` + ``process_submission``), so the
reader, the validator and the receipt see exactly what a ministry would send.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import re
from collections.abc import Iterator
from functools import cache

import pytest
from openpyxl import load_workbook
from openpyxl.utils.cell import range_boundaries
from sqlalchemy import select

from mou.catalogue.reference import read_catalogue
from mou.demo.sample_data import PROFILES, STATE_SPECIES
from mou.demo.synthetic import (
    fill_workbook,
    synthetic_answers,
    synthetic_return,
    with_errors,
)
from mou.forms import load_form
from mou.service.protocol import process_submission, receive_file
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from mou.workbook.layout import ROW_KEY_COLUMNS
from tests.test_workbook import Env, open_test_cycles

BUKHARA_STATES = ["AF", "KZ", "TJ", "TM", "UZ"]
CAMI_STATES = [("CN", "en"), ("KZ", "ru"), ("IR", "fr")]
PERIOD_END = dt.date(2026, 12, 31)
FORMS = Settings().forms_dir


World = Env
open_cycles = open_test_cycles


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One SQLite database for the many returns (the reader is engine-independent)."""
    yield open_cycles(Settings(var_dir=tmp_path_factory.mktemp("synthetic") / "var"))


def submit(settings: Settings, data: bytes, state: str):
    submission_id, created = receive_file(
        settings, data, filename=f"{state}.xlsx", sender=f"focal.point.{state.lower()}@example.org"
    )
    assert created
    return process_submission(settings, submission_id)


def stored(settings: Settings, submission_id: int) -> dict[tuple[str, str, str], object]:
    with session_scope(settings) as session:
        rows = session.scalars(select(m.Answer).filter_by(submission_id=submission_id)).all()
        return {(a.field_key, a.row_key, a.column_key): a.value for a in rows}


def site_counts(answers: dict) -> dict[str, int]:
    return {
        row: v
        for (key, row, column), v in answers.items()
        if (key, column)
        == (
            "population_sites",
            "count",
        )
    }


# -- through the reader ----------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("state", BUKHARA_STATES)
def test_bukhara_return_is_accepted_with_the_sum_as_national_total(
    world: World, state: str, language: str
) -> None:
    made = synthetic_return(
        world.settings, world.bukhara, state, random.Random(state), language=language
    )
    outcome = submit(world.settings, made.data, state)

    assert outcome.status == "accepted", [i.message for i in outcome.issues]
    assert outcome.issues == []  # not even a warning: what an officer careful with the form sends
    answers = stored(world.settings, outcome.submission_id)
    counts = site_counts(answers)
    assert answers[("national_total", "", "")] == sum(counts.values())
    figures = [site["count"] for site in PROFILES[("bukhara-deer", state)]["population_sites"]]
    assert sorted(counts.values()) == sorted(figures)
    years = [
        v
        for (key, _, col), v in answers.items()
        if (key, col) == ("population_sites", "count_year")
    ]
    assert years and all(2025 <= year <= 2026 for year in years)
    assert answers[("mou_signed", "", "")] is (state != "AF")
    assert answers[("focal_point_email", "", "")].endswith("@example.org")
    institution = answers[("reporting_institution", "", "")]
    assert bool(re.search("[а-я]", institution)) is (language == "ru")


@pytest.mark.parametrize(("state", "language"), CAMI_STATES)
def test_cami_return_is_accepted_with_many_activities_and_plausible_species(
    world: World, state: str, language: str
) -> None:
    made = synthetic_return(
        world.settings, world.cami, state, random.Random(state), language=language
    )
    outcome = submit(world.settings, made.data, state)

    assert outcome.status == "accepted", [i.message for i in outcome.issues]
    assert outcome.issues == []
    answers = stored(world.settings, outcome.submission_id)
    statuses = {row for (key, row, col) in answers if (key, col) == ("activities", "status")}
    assert len(statuses) >= 30  # of the 121 activities
    species = {
        code
        for (key, _, col), value in answers.items()
        if (key, col) == ("activities", "species")
        for code in value
    }
    assert species and species <= set(STATE_SPECIES[state])
    narratives = [
        v for (key, _, col), v in answers.items() if (key, col) == ("activities", "narrative")
    ]
    assert narratives and all(len(n) <= 200 for n in narratives)
    if language == "ru":
        assert all(re.search("[а-я]", n) for n in narratives)


def test_cami_return_with_errors_is_refused_with_its_codes(world: World) -> None:
    made = synthetic_return(world.settings, world.cami, "MN", random.Random(1), errors=2)
    outcome = submit(world.settings, made.data, "MN")
    assert outcome.status == "rejected"
    assert sorted(i.code for i in outcome.issues) == sorted(made.expected_errors)
    assert set(made.expected_errors) == {"not_date", "unknown_choice"}


def test_bukhara_return_with_errors_is_refused_then_the_correction_accepted(
    settings: Settings,
) -> None:
    """On SQLite and PostgreSQL: refused with the expected codes, nothing stored; corrected."""
    cycle = open_cycles(settings).bukhara
    spoilt = synthetic_return(settings, cycle, "KZ", random.Random(7), language="ru", errors=2)
    refused = submit(settings, spoilt.data, "KZ")

    assert refused.status == "rejected" and refused.version is None  # only accepted count
    assert sorted(i.code for i in refused.issues) == ["above_max", "not_integer"]
    assert sorted(spoilt.expected_errors) == ["above_max", "not_integer"]
    messages = " ".join(i.message for i in refused.issues)
    assert "нет данных" in messages  # the words typed into the count cell, quoted back
    assert stored(settings, refused.submission_id) == {}

    corrected = synthetic_return(settings, cycle, "KZ", random.Random(7), language="ru")
    accepted = submit(settings, corrected.data, "KZ")
    assert accepted.status == "accepted" and accepted.version == 1  # the refused took none
    answers = stored(settings, accepted.submission_id)
    assert answers[("national_total", "", "")] == sum(site_counts(answers).values()) == 364


# -- the generator on its own ----------------------------------------------------------------


@cache
def species_list() -> list[tuple[str, dict[str, str]]]:
    catalogue = read_catalogue(Settings().catalogue_dir)
    return [(s.code, dict(s.name)) for s in catalogue.species]


@cache
def activity_codes() -> list[str]:
    catalogue = read_catalogue(Settings().catalogue_dir)
    return [a.code for p in catalogue.programmes for a in p.activities]


def answers_for(instrument: str, state: str, language: str, seed: int = 3) -> dict:
    form = load_form(FORMS, instrument)
    species = species_list() if instrument == "cami" else species_list()[:1]
    return synthetic_answers(
        form,
        state,
        language,
        random.Random(seed),
        species=species,
        activities=activity_codes(),
        period_end=PERIOD_END,
        submitted=dt.date(2026, 11, 20),
    )


def test_answers_are_typed_as_an_officer_types_them() -> None:
    form = load_form(FORMS, "bukhara-deer")
    answers = answers_for("bukhara-deer", "UZ", "ru")
    trends = {c.label.ru for c in form.choices["trend"]}
    assert answers["national_trend"] in trends  # a label in the template's language
    assert answers["mou_signed"] == "Да"
    assert answers["submission_date"] == dt.datetime(2026, 11, 20)
    assert answers["mou_signature_date"] == dt.datetime(2002, 9, 18)
    sites = answers["population_sites"]
    assert all(isinstance(row["count"], int) for row in sites)
    assert answers["national_total"] == sum(row["count"] for row in sites) == 1776
    threats = answers["threats"]  # rows keyed by the choice values of the row list
    assert set(threats) <= {c.value for c in form.choices["threat"]}
    assert all(
        not isinstance(v, str) or not v.startswith(("=", "+", "-", "@")) for v in answers.values()
    )


def test_same_seed_same_answers_and_other_seed_other_texts() -> None:
    assert answers_for("cami", "KZ", "ru", 5) == answers_for("cami", "KZ", "ru", 5)
    assert answers_for("cami", "KZ", "ru", 5) != answers_for("cami", "KZ", "ru", 6)


def test_errors_are_typical_and_leave_the_original_alone() -> None:
    form = load_form(FORMS, "bukhara-deer")
    answers = answers_for("bukhara-deer", "TJ", "en")
    spoilt, codes = with_errors(form, answers, "en")
    assert codes == ["not_integer", "above_max"]
    assert spoilt["population_sites"][0]["count"] == "no data"
    assert spoilt["population_sites"][0]["count_year"] > PERIOD_END.year
    assert isinstance(answers["population_sites"][0]["count"], int)


def test_fill_workbook_places_keyed_rows_by_their_code(world: World) -> None:
    from mou.cycle.context import template_for

    with session_scope(world.settings) as session:
        template = template_for(session, world.settings, world.cami, "KG", "en")
    form = load_form(FORMS, "cami")
    data = fill_workbook(template, form, {"activities": {"2.5.3": {"narrative": "Patrols."}}})
    wb = load_workbook(io.BytesIO(data))
    sheet, ref = next(iter(wb.defined_names["activities"].destinations))
    min_col, min_row, _, max_row = range_boundaries(ref.replace("$", ""))
    ws = wb[sheet]
    [row] = [r for r in range(min_row, max_row + 1) if ws.cell(r, min_col).value == "2.5.3"]
    narrative = (
        min_col
        + ROW_KEY_COLUMNS
        + [c.key for c in form.field("activities").columns].index("narrative")
    )
    assert ws.cell(row, narrative).value == "Patrols."

    with pytest.raises(ValueError, match="no such fields"):
        fill_workbook(template, form, {"not_a_field": 1})
    with pytest.raises(ValueError, match="no row"):
        fill_workbook(template, form, {"activities": {"9.9.9": {"narrative": "x"}}})
