"""Templates as ministry officers see them: built, re-saved and printed by LibreOffice.

Row heights, column widths, fonts and sheet tabs are checked on the rendered output (the
.xlsx as built, as LibreOffice saves it again, and LibreOffice's PDF of it), not on the code
that builds it.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from mou.errors import Refused
from mou.forms.spec import load_form
from mou.settings import Settings
from tests.test_workbook import KEYED_TABLES, Env, bukhara_answers, open_test_cycles, template
from tests.workbooks import fill, libreoffice_convert, submit_file

FORMS = Path("forms")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("layout")
    yield open_test_cycles(Settings(var_dir=root / "var"))


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)


def pdf_fonts(pdf: bytes) -> set[str]:
    names: set[str] = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        fonts = page.get("/Resources", {}).get("/Font", {})
        for ref in fonts.values():
            names.add(str(ref.get_object().get("/BaseFont")))
    return names


def activity_rows(data: bytes) -> tuple[object, list[int]]:
    wb = load_workbook(io.BytesIO(data))
    sheet, ref = next(iter(wb.defined_names["activities"].destinations))
    ws = wb[sheet]
    return ws, [row[0].row for row in ws[ref.replace("$", "")]]


@pytest.mark.parametrize("language", ["ru", "fr"])
def test_libreoffice_prints_every_activity_text_whole(env: Env, language: str) -> None:
    """A row cut short hides the end of its text: LibreOffice's PDF must hold all of it."""
    built = template(env, "TJ" if language == "ru" else "MN", language, "cami")
    ws, rows = activity_rows(built)
    printed = squash(pdf_text(libreoffice_convert(built, ".xlsx", "pdf")))
    texts = [ws.cell(row=row, column=2).value for row in rows]
    assert len(texts) == 121
    cut = [text[:40] for text in texts if squash(text) not in printed]
    assert cut == [], f"{len(cut)} activity texts are cut: {cut[:3]}"


def test_row_heights_fit_the_text_in_arial_and_survive_libreoffice(env: Env) -> None:
    """Excel shows the stored height: it must hold the text in Arial (about 0.5 em a
    character on average, 1.12 em a line), and LibreOffice must keep it when it saves."""
    built = template(env, "TJ", "ru", "cami")
    ws, rows = activity_rows(built)
    width = ws.column_dimensions["B"].width
    for row in rows:
        text = ws.cell(row=row, column=2).value
        size = ws.cell(row=row, column=2).font.sz
        per_line = (width * 7 - 8) * 0.75 / (0.5 * size)
        lines = sum(math.ceil(max(1, len(part)) / per_line) for part in text.split("\n"))
        assert ws.row_dimensions[row].height >= lines * 1.12 * size, text[:40]
    resaved_ws, resaved_rows = activity_rows(libreoffice_convert(built, ".xlsx", "xlsx"))
    assert resaved_rows == rows
    for row in rows:
        assert resaved_ws.row_dimensions[row].height == pytest.approx(
            ws.row_dimensions[row].height, abs=0.6
        )


def test_code_columns_are_as_narrow_as_their_codes(env: Env) -> None:
    cami = load_workbook(io.BytesIO(template(env, "MN", "en", "cami")))
    sheet, _ = next(iter(cami.defined_names["activities"].destinations))
    assert cami[sheet].column_dimensions["A"].width <= 9  # "1.1.10" in bold (the scalars' 46)
    bukhara = load_workbook(io.BytesIO(template(env, "KZ", "ru")))
    sheet, _ = next(iter(bukhara.defined_names["threats"].destinations))
    assert bukhara[sheet].column_dimensions["A"].width <= 6.5  # "1" to "9" under "Код"


def test_every_font_is_named_and_libreoffice_prints_no_serif(env: Env) -> None:
    built = template(env, "KZ", "ru")
    styles = zipfile.ZipFile(io.BytesIO(built)).read("xl/styles.xml").decode()
    fonts = re.findall(r"<font>(.*?)</font>", styles, re.DOTALL)
    assert fonts and all("<name " in font for font in fonts)
    printed = pdf_fonts(libreoffice_convert(built, ".xlsx", "pdf"))
    assert printed and not [name for name in printed if "Serif" in name], printed


@pytest.mark.parametrize("instrument", ["bukhara-deer", "cami"])
@pytest.mark.parametrize("language", ["en", "ru", "fr"])
def test_sheet_tabs_are_whole_titles_within_31_characters(
    env: Env, instrument: str, language: str
) -> None:
    form = load_form(FORMS, instrument)
    built = template(env, "KZ" if instrument == "bukhara-deer" else "MN", language, instrument)
    names = [n for n in load_workbook(io.BytesIO(built)).sheetnames if not n.startswith("_")]
    for index, section in enumerate(form.sections, start=1):
        tab = names[index]
        assert len(tab) <= 31
        number, _, words = tab.partition(". ")
        assert number == str(index)
        known = set(
            (section.title(language) + " " + (section.tab or section.title)(language)).split()
        )
        assert set(words.split()) <= known, f"{tab!r} cuts a word of {section.title(language)!r}"


def test_a_french_return_with_an_apostrophe_in_a_tab_survives_libreoffice(env: Env) -> None:
    filled = fill(template(env, "KZ", "fr"), bukhara_answers("fr"), keyed=KEYED_TABLES)
    resaved = libreoffice_convert(filled, ".xlsx", "xlsx")
    assert "5. Plan d’action" in load_workbook(io.BytesIO(resaved)).sheetnames
    outcome, _ = submit_file(env.settings, resaved, filename="retour.xlsx")
    assert outcome.status == "accepted", [i.message for i in outcome.issues]


def test_a_title_too_long_for_a_tab_is_refused_on_load(tmp_path: Path) -> None:
    text = (FORMS / "cami.yaml").read_text(encoding="utf-8")
    text = text.replace(
        '    tab: {en: "Programme of Work", ru: "Программа работы", fr: "Programme de travail"}',
        "",
    )
    (tmp_path / "cami.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(Refused, match=r"31 characters.*shorter `tab`"):
        load_form(tmp_path, "cami")


def test_species_separators_are_told_where_the_officer_types(env: Env) -> None:
    built = template(env, "TJ", "ru", "cami")
    resaved = load_workbook(io.BytesIO(libreoffice_convert(built, ".xlsx", "xlsx")))
    sheet, ref = next(iter(resaved.defined_names["activities"].destinations))
    column = re.search(r"\$([A-Z]+)\$\d+$", ref)
    assert column
    prompts = [
        dv.prompt
        for dv in resaved[sheet].data_validations.dataValidation
        if "D" in str(dv.sqref) and dv.prompt
    ]
    assert any("точку с запятой (;)" in p and "запятую" in p for p in prompts), prompts
    printed = pdf_text(libreoffice_convert(built, ".xlsx", "pdf"))
    assert "точку с запятой (;)" in printed and "с новой строки" in printed
