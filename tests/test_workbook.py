"""Templates and the reader: round trips through LibreOffice, moved blocks, identity checks."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from mou.catalogue.bootstrap import prepare_database
from mou.cycle.context import form_context, template_for
from mou.cycle.opening import open_cycle
from mou.forms import load_form
from mou.i18n.texts import Messages
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from mou.workbook.extract import Limits, extract
from mou.workbook.validate import validate
from tests.workbooks import fill, libreoffice_convert, soffice, submit_file

BUKHARA_STATES = ["AF", "KZ", "TJ", "TM", "UZ"]


@dataclass
class Env:
    settings: Settings
    bukhara: int
    cami: int


KEYED_TABLES = {"threats", "action_plan_implementation"}


def open_test_cycles(settings: Settings) -> Env:
    prepare_database(settings)
    with session_scope(settings) as session:
        bukhara = open_cycle(session, settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31))
        cami = open_cycle(session, settings, "cami", "2024-2026", dt.date(2027, 6, 30))
        return Env(settings, bukhara.cycle.id, cami.cycle.id)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("forms")
    yield open_test_cycles(Settings(var_dir=root / "var"))


def template(env: Env, state: str, language: str = "en", instrument: str = "bukhara-deer") -> bytes:
    cycle = env.bukhara if instrument == "bukhara-deer" else env.cami
    with session_scope(env.settings) as session:
        return template_for(session, env.settings, cycle, state, language)


def bukhara_answers(language: str = "en", total: int = 1776) -> dict:
    """A complete, valid return (Uzbekistan's 2023 census figures) typed as labels."""
    form = load_form(Path("forms"), "bukhara-deer")

    def label(choice_list: str, value: str) -> str:
        return next(c.label(language) for c in form.choices[choice_list] if c.value == value)

    return {
        "reporting_institution": "Ministry of Ecology, Environmental Protection and Climate Change",
        "submission_date": dt.datetime(2026, 11, 20),
        "focal_point_email": "focal.point.uz@example.org",
        "population_sites": [
            [
                "Lower Amudarya Biosphere Reserve",
                "LABR",
                2023,
                1475,
                label("census_method", "ground_count"),
                label("trend", "increasing"),
            ],
            ["Kyzylkum Reserve", None, 2023, 186, None, label("trend", "stable")],
            ["Zarafshan National Nature Park", None, 2023, "105", None, None],
            ["Khorezm National Nature Park", None, "2023", 10, None, None],
        ],
        "national_total": total,
        "national_trend": label("trend", "increasing"),
        "threats": {0: [label("severity", "high"), "Ranger patrols doubled"]},
        "action_plan_implementation": {
            0: [label("activity_status", "in_progress"), "Reintroduction to Khorezm"]
        },
        "mou_signed": label_yes(language),
    }


def label_yes(language: str) -> str:
    return {"en": "Yes", "ru": "Да", "fr": "Oui"}[language]


def answers_of(settings: Settings, submission_id: int) -> dict:
    with session_scope(settings) as session:
        rows = session.scalars(select(m.Answer).filter_by(submission_id=submission_id)).all()
        return {(a.field_key, a.row_key, a.column_key): a.value for a in rows}


def submit(env: Env, data: bytes, **kwargs):
    outcome, _ = submit_file(env.settings, data, filename="return.xlsx", **kwargs)
    return outcome


def codes(outcome) -> list[str]:
    return [issue.code for issue in outcome.issues]


# -- building -------------------------------------------------------------------------------


def test_template_names_every_field_and_protects_labels(env: Env) -> None:
    form = load_form(env.settings.forms_dir, "bukhara-deer")
    wb = load_workbook(io.BytesIO(template(env, "KZ", "ru")))
    assert {f.key for f in form.fields} <= set(wb.defined_names)
    assert wb["_mou_meta"].sheet_state == "veryHidden"
    assert wb["_mou_lists"].sheet_state == "hidden"
    assert wb.sheetnames[0] == "Инструкции"
    sheet, ref = next(iter(wb.defined_names["national_total"].destinations))
    ws = wb[sheet]
    cell = ws[ref.replace("$", "")]
    assert ws.protection.sheet and not cell.protection.locked
    assert ws.cell(row=cell.row, column=1).protection.locked
    dropdowns = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert dropdowns and all(len(dv.formula1) < 255 for dv in dropdowns)
    assert str(ws.page_setup.paperSize) == ws.PAPERSIZE_A4


def test_cami_template_lists_all_121_activities(env: Env) -> None:
    wb = load_workbook(io.BytesIO(template(env, "MN", "en", "cami")))
    sheet, ref = next(iter(wb.defined_names["activities"].destinations))
    rows = list(wb[sheet][ref.replace("$", "")])
    assert len(rows) == 121
    assert rows[0][0].value == "1.1.1" and rows[-1][0].value == "4.3.1"


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", BUKHARA_STATES)
@pytest.mark.parametrize("language", ["en", "ru"])
def test_return_saved_by_libreoffice_reads_back_identical(env: Env, state: str, language: str):
    soffice()  # skip (or fail in CI) before a return is recorded that other tests could meet
    filled = fill(
        template(env, state, language),
        bukhara_answers(language),
        keyed={"threats", "action_plan_implementation"},
    )
    direct = submit(env, filled)
    assert direct.status == "accepted", codes(direct)
    resaved = libreoffice_convert(filled, ".xlsx", "xlsx")
    assert resaved != filled
    through_libreoffice = submit(env, resaved)
    assert through_libreoffice.status == "accepted", [i.message for i in through_libreoffice.issues]
    assert answers_of(env.settings, direct.submission_id) == answers_of(
        env.settings, through_libreoffice.submission_id
    )
    answers = answers_of(env.settings, direct.submission_id)
    assert answers[("population_sites", "1", "count")] == 1475
    assert answers[("population_sites", "3", "count")] == 105
    assert answers[("national_trend", "", "")] == "increasing"
    assert answers[("threats", "poaching", "severity")] == "high"
    assert answers[("submission_date", "", "")] == "2026-11-20"
    assert through_libreoffice.version == direct.version + 1
    assert through_libreoffice.superseded_id == direct.submission_id


def test_renamed_sheets_and_inserted_rows_are_read_by_name(env: Env) -> None:
    filled = fill(
        template(env, "TJ"), bukhara_answers(), keyed={"threats", "action_plan_implementation"}
    )
    wb = load_workbook(io.BytesIO(filled))
    population = next(ws for ws in wb.worksheets if ws.title.startswith("3."))
    population.title = "Populations (edited)"
    population.insert_rows(1, amount=4)  # openpyxl does not move names: move them as Excel does
    for defined in list(wb.defined_names.values()):
        if "3. Population" in defined.attr_text:
            sheet_ref = defined.attr_text.split("!")[1]

            moved = re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + 4}", sheet_ref)
            defined.attr_text = f"'Populations (edited)'!{moved}"
    wb.worksheets[1].title = "General"
    for defined in wb.defined_names.values():
        defined.attr_text = defined.attr_text.replace("'1. General information'", "General")
    buffer = io.BytesIO()
    wb.save(buffer)
    outcome = submit(env, buffer.getvalue())
    assert outcome.status == "accepted", [i.message for i in outcome.issues]
    answers = answers_of(env.settings, outcome.submission_id)
    assert answers[("population_sites", "1", "count")] == 1475
    assert answers[("reporting_institution", "", "")].startswith("Ministry of Ecology")


def test_typed_numbers_and_dates_as_people_type_them(env: Env) -> None:
    answers = bukhara_answers()
    answers["national_total"] = "1 776"
    answers["submission_date"] = "20.11.2026"
    answers["population_sites"][0][3] = "1,475"
    answers["population_sites"][1][3] = "186.0"
    outcome = submit(
        env, fill(template(env, "TM"), answers, keyed={"threats", "action_plan_implementation"})
    )
    assert outcome.status == "accepted", [i.message for i in outcome.issues]
    stored = answers_of(env.settings, outcome.submission_id)
    assert stored[("national_total", "", "")] == 1776
    assert stored[("population_sites", "1", "count")] == 1475
    assert stored[("population_sites", "2", "count")] == 186
    assert stored[("submission_date", "", "")] == "2026-11-20"


@pytest.mark.parametrize("typed", ["около 200", "нет данных", "200-300"])
def test_words_in_a_count_are_one_kind_of_error(env: Env, typed: str) -> None:
    """An approximate count and no count at all get the form's one rule (an error)."""
    answers = bukhara_answers("ru")
    answers["population_sites"][1][3] = typed
    outcome = submit(env, fill(template(env, "AF", "ru"), answers, keyed=KEYED_TABLES))
    assert outcome.status == "rejected"
    (issue,) = [i for i in outcome.issues if i.field_key == "count"]
    assert issue.severity == "error" and typed in issue.message
    assert issue.cell and issue.sheet


def test_a_form_may_make_words_in_a_count_a_warning_that_says_the_row_is_not_counted(
    env: Env,
) -> None:
    answers = bukhara_answers("ru")
    answers["population_sites"][1][3] = "около 200"
    answers["population_sites"][2][3] = "нет данных"
    data = fill(template(env, "AF", "ru"), answers, keyed=KEYED_TABLES)
    with session_scope(env.settings) as session:
        context = form_context(session, env.settings, session.get(m.ReportingCycle, env.bukhara))
    lenient = replace(context, form=context.form.model_copy(update={"not_a_number": "warning"}))
    extraction = extract(data, Limits(max_inflated_bytes=10**8, max_sheet_cells=10**6))
    result = validate(extraction, lenient, Messages(env.settings.forms_dir, "ru"))
    assert not result.has_errors, [i.message for i in result.issues]
    first, second = [i for i in result.issues if i.field_key == "count"]
    assert first.severity == second.severity == "warning"
    assert first.code == second.code == "not_counted_in_table"
    assert "строка не учитывается в итогах" in first.message and "около 200" in first.message
    counted = {
        (a.row_key, a.column_key) for a in result.answers if a.field_key == "population_sites"
    }
    assert ("2", "count") not in counted and ("3", "count") not in counted


def test_an_empty_table_of_printed_rows_asks_for_the_missing_severity(env: Env) -> None:
    answers = bukhara_answers("ru")
    del answers["threats"]
    outcome = submit(env, fill(template(env, "KZ", "ru"), answers, keyed=KEYED_TABLES))
    assert outcome.status == "rejected"
    (issue,) = [i for i in outcome.issues if i.field_key == "threats"]
    assert issue.code == "keyed_table_required"
    assert "«Степень воздействия»" in issue.message and "хотя бы одну строку" not in issue.message
    assert re.search(r"C\d+:C\d+", issue.message)


def cami_answers(species: str) -> dict:
    return {
        "reporting_institution": "Комитет охраны окружающей среды",
        "submission_date": dt.datetime(2026, 11, 20),
        "activities": {0: ["Выполняется", species, "Совместные рейды"]},
    }


@pytest.mark.parametrize(
    "typed",
    [
        "Архар; снежный барс",
        "архар, Снежный барс",
        "АРХАР (аргали)\nснежный барс",
        "аргали;\nснежный барс;",
    ],
)
def test_several_species_in_one_cell_as_people_separate_them(env: Env, typed: str) -> None:
    soffice()
    filled = fill(template(env, "TJ", "ru", "cami"), cami_answers(typed), keyed={"activities"})
    outcome = submit(env, libreoffice_convert(filled, ".xlsx", "xlsx"))
    assert outcome.status == "accepted", [i.message for i in outcome.issues]
    stored = answers_of(env.settings, outcome.submission_id)
    assert stored[("activities", "1.1.1", "species")] == ["argali", "snow-leopard"]


def test_an_unknown_species_is_named_and_the_separators_are_told(env: Env) -> None:
    typed = "архар; горный козел"
    outcome = submit(
        env, fill(template(env, "TJ", "ru", "cami"), cami_answers(typed), keyed={"activities"})
    )
    assert outcome.status == "rejected"
    (issue,) = [i for i in outcome.issues if i.field_key == "species"]
    assert issue.code == "unknown_choices" and "«горный козел»" in issue.message
    assert "«архар;" not in issue.message
    assert "точку с запятой (;), запятую или с новой строки" in issue.message


# -- identity -------------------------------------------------------------------------------


def test_kazakh_template_sent_for_uzbekistan_is_refused(env: Env) -> None:
    answers = bukhara_answers("ru")
    # Bytes no other test sends: the same bytes again would be recognised as that return.
    answers["reporting_institution"] = "Министерство экологии (проверка подписи)"
    filled = fill(
        template(env, "KZ", "ru"),
        answers,
        keyed={"threats", "action_plan_implementation"},
    )
    outcome = submit(env, filled, sender="environment.uz@example.org")
    assert outcome.status == "rejected"
    assert codes(outcome) == ["wrong_state"]
    assert "Казахстан" in outcome.issues[0].message and "Узбекистан" in outcome.issues[0].message
    answers = bukhara_answers()
    answers["reporting_institution"] = "Ministry of Ecology (identity check)"
    by_state = submit(
        env,
        fill(template(env, "KZ"), answers, keyed={"threats", "action_plan_implementation"}),
        state="UZ",
    )
    assert codes(by_state) == ["wrong_state"]


def test_edited_hidden_identity_is_refused(env: Env) -> None:
    wb = load_workbook(
        io.BytesIO(
            fill(
                template(env, "KZ"),
                bukhara_answers(),
                keyed={"threats", "action_plan_implementation"},
            )
        )
    )
    meta = wb["_mou_meta"]
    for row in meta.iter_rows():
        if row[0].value == "state":
            row[1].value = "UZ"
    buffer = io.BytesIO()
    wb.save(buffer)
    outcome = submit(env, buffer.getvalue())
    assert codes(outcome) == ["identity_tampered"]
    assert "altered" in outcome.issues[0].message


def test_template_signed_with_another_secret_is_refused(env: Env) -> None:
    other = Settings(var_dir=env.settings.var_dir, secret="another-service-secret-0123456789")
    with session_scope(other) as session:
        foreign = template_for(session, other, env.bukhara, "KZ", "en")
    outcome = submit(
        env, fill(foreign, bukhara_answers(), keyed={"threats", "action_plan_implementation"})
    )
    assert codes(outcome) == ["identity_tampered"]


def test_resubmitting_the_same_bytes_is_recognised(env: Env) -> None:
    filled = fill(
        template(env, "UZ"),
        bukhara_answers(total=1777),
        keyed={"threats", "action_plan_implementation"},
    )
    first, created = submit_file(env.settings, filled, filename="a.xlsx")
    again, created_again = submit_file(env.settings, filled, filename="b.xlsx")
    assert created and not created_again
    assert again.submission_id == first.submission_id and again.already_decided
    with session_scope(env.settings) as session:
        count = session.scalars(
            select(m.Submission).filter_by(
                file_sha256=session.get(m.Submission, first.submission_id).file_sha256
            )
        ).all()
        assert len(count) == 1


def test_a_keyed_row_copied_twice_is_refused_naming_both_cells(env: Env) -> None:
    answers = bukhara_answers("ru")
    answers["threats"] = {
        0: [answers["threats"][0][0], "Patrols doubled"],
        1: [answers["threats"][0][0], "Patrols tripled"],
    }
    wb = load_workbook(io.BytesIO(fill(template(env, "KZ", "ru"), answers, keyed=KEYED_TABLES)))
    sheet, ref = next(iter(wb.defined_names["threats"].destinations))
    first_row = int(re.search(r"\$(\d+)", ref).group(1))
    code_column = re.search(r"\$([A-Z]+)\$", ref).group(1)
    ws = wb[sheet]
    # The ministry copied the first threat's row over the second, code column included.
    ws[f"{code_column}{first_row + 1}"] = ws[f"{code_column}{first_row}"].value
    buffer = io.BytesIO()
    wb.save(buffer)

    outcome = submit(env, buffer.getvalue())
    assert outcome.status == "rejected"
    duplicate = next(i for i in outcome.issues if i.code == "duplicate_row")
    assert duplicate.cell == f"{code_column}{first_row + 1}" and duplicate.sheet == sheet
    assert f"{code_column}{first_row} ({sheet})" in duplicate.message
    assert "дважды" in duplicate.message
    assert answers_of(env.settings, outcome.submission_id) == {}


@pytest.mark.parametrize(
    "typed", ["Ivanov, ministry of ecology", "focal@ministry", "a@b.org; c@d.org", "a b@c.org"]
)
def test_an_email_field_takes_only_an_address(env: Env, typed: str) -> None:
    answers = bukhara_answers("ru")
    answers["focal_point_email"] = typed
    outcome = submit(env, fill(template(env, "UZ", "ru"), answers, keyed=KEYED_TABLES))
    assert outcome.status == "rejected"
    (issue,) = [i for i in outcome.issues if i.code == "not_an_email"]
    assert issue.field_key == "focal_point_email" and issue.cell
    assert "не является адресом электронной почты" in issue.message


def test_an_email_address_is_taken_as_typed_around_it(env: Env) -> None:
    answers = bukhara_answers()
    answers["focal_point_email"] = " mailto:Focal.Point@ecology.uz "
    outcome = submit(env, fill(template(env, "UZ"), answers, keyed=KEYED_TABLES))
    assert outcome.status == "accepted", [i.message for i in outcome.issues]
    stored = answers_of(env.settings, outcome.submission_id)
    assert stored[("focal_point_email", "", "")] == "Focal.Point@ecology.uz"
