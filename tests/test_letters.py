"""The request letter as a ministry of foreign affairs reads it: the rendered PDF's text,
lines and fonts, in en, ru and fr."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader
from sqlalchemy import select

from mou.documents.letters import RequestLetter, render_request_letter, request_letter_for
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.test_workbook import Env, open_test_cycles

# Long enough to reach the end of a justified line somewhere in every letter.
ADDRESS = "national-reports.secretariat@cms-reporting.example.org"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("letters")
    yield open_test_cycles(Settings(var_dir=root / "var", mail_from=ADDRESS))


def letter_of(env: Env, instrument: str, state: str, language: str | None = None) -> RequestLetter:
    cycle = env.bukhara if instrument == "bukhara-deer" else env.cami
    with session_scope(env.settings) as session:
        request = session.scalars(
            select(m.ReportRequest)
            .join(m.RangeState)
            .where(m.ReportRequest.cycle_id == cycle, m.RangeState.code == state)
        ).one()
        letter = request_letter_for(session, request.id, env.settings)
        if language and language != letter.language:
            # No range state writes in French: the French letter of an English-speaking one.
            names = request.cycle.instrument
            letter = dataclasses.replace(
                letter, language=language, instrument_name=names.name[language]
            )
        return letter


def pages_of(letter: RequestLetter, settings: Settings) -> list[str]:
    reader = PdfReader(io.BytesIO(render_request_letter(letter, settings)))
    return [page.extract_text() or "" for page in reader.pages]


HYPHENS = "-\u2010\u00ad"  # what a line broken inside a word ends with


def one_line(text: str) -> str:
    """The text as one line, words hyphenated at a line's end joined again."""
    return re.sub(r"\s+", " ", re.sub(f"(\\w)[{HYPHENS}]\n(\\w)", r"\1\2", text))


LETTERS = [
    ("bukhara-deer", "TJ", None),
    ("bukhara-deer", "AF", None),
    ("bukhara-deer", "AF", "fr"),
    ("cami", "KZ", None),
    ("cami", "MN", None),
    ("cami", "MN", "fr"),
]


@pytest.mark.parametrize(("instrument", "state", "language"), LETTERS)
def test_the_secretariats_address_is_never_broken_across_lines(
    env: Env, instrument: str, state: str, language: str | None
) -> None:
    lines = "\n".join(pages_of(letter_of(env, instrument, state, language), env.settings))
    whole = [line for line in lines.splitlines() if ADDRESS in line]
    assert len(whole) >= 2, lines  # the letterhead and the paragraph asking for the return
    broken = [line.split()[-1] for line in lines.splitlines() if line.rstrip()[-1:] in HYPHENS]
    assert not [word for word in broken if word.rstrip(HYPHENS) in ADDRESS], broken


@pytest.mark.parametrize(("instrument", "state", "language"), LETTERS)
def test_the_copy_list_is_on_the_first_page(
    env: Env, instrument: str, state: str, language: str | None
) -> None:
    letter = letter_of(env, instrument, state, language)
    pages = pages_of(letter, env.settings)
    assert len(pages) == 1
    first = one_line(pages[0])
    cc = {"en": "cc:", "ru": "Копия:", "fr": "Copie :"}[letter.language]
    assert cc in first and one_line(letter.cc[0].name) in first


def test_scientific_names_are_set_in_italics(env: Env) -> None:
    letter = letter_of(env, "bukhara-deer", "TJ")
    reader = PdfReader(io.BytesIO(render_request_letter(letter, env.settings)))
    runs: list[tuple[str, str]] = []

    def visit(text: str, cm: object, tm: object, font: dict | None, size: float) -> None:
        if text.strip() and font:
            runs.append((text, str(font.get("/BaseFont"))))

    reader.pages[0].extract_text(visitor_text=visit)
    latin = [font for text, font in runs if "elaphus" in text]
    assert latin and all("Italic" in font for font in latin), latin
    assert not [font for text, font in runs if "Italic" in font and "Меморандум" in text]


def test_each_letter_says_its_own_instruments_cycle(env: Env) -> None:
    cami_en = one_line(" ".join(pages_of(letter_of(env, "cami", "MN"), env.settings)))
    assert "every 30 months (2.5 years)" in cami_en and "4.1.5" in cami_en
    assert "every two years" not in cami_en
    cami_ru = one_line(" ".join(pages_of(letter_of(env, "cami", "KZ"), env.settings)))
    assert "каждые 30 месяцев (2,5 года)" in cami_ru and "каждые два года" not in cami_ru
    cami_fr = one_line(" ".join(pages_of(letter_of(env, "cami", "MN", "fr"), env.settings)))
    assert "tous les 30 mois (2,5 ans)" in cami_fr
    bukhara = one_line(" ".join(pages_of(letter_of(env, "bukhara-deer", "AF"), env.settings)))
    assert "every two years" in bukhara and "30 months" not in bukhara


def test_the_russian_letter_reads_as_russian(env: Env) -> None:
    bukhara = one_line(" ".join(pages_of(letter_of(env, "bukhara-deer", "TJ"), env.settings)))
    assert (
        "национальный отчет Республики Таджикистан о выполнении Меморандума о взаимопонимании"
        in bukhara
    )
    assert "Форма подготовлена специально для Республики Таджикистан" in bukhara
    assert "документа «" not in bukhara and "Меморандум о взаимопонимании по" not in bukhara
    cami = one_line(" ".join(pages_of(letter_of(env, "cami", "KZ"), env.settings)))
    assert "национальный отчет Республики Казахстан о выполнении Программы работы" in cami


def test_a_letter_prints_the_address_in_its_own_language(env: Env) -> None:
    """No Latin "(fictitious address)" inside a Russian letter, nor an English one inside a
    French letter: each contact carries its address per language."""
    russian = one_line(" ".join(pages_of(letter_of(env, "bukhara-deer", "TJ"), env.settings)))
    assert "Душанбе (вымышленный адрес)" in russian
    assert "fictitious" not in russian and "Dushanbe" not in russian
    english = one_line(" ".join(pages_of(letter_of(env, "bukhara-deer", "AF"), env.settings)))
    assert "Kabul (fictitious address)" in english


def test_a_contact_without_an_address_in_the_letters_script_prints_none(env: Env) -> None:
    from mou.documents.letters import address_in

    latin = m.Authority(address="Astana (fictitious address)", addresses=None)
    assert address_in(latin, "ru") is None and address_in(latin, "en") == latin.address
    cyrillic = m.Authority(address="Астана, пр. Мангилик Ел", addresses={"en": "Astana"})
    assert address_in(cyrillic, "ru") == cyrillic.address and address_in(cyrillic, "en") == "Astana"
    assert address_in(cyrillic, "fr") is None
    with session_scope(env.settings) as session:  # as seeded from the catalogue
        mongolia = session.scalars(select(m.Authority).filter_by(key="mn-mfa")).one()
        assert address_in(mongolia, "fr") == "Oulan-Bator (adresse fictive)"


def test_every_state_and_instrument_has_its_russian_genitive() -> None:
    names = yaml.safe_load(
        Path("templates/reports/locale/ru/names.yaml").read_text(encoding="utf-8")
    )
    states = yaml.safe_load(Path("db/catalogue/states.yaml").read_text(encoding="utf-8"))
    instruments = yaml.safe_load(Path("db/catalogue/instruments.yaml").read_text(encoding="utf-8"))
    assert {s["code"] for s in states["states"]} == set(names["states"])
    assert {i["code"] for i in instruments["instruments"]} == set(names["instruments"])


def test_the_escalation_is_a_formal_note_recalling_the_request(
    env: Env,
) -> None:
    """Seven days after the deadline the reminder to the ministry of foreign affairs carries
    a note verbale as a PDF: the request's reference and day, the deadline, in the state's
    language; the workbook again beside it."""
    import datetime as dt

    from mou.cycle.reminders import send_reminders
    from mou.i18n.formatting import Formatter
    from mou.store import files as filestore

    with session_scope(env.settings) as session:
        cycle = session.get(m.ReportingCycle, env.bukhara)
        deadline = cycle.deadline
        request = session.scalars(
            select(m.ReportRequest)
            .join(m.RangeState)
            .where(m.ReportRequest.cycle_id == env.bukhara, m.RangeState.code == "KZ")
        ).one()
        request.dispatched_at = m.utcnow()  # as if its request had gone out (the fixture's
        session.flush()  # cycles are opened, not dispatched)
        sent = send_reminders(session, env.settings, deadline + dt.timedelta(days=7))
        session.commit()
        [kz] = [message for message in sent if message.key.endswith(":KZ:overdue-1")]
        recalled = (request.created_at or cycle.opened_at).date()
        names = [a["filename"] for a in kz.attachments]
        [note] = [a for a in kz.attachments if a["filename"].endswith(".pdf")]
        data = filestore.read_bytes(env.settings.files_dir, note["sha256"])
    assert any(name.endswith(".xlsx") for name in names)
    text = one_line("\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages))
    ru = Formatter("ru")

    def plain(words: str) -> str:  # a no-break space comes out of the PDF as a space
        return re.sub(r"[\s\u00a0\u202f]+", " ", words)

    text = plain(text)
    assert request.reference in text
    assert plain(f"ноту {request.reference} от {ru.date(recalled)}") in text
    assert plain(ru.date(deadline)) in text and "Министерству иностранных дел" in text
    assert "напоминание" in text


# The instruments' Russian names, as the catalogue gives them (db/catalogue/instruments.yaml),
# and what a reworded one looks like: "о взаимопонимании" followed by another object ("в
# вопросах сохранения ..."); a bare "Меморандум о взаимопонимании" is the short form.
RUSSIAN_NAMES = {
    "bukhara-deer": (
        "о взаимопонимании по сохранению и восстановлению бухарского оленя",
        r"о взаимопонимании (?!по сохранению и восстановлению бухарского оленя)(?:в|по|о|об) ",
    ),
    "cami": (
        "Инициатив",
        r"Инициатив\w* (?!по млекопитающим Центральной Азии)\w",
    ),
}


@pytest.mark.parametrize(("instrument", "state"), [("bukhara-deer", "TJ"), ("cami", "KZ")])
def test_one_russian_name_per_instrument_in_the_letter_and_the_workbook(
    env: Env, instrument: str, state: str
) -> None:
    """The Russian request letter and the Russian workbook it comes with name the instrument
    in the catalogue's words (the workbook said "в вопросах сохранения и восстановления")."""
    from openpyxl import load_workbook

    from mou.cycle.context import template_for

    cycle = env.bukhara if instrument == "bukhara-deer" else env.cami
    with session_scope(env.settings) as session:
        catalogue = session.scalars(select(m.Instrument).filter_by(code=instrument)).one()
        workbook = template_for(session, env.settings, cycle, state, "ru")
    canonical, reworded = RUSSIAN_NAMES[instrument]
    assert canonical in catalogue.name["ru"]
    book = load_workbook(io.BytesIO(workbook), read_only=True)
    cells = [
        value
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if isinstance(value, str)
    ]
    texts = {
        "letter": one_line(" ".join(pages_of(letter_of(env, instrument, state), env.settings))),
        "workbook": re.sub(r"\s+", " ", " ".join(cells)),
    }
    for where, text in texts.items():
        assert canonical in text, where
        found = [text[hit.start() : hit.start() + 90] for hit in re.finditer(reworded, text)]
        assert not found, (where, found)
