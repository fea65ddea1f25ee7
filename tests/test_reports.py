"""PDF documents: contents checked against the database in en, ru and fr, embedded fonts,
hostile narratives, the asset-only fetcher, tagging, reproducibility, catalogues.

Rendering is the slow part (the 14-state CAMI report takes seconds), so the data is built
once per module on SQLite and each document is rendered once per language and shared; the
consolidation itself is tested on both engines in test_consolidate.py.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from pypdf import PdfReader
from pypdf.generic import DictionaryObject
from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.bootstrap import prepare_database
from mou.documents.assets import AssetFetcher, AssetRefused
from mou.documents.letters import render_request_letter, request_letter_for
from mou.documents.pdf import document_symbol, html_to_pdf, with_file_identifier
from mou.errors import Refused
from mou.i18n.formatting import Formatter
from mou.reporting import columns as render
from mou.reporting.columns import _Measure, column_widths
from mou.reporting.consolidation import ConsolidatedCycle, consolidate, read_return
from mou.reporting.progress_summary import progress_summary_html, render_progress_summary
from mou.reporting.sections import Cell
from mou.reporting.state_summary import render_state_summary
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import engine_for, session_scope
from tests import builders as b

LANGUAGES = ("en", "ru", "fr")
LOCALES = {"en": "en_GB", "ru": "ru", "fr": "fr"}
PROJECT = Path(__file__).resolve().parent.parent
REPORTS = PROJECT / "templates" / "reports"


def squash(text: str) -> str:
    """Text without any whitespace: PDF extraction breaks lines and keeps NBSPs."""
    return re.sub(r"\s+", "", text)


def number(value: int, language: str) -> str:
    return squash(format_decimal(value, locale=LOCALES[language]))


def pdf_text(pdf: bytes, *, skip_annex: bool = False) -> str:
    """The text of every page, or of the pages before the annex (the last bookmark)."""
    reader = PdfReader(io.BytesIO(pdf))
    pages = reader.pages
    if skip_annex:
        annex = [item for item in reader.outline if not isinstance(item, list)][-1]
        pages = pages[: reader.get_destination_page_number(annex)]
    return "\n".join(page.extract_text() for page in pages)


@dataclass
class World:
    settings: Settings
    bukhara: ConsolidatedCycle
    cami: ConsolidatedCycle
    bukhara_cycle_id: int
    superseded_id: int
    state_names: dict[str, dict[str, str]]
    site_counts: dict[str, list[int]]
    national_totals: dict[str, int]
    previous_totals: dict[str, int]
    cami_statuses: list[str]
    renders: dict[tuple[str, str], bytes] = field(default_factory=dict)
    texts: dict[tuple[str, str], str] = field(default_factory=dict)

    def pdf(self, which: str, language: str) -> bytes:
        key = (which, language)
        if key not in self.renders:
            data = self.bukhara if which == "bukhara" else self.cami
            self.renders[key] = render_progress_summary(data, language, self.settings)
        return self.renders[key]

    def text(self, which: str, language: str) -> str:
        """Extracted text of a render (extraction of a 40-page PDF takes seconds: once)."""
        key = (which, language)
        if key not in self.texts:
            # pypdf needs seconds a page for the dense CAMI matrix; its annexes repeat
            # what the checks look for, so only the chapters are read.
            self.texts[key] = pdf_text(self.pdf(which, language), skip_annex=which == "cami")
        return self.texts[key]


def _counted(session: Session, cycle_id: int, field_key: str) -> list[tuple[str, m.Answer]]:
    rows = session.execute(
        select(m.RangeState.code, m.Answer)
        .join(m.Submission, m.Answer.submission_id == m.Submission.id)
        .join(m.RangeState, m.Submission.state_id == m.RangeState.id)
        .where(
            m.Submission.cycle_id == cycle_id,
            m.Submission.status == "accepted",
            m.Submission.superseded_by_id.is_(None),
            m.Answer.field_key == field_key,
        )
    ).all()
    return [(code, answer) for code, answer in rows]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    var = tmp_path_factory.mktemp("reports") / "var"
    settings = Settings(var_dir=var)
    prepare_database(settings)
    with session_scope(settings) as session:
        bukhara = b.build_bukhara(session)
        cami = b.build_cami(session)
        ids = (bukhara.cycle.id, bukhara.previous.id, cami.cycle.id, bukhara.superseded_ids[0])
    with session_scope(settings) as session:
        bukhara_id, previous_id, cami_id, superseded = ids
        sites: dict[str, list[int]] = {}
        for code, answer in _counted(session, bukhara_id, "population_sites"):
            if answer.column_key == "count":
                sites.setdefault(code, []).append(answer.value)
        yield World(
            settings=settings,
            bukhara=consolidate(session, bukhara_id),
            cami=consolidate(session, cami_id),
            bukhara_cycle_id=bukhara_id,
            superseded_id=superseded,
            state_names={s.code: dict(s.name) for s in session.scalars(select(m.RangeState))},
            site_counts=sites,
            national_totals={
                code: a.value for code, a in _counted(session, bukhara_id, "national_total")
            },
            previous_totals={
                code: a.value for code, a in _counted(session, previous_id, "national_total")
            },
            cami_statuses=[
                a.value
                for _c, a in _counted(session, cami_id, "activities")
                if a.column_key == "status"
            ],
        )
    engine_for(settings.effective_database_url).dispose()


# --------------------------------------------------------------------------------------------
# Contents in three languages, against the database
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_bukhara_summary_shows_states_sites_and_totals(world: World, language: str) -> None:
    text = squash(world.text("bukhara", language))
    for code in world.national_totals:
        assert squash(world.state_names[code][language]) in text, code
    for code, counts in world.site_counts.items():
        for count in counts:
            assert number(count, language) in text, (code, count)
        assert number(sum(counts), language) in text  # sum of the state's sites
    total = sum(world.national_totals.values())
    previous = sum(world.previous_totals.values())
    all_sites = sum(sum(c) for c in world.site_counts.values())
    assert number(total, language) in text
    assert number(all_sites, language) in text
    assert number(previous, language) in text
    assert "+" + number(total - previous, language) in text
    assert "LowerAmudarya" in text and "Darqad" in text
    # The superseded version's wrong figure is nowhere.
    assert number(1400, language) not in text
    symbol = document_symbol("bukhara-deer", "2023-2024", "Inf.1")
    assert symbol == "UNEP/CMS/BD/NR.2023-2024/Inf.1" and symbol in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_cami_summary_shows_every_state_and_the_shares(world: World, language: str) -> None:
    raw = world.text("cami", language)
    text = squash(raw)
    for code in b.CAMI_STATES:
        assert squash(world.state_names[code][language]) in text, code
    statuses = world.cami_statuses
    # Over every cell of the States with an accepted return, the not-applicable ones left
    # out: an activity without a status counts against the share (and is stated beside it).
    cells = 121 * len(world.cami.activities[0].states)
    counted = cells - statuses.count("not_applicable")
    done = sum(1 for s in statuses if s in ("completed", "ongoing"))
    unreported = cells - len(statuses)
    assert unreported > 0  # the share would be the same over the reported cells otherwise
    share = squash(format_percent(done / counted, locale=LOCALES[language]))
    assert share in text
    assert squash(format_percent(unreported / counted, locale=LOCALES[language])) in text
    assert number(121, language) in text
    # The matrix lists every activity code.
    codes = set(re.findall(r"\b[1-4]\.\d\.\d{1,2}\b", raw))
    assert {"1.1.1", "1.1.10", "2.5.3", "4.3.1"} <= codes and len(codes) >= 121


def test_status_table_and_timeliness(world: World) -> None:
    text = squash(world.text("bukhara", "en"))
    assert "Lateby3days" in text and "4ontime,1late" in text
    ru = squash(world.text("bukhara", "ru"))
    assert "Опозданиена3дня" in ru


# --------------------------------------------------------------------------------------------
# Hostile text, fetching, fonts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("which", "language"), [("bukhara", "en"), ("cami", "ru")])
def test_hostile_narratives_are_literal_text(world: World, which: str, language: str) -> None:
    pdf = world.pdf(which, language)
    text = squash(world.text(which, language))
    assert squash(b.HOSTILE) in text
    assert "<script>alert(1)</script>" in text
    assert squash("<link rel=attachment href=file:///etc/passwd>") in text
    assert "{{7*7}}" in text and "templatecheck49end" not in text
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.attachments == {}
    names = reader.trailer["/Root"].get("/Names")
    assert names is None or "/EmbeddedFiles" not in names
    passwd = Path("/etc/passwd")
    if passwd.exists():
        first = passwd.read_text().splitlines()[0]
        assert squash(first) not in text


def test_only_the_reports_own_assets_are_fetched(world: World) -> None:
    fetcher = AssetFetcher(REPORTS)
    html = progress_summary_html(world.bukhara, "en", world.settings)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "{{ 7*7 }}" in html
    html_to_pdf(html, world.settings, fetcher=fetcher)
    assert fetcher.refused == []
    served = {url.rsplit("/", 1)[-1] for url in fetcher.served}
    assert served == {"report.css", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"}


def test_fetcher_refuses_everything_else(tmp_path: Path, world: World) -> None:
    fetcher = AssetFetcher(REPORTS)
    outside = tmp_path / "secret.css"
    outside.write_text("body { color: red }")
    for url in (
        "file:///etc/passwd",
        "http://example.org/report.css",
        "https://example.org/font.ttf",
        "data:text/css,body{}",
        (REPORTS / ".." / ".." / "pyproject.toml").as_uri(),
        REPORTS.as_uri() + "/../../mou/settings.py",
        (REPORTS / "locale" / "ru" / "LC_MESSAGES" / "messages.po").as_uri(),
        (REPORTS / "progress_summary.html").as_uri(),
        outside.as_uri(),
        "file://evil.example/" + str(REPORTS / "report.css"),
    ):
        with pytest.raises(AssetRefused):
            fetcher.fetch(url)
    response = fetcher.fetch((REPORTS / "fonts" / "DejaVuSans.ttf").as_uri())
    assert response.read(4) == b"\x00\x01\x00\x00"
    # Even raw HTML that asks for files gets nothing: the fetcher is the second wall.
    hostile = (
        '<html lang="en"><head><title>t</title>'
        "<link rel=attachment href=file:///etc/passwd>"
        '<link rel="stylesheet" href="http://example.org/x.css"></head>'
        '<body><p>x</p><img alt="x" src="file:///etc/passwd"></body></html>'
    )
    fetcher = AssetFetcher(REPORTS)
    pdf = html_to_pdf(hostile, world.settings, fetcher=fetcher)
    assert "file:///etc/passwd" in fetcher.refused
    assert "http://example.org/x.css" in fetcher.refused
    assert PdfReader(io.BytesIO(pdf)).attachments == {}


def _fonts(resources: Any, seen: set[int]) -> Iterator[DictionaryObject]:
    if resources is None or id(resources) in seen:
        return
    seen.add(id(resources))
    resources = resources.get_object()
    for font in (resources.get("/Font") or {}).values():
        yield font.get_object()
    for xobject in (resources.get("/XObject") or {}).values():
        xobject = xobject.get_object()
        yield from _fonts(xobject.get("/Resources"), seen)


@pytest.mark.parametrize(
    ("which", "language"), [("bukhara", "en"), ("bukhara", "ru"), ("cami", "fr")]
)
def test_all_fonts_are_embedded(world: World, which: str, language: str) -> None:
    reader = PdfReader(io.BytesIO(world.pdf(which, language)))
    fonts = {}
    seen: set[int] = set()
    for page in reader.pages:
        for font in _fonts(page.get("/Resources"), seen):
            fonts[str(font["/BaseFont"])] = font
    assert fonts
    for name, font in fonts.items():
        descendant = (
            font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
        )
        descriptor = descendant["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor, name
        assert "Report-Sans" in name  # the shipped DejaVu Sans, never a system fallback


# --------------------------------------------------------------------------------------------
# Document properties
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_tagged_pdf_with_title_language_and_bookmarks(world: World, language: str) -> None:
    reader = PdfReader(io.BytesIO(world.pdf("bukhara", language)))
    root = reader.trailer["/Root"]
    assert root["/Lang"] == language
    assert "/StructTreeRoot" in root and root["/MarkInfo"]["/Marked"]
    assert root["/ViewerPreferences"]["/DisplayDocTitle"]
    metadata = reader.metadata
    assert metadata is not None and "2023-2024" in (metadata.title or "")
    # The creation date comes from the data (latest decision), not the clock.
    assert metadata["/CreationDate"] == "D:20250408120000Z"
    titles = [item.title for item in reader.outline if not isinstance(item, list)]
    assert len(titles) == 8 and titles[0].startswith("1. ")


def test_contents_page_numbers_point_at_the_chapters(world: World) -> None:
    reader = PdfReader(io.BytesIO(world.pdf("bukhara", "en")))
    contents = reader.pages[1].extract_text()
    entries = re.findall(r"^(\d+\. .+?) \.{3,}\s*(\d+)$", contents, flags=re.MULTILINE)
    assert len(entries) == 7
    for title, page in entries:
        # Chapters follow on: the heading is on that page, not always at its top.
        lines = [x.strip() for x in reader.pages[int(page) - 1].extract_text().splitlines()]
        assert title in lines, (title, page)


def test_two_renders_are_identical(world: World) -> None:
    first = world.pdf("bukhara", "ru")
    again = render_progress_summary(world.bukhara, "ru", world.settings)
    assert again == first


def test_without_harfbuzz_subset_pdfs_are_refused_not_made_unreproducible(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fontTools, WeasyPrint's fallback subsetter, stamps fonts with the time of the render.
    from weasyprint.text import ffi

    monkeypatch.setattr(ffi, "harfbuzz_subset", None)
    with pytest.raises(Refused, match="libharfbuzz-subset0"):
        html_to_pdf("<html lang=en><title>x</title><p>x</p></html>", world.settings)


def test_file_identifier_is_a_hash_of_the_html(world: World) -> None:
    html = progress_summary_html(world.bukhara, "en", world.settings)
    identifier = hashlib.sha256(html.encode("utf-8")).hexdigest()[:32]
    reader = PdfReader(io.BytesIO(world.pdf("bukhara", "en")))
    assert list(reader.trailer["/ID"]) == [identifier, identifier]
    assert len(reader.pages) > 10  # the file still reads through its cross-reference stream


def test_file_identifier_goes_only_into_a_cross_reference_stream() -> None:
    classic = (
        b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\nxref\n0 1\n0000000000 65535 f \n"
        b"trailer\n<</Size 1>>\nstartxref\n9\n%%EOF\n"
    )
    with pytest.raises(ValueError):
        with_file_identifier(classic, b"0123abcd")
    stream = b"%PDF-1.7\n5 0 obj\n<</Type /XRef/Size 6/Length 0>>\nstream\n\nendstream\nendobj\n"
    stream += b"startxref\n9\n%%EOF\n"
    once = with_file_identifier(stream, b"0123abcd")
    assert b"<</ID [(0123abcd) (0123abcd)]/Type /XRef/Size 6" in once
    with pytest.raises(ValueError):
        with_file_identifier(once, b"0123abcd")  # never two identifiers
    with pytest.raises(ValueError):
        with_file_identifier(stream, b"0123) (x")  # nothing but hexadecimal digits


TINY = '<html lang="en"><head><title>t</title></head><body><p>x</p></body></html>'


def test_the_collector_waits_for_the_end_of_a_render(world: World) -> None:
    """WeasyPrint's objects are not walked again and again by the cyclic garbage collector
    during a render (about 15 % of the CPU time of the CAMI summary): one young-generation
    collection at the end frees the render's garbage, and the collector is back as it was."""
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    assert gc.isenabled()
    gc.callbacks.append(seen)
    try:
        html_to_pdf(TINY, world.settings)
    finally:
        gc.callbacks.remove(seen)
    assert collections == [0] and gc.isenabled()
    gc.disable()  # someone else's choice is kept
    try:
        html_to_pdf(TINY, world.settings)
        assert not gc.isenabled()
    finally:
        gc.enable()
    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(html_to_pdf(TINY, world.settings)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 3 and gc.isenabled()


def test_answer_tables_have_a_fixed_layout_with_widths_from_their_texts(world: World) -> None:
    html = progress_summary_html(world.cami, "ru", world.settings)
    tables = re.findall(r'<table class="answers-table">.*?</table>', html, flags=re.DOTALL)
    assert len(tables) >= 14
    for table in tables:
        widths = [float(w) for w in re.findall(r'<col style="width: ([\d.]+)%">', table)]
        heads = len(re.findall(r'<th scope="col">', table))
        assert len(widths) == heads and round(sum(widths), 6) == 100 and min(widths) > 0
    assert "table.answers-table { table-layout: fixed; }" in (REPORTS / "report.css").read_text()
    # Longest word and longest line, as an automatic layout would weigh them, in the fonts.
    fonts = REPORTS / "fonts"
    words = ["1.2.10", "Осуществляется на постоянной основе", "AF: " + "work with partners " * 9]
    code, status, text = column_widths(
        ["Activity", "Status", "Actions taken and results"], [[Cell(w) for w in words]], fonts
    )
    assert round(code + status + text, 6) == 100 and code < status < text
    # Its longest word fits: 8.5 pt DejaVu Sans, 3.2 mm of padding, a 172 mm text block.
    assert status / 100 * 172 - 3.2 >= _Measure(fonts)("Осуществляется")
    assert column_widths(["Name", "Name"], [], fonts) == [50.0, 50.0]
    carried = [[Cell("1"), Cell("12", carried=True)]]
    marked = column_widths(["No.", "Value"], carried, fonts, "carried forward")
    assert marked[1] / 100 * 172 - 3.2 >= _Measure(fonts)("carried forward", size=6.5) + 2.9


def test_column_widths_know_the_stylesheet() -> None:
    """column_widths measures texts as report.css sets them: keep the two in step."""
    css = (REPORTS / "report.css").read_text()
    assert re.search(r"^@page \{\s*size: A4;\s*margin: 24mm 18mm 20mm 20mm;", css, re.MULTILINE)
    assert render._TABLE_MM == 210 - 18 - 20
    assert re.search(r"^table \{[^}]*font-size: 8\.5pt;", css, re.MULTILINE)
    assert render._TABLE_PT == 8.5
    assert re.search(r"^th, td \{[^}]*padding: 1\.2mm 1\.6mm;", css, re.MULTILINE)
    assert render._PADDING_MM == 2 * 1.6
    mark = re.search(r"^\.cf \{([^}]*)\}", css, re.MULTILINE)
    assert mark and "font-size: 6.5pt" in mark[1] and "padding: 0 0.8mm" in mark[1]
    assert "margin-left: 1mm" in mark[1] and "border: 0.4pt" in mark[1]
    assert render._MARK_PT == 6.5 and render._MARK_EXTRA_MM >= 2 * 0.8 + 1 + 2 * 0.4 * 25.4 / 72


def test_unknown_language_is_refused(world: World) -> None:
    with pytest.raises(Refused, match="en, ru, fr"):
        render_progress_summary(world.bukhara, "de", world.settings)


# --------------------------------------------------------------------------------------------
# Per-state summary and request letter
# --------------------------------------------------------------------------------------------


def test_state_summary_shows_the_return_as_read(world: World) -> None:
    uz = world.bukhara.return_of("UZ")
    assert uz is not None
    text = squash(pdf_text(render_state_summary(uz, "ru", world.settings)))
    assert squash(world.state_names["UZ"]["ru"]) in text
    assert "LowerAmudarya" in text and number(1475, "ru") in text
    assert squash(b.HOSTILE) in text
    assert "UNEP/CMS/BD/NR.2023-2024/UZ" in text
    kz = world.bukhara.return_of("KZ")
    assert kz is not None
    kz_text = pdf_text(render_state_summary(kz, "en", world.settings))
    assert "carried forward" in kz_text and "Not answered" in kz_text


def test_state_summary_of_a_superseded_version(world: World) -> None:
    with session_scope(world.settings) as session:
        returned = read_return(session, world.superseded_id)
    text = squash(pdf_text(render_state_summary(returned, "en", world.settings)))
    assert number(1400, "en") in text and "Warningonthesupersededversion" in text


@pytest.mark.parametrize(("state", "language"), [("UZ", "ru"), ("AF", "en")])
def test_request_letter(world: World, state: str, language: str) -> None:
    with session_scope(world.settings) as session:
        request = session.scalars(
            select(m.ReportRequest)
            .join(m.RangeState)
            .where(
                m.RangeState.code == state,
                m.ReportRequest.cycle_id == world.bukhara_cycle_id,
            )
        ).one()
        authorities = {
            a.kind: dict(a.name)
            for a in session.scalars(
                select(m.Authority).where(m.Authority.state_id == request.state_id)
            )
        }
        letter = request_letter_for(session, request.id, world.settings)
    assert letter.language == language
    text = squash(pdf_text(render_request_letter(letter, world.settings)))
    name = authorities["foreign_affairs"]
    assert squash(name.get(language) or name["en"]) in text
    focal = authorities["focal_ministry"]
    assert squash(focal.get(language) or focal["en"]) in text
    assert squash(letter.reference) in text
    assert "11.24" in text and "2.5.3" in text
    deadline = Formatter(language).date(dt.date(2025, 3, 31))
    assert squash(deadline) in text
    assert ("cc:" if language == "en" else "Копия:") in text


# --------------------------------------------------------------------------------------------
# Languages
# --------------------------------------------------------------------------------------------


def test_numbers_and_dates_per_language() -> None:
    assert Formatter("en").number(1475) == "1,475"
    assert Formatter("ru").number(1475) == "1\u00a0475"
    assert Formatter("fr").number(1475) == "1\u202f475"
    assert Formatter("ru").signed(-35) == "\u221235" and Formatter("en").signed(398) == "+398"
    assert Formatter("en").date(dt.date(2025, 3, 31)) == "31 March 2025"
    assert Formatter("fr").date("2025-03-31") == "31 mars 2025"
    assert Formatter("ru").date(dt.datetime(2025, 3, 31, 23, tzinfo=dt.UTC)).startswith("31 марта")


def _extracted_ids() -> set[str]:
    ids: set[str] = set()
    python = [
        *extract_from_dir(str(PROJECT / "mou" / "reporting"), [("**.py", "python")]),
        *extract_from_dir(str(PROJECT / "mou" / "documents"), [("**.py", "python")]),
    ]
    templates = extract_from_dir(
        str(REPORTS),
        [("**.html", "jinja2")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}},
    )
    for _file, _line, message, _comments, _context in [*python, *templates]:
        ids.add(message[0] if isinstance(message, tuple) else message)
    return ids


def test_every_text_is_translated() -> None:
    ids = _extracted_ids()
    assert len(ids) > 100
    with (REPORTS / "locale" / "messages.pot").open("rb") as handle:
        template = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    assert template == ids, "messages.pot is stale: see templates/reports/locale/babel.cfg"
    placeholder = re.compile(r"%\((\w+)\)s")
    for language in ("ru", "fr"):
        path = REPORTS / "locale" / language / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        for msgid in ids:
            message = catalog.get(msgid)
            assert message is not None, (language, msgid)
            assert not message.fuzzy, (language, msgid)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            for string in strings:
                assert string, (language, msgid)
                # A translation may leave a name out (Russian cases), never invent one.
                assert set(placeholder.findall(string)) <= set(placeholder.findall(msgid))


@pytest.mark.parametrize("which", ["bukhara", "cami"])
def test_a_quoted_text_in_another_language_is_marked_as_such(world: World, which: str) -> None:
    """Narratives are quoted in the original: in the English report a Russian one says it is
    in Russian (and carries lang="ru"); in the Russian report it says nothing more."""
    import dataclasses

    from mou.reporting.progress_summary import progress_summary_html

    data = world.bukhara if which == "bukhara" else world.cami
    first, *rest = data.narratives
    quoted = "Проведены рейды против браконьерства в пойме Амударьи."
    data = dataclasses.replace(data, narratives=(dataclasses.replace(first, text=quoted), *rest))
    english = progress_summary_html(data, "en", world.settings)
    assert f'<p class="quote" lang="ru">{quoted}</p>' in english
    assert "in Russian" in english
    russian = progress_summary_html(data, "ru", world.settings)
    assert f'<p class="quote" lang="ru">{quoted}</p>' in russian
    assert "на русском языке" not in russian
    # The English texts of the same report are marked in the Russian one.
    assert ("на английском языке" in russian) == any(
        not re.search("[\u0400-\u04ff]", n.text) for n in rest
    )


def test_a_translation_the_state_gave_is_quoted_beside_the_original(world: World) -> None:
    """A Russian text followed by "[en]" and its English: the English summary quotes the
    Russian, marked, with the state's translation under it; the Russian summary quotes the
    Russian alone, without the tag or the translation."""
    import dataclasses

    first = world.bukhara.narratives[0]
    original = "Патрулирование вдоль Амударьи было усилено в отчетный период."
    english = "Patrols were stepped up along the Amu Darya in the reporting period."
    narratives = tuple(
        dataclasses.replace(n, text=f"{original}\n[en]\n{english}") if n is first else n
        for n in world.bukhara.narratives
    )
    # A proposal too, in its table.
    [proposal, *others] = world.bukhara.proposals
    proposed = "Провести совместный учет с соседними государствами."
    proposal = dataclasses.replace(proposal, text=f"{proposed}\n[en]\nHold a joint count.")
    data = dataclasses.replace(world.bukhara, narratives=narratives, proposals=(proposal, *others))
    squash = re.compile(r"\s+")
    texts = {}
    for language in ("en", "ru"):
        pdf = render_progress_summary(data, language, world.settings)
        texts[language] = squash.sub(" ", pdf_text(pdf, skip_annex=True))
    assert squash.sub(" ", original) in texts["en"] and english in texts["en"]
    assert "in Russian, with the State's translation" in texts["en"]
    assert squash.sub(" ", original) in texts["ru"]
    assert english not in texts["ru"] and "[en]" not in texts["ru"] + texts["en"]
    assert f"{proposed} Translation by the State: Hold a joint count." in texts["en"]
    assert proposed in texts["ru"] and "Hold a joint count." not in texts["ru"]


@pytest.mark.parametrize(
    ("which", "language"), [("bukhara", "en"), ("bukhara", "ru"), ("cami", "fr")]
)
def test_dates_are_written_out_never_as_numbers(world: World, which: str, language: str) -> None:
    """ "1 Dec 2026", "1 дек. 2026 г.", "1er déc. 2026": never 01/12/2026 or 01.12.2026, which a
    reader in another country reads as another day (quoted narratives aside)."""
    data = world.bukhara if which == "bukhara" else world.cami
    quoted = " ".join(n.text for n in data.narratives)
    found = [
        d
        for d in re.findall(r"\b\d{1,2}[./]\d{1,2}[./](?:19|20)\d\d\b", world.text(which, language))
        if d not in quoted
    ]
    assert not found, found


HEADING = re.compile(r"^\d+(?:\.\d+)+\.\s+\S")  # "3.2. Implementation matrix: ..."


def _page_lines(pdf: bytes, last: int) -> list[list[str]]:
    reader = PdfReader(io.BytesIO(pdf))
    return [
        [line.strip() for line in (page.extract_text() or "").splitlines() if line.strip()]
        for page in reader.pages[:last]
    ]


@pytest.mark.parametrize("which", ["bukhara", "cami"])
def test_no_heading_is_left_alone_at_the_foot_of_a_page(world: World, which: str) -> None:
    """The last lines of a page (above its number) are never a numbered heading whose text
    starts on the next page."""
    for number, lines in enumerate(_page_lines(world.pdf(which, "en"), 14), start=1):
        body = [x for x in lines if not x.isdigit()]
        if len(body) < 3:
            continue
        assert not HEADING.match(body[-1]), (number, body[-3:])


def _kids(element: DictionaryObject) -> list[Any]:
    kids = element.get("/K")
    if kids is None:
        return []
    return [k.get_object() for k in (kids if isinstance(kids, list) else [kids])]


BLOCKS = {"/P", "/H1", "/H2", "/H3", "/H4", "/L", "/Figure", "/BlockQuote", "/Caption"}


def _table_parts(pdf: bytes) -> list[list[tuple[int, int]]]:
    """Each table's parts, page by page, from the PDF's tag tree, as (page, body rows).

    WeasyPrint tags a table split over pages as one Table element per page (the section
    around it too), the first with the caption if it has one: a part is a continuation when
    the block just before it, in reading order, is a part of a table on the page before."""
    reader = PdfReader(io.BytesIO(pdf))
    pages = {page.indirect_reference.idnum: n for n, page in enumerate(reader.pages, start=1)}
    tables: list[list[tuple[int, int]]] = []
    last: list[tuple[str, int]] = [("start", 0)]  # the block read last: (kind, page)

    def walk(element: DictionaryObject) -> None:
        for kid in _kids(element):
            if not isinstance(kid, DictionaryObject) or "/S" not in kid:
                continue
            page = pages[kid.raw_get("/Pg").idnum] if "/Pg" in kid else last[0][1]
            if kid["/S"] == "/Table":
                inside = [p for p in _kids(kid) if isinstance(p, DictionaryObject)]
                rows = sum(len(_kids(p)) for p in inside if p.get("/S") == "/TBody")
                captioned = any(p.get("/S") == "/Caption" for p in inside)
                if not captioned and last[0] == ("table", page - 1):
                    tables[-1].append((page, rows))
                else:
                    tables.append([(page, rows)])
                last[0] = ("table", page)
            elif kid["/S"] in BLOCKS:
                last[0] = ("block", page)
            else:  # a section or a division: what matters is inside
                walk(kid)

    walk(reader.trailer["/Root"]["/StructTreeRoot"])
    return tables


@pytest.mark.parametrize(
    ("which", "language"), [("bukhara", "en"), ("bukhara", "ru"), ("cami", "en"), ("cami", "fr")]
)
def test_no_table_row_or_caption_is_left_alone_where_a_table_breaks(
    world: World, which: str, language: str
) -> None:
    """A table split over pages keeps two rows at least on each side of each break, and its
    caption stays with its first rows: read from the tagged PDF, page by page."""
    tables = _table_parts(world.pdf(which, language))
    split = [parts for parts in tables if len(parts) > 1]
    assert len(tables) > 10 and split  # the fixtures have tables that run over a page
    for parts in tables:
        first_page, first_rows = parts[0]
        assert first_rows > 0, f"a caption alone at the foot of page {first_page}"
        for page, rows in parts[1:]:
            assert rows >= 2, f"one row alone at the top of page {page}"
        for page, rows in parts[:-1]:
            assert rows >= 2, f"one row alone at the foot of page {page}"


def test_the_short_matrix_stays_on_one_page_wherever_it_falls(world: World) -> None:
    """The Bukhara theme matrix (6 rows) is never split from its heading or over two pages:
    pushed down a few centimetres at a time, so that it falls across every part of a page."""
    from mou.i18n.languages import pick

    html = progress_summary_html(world.bukhara, "en", world.settings)
    html = html[: html.index('<section class="chapter" id="sec-threats"')]  # what follows
    marker = '<section class="matrix-section"'
    assert html.count(marker) == 1
    themes = [pick(line.label, "en") for line in world.bukhara.activities[0].groups[0].lines]
    heading = re.compile(r"^3\.2\. .*$", re.M)
    squash = re.compile(r"\s+")
    for shift in range(0, 250, 25):  # mm: the page's text area is 253 mm high
        spacer = f'<div style="height: {shift}mm"></div>'
        pdf = html_to_pdf(html.replace(marker, spacer + marker), world.settings)
        pages = [page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages]
        [page] = [text for text in pages if heading.search(text)]
        after = squash.sub("", page[heading.search(page).start() :])
        assert all(squash.sub("", theme) in after for theme in themes), shift


MM = 72 / 25.4


def _body_fill(page: Any) -> float:
    """How far down its text area (inside the page's margins, report.css) a page is written:
    0 empty, 1 to the foot."""
    top, bottom = float(page.mediabox.height) - 24 * MM, 20 * MM
    lines: list[float] = []

    def visit(text: str, cm: list[float], tm: list[float], _font: Any, _size: Any) -> None:
        if text.strip():  # the baseline in page space: the text matrix within the current one
            lines.append(tm[4] * cm[1] + tm[5] * cm[3] + cm[5])

    page.extract_text(visitor_text=visit)
    body = [y for y in lines if bottom - 2 * MM <= y <= top]
    return (top - min(body)) / (top - bottom) if body else 0.0


@pytest.mark.parametrize(
    ("which", "language"), [("bukhara", "en"), ("bukhara", "ru"), ("cami", "fr")]
)
def test_chapters_follow_on_without_leaving_near_empty_pages(
    world: World, which: str, language: str
) -> None:
    """Every portrait page is written at least a third of the way down, but the last one and
    the one before an annex (which starts a page); chapters do not each take a new page."""
    reader = PdfReader(io.BytesIO(world.pdf(which, language)))
    annexes = {
        reader.get_destination_page_number(destination)
        for name, destination in reader.named_destinations.items()
        if name in ("annex", "annex-focal-points")
    }
    assert annexes
    for index, page in enumerate(reader.pages[:-1]):
        if index + 1 in annexes or page.mediabox.width > page.mediabox.height:
            continue
        if which == "cami" and index > 30:
            break  # the rest is the annex (pypdf reads CAMI's dense pages slowly)
        assert _body_fill(page) > 1 / 3, f"page {index + 1} is near-empty"
    starts = [
        reader.get_destination_page_number(destination)
        for name, destination in reader.named_destinations.items()
        if name.startswith("sec-") and name not in ("sec-matrix-0", "sec-matrix-1")
    ]
    if which == "bukhara":  # CAMI's chapters lie between its landscape matrix pages
        assert len(set(starts)) < len(starts), "each chapter starts a page of its own"


def _text_starts(page: Any) -> list[tuple[float, str]]:
    """Where each piece of a page's text begins, across: (x in points, text)."""
    starts: list[tuple[float, str]] = []

    def visit(text: str, cm: list[float], tm: list[float], _font: Any, _size: Any) -> None:
        if text.strip():  # the text matrix within the current one
            starts.append((tm[4] * cm[0] + tm[5] * cm[2] + cm[4], text.strip()))

    page.extract_text(visitor_text=visit)
    return starts


def _figure_pages(pdf: bytes) -> set[int]:
    reader = PdfReader(io.BytesIO(pdf))
    pages = {page.indirect_reference.idnum: n for n, page in enumerate(reader.pages, start=1)}
    found: set[int] = set()

    def walk(element: DictionaryObject) -> None:
        for kid in _kids(element):
            if isinstance(kid, DictionaryObject) and "/S" in kid:
                if kid["/S"] == "/Figure" and "/Pg" in kid:
                    found.add(pages[kid.raw_get("/Pg").idnum])
                walk(kid)

    walk(reader.trailer["/Root"]["/StructTreeRoot"])
    return found


@pytest.mark.parametrize(
    ("which", "language"), [("bukhara", "en"), ("bukhara", "ru"), ("cami", "fr")]
)
def test_no_table_runs_past_the_right_margin(world: World, which: str, language: str) -> None:
    """No text begins right of the text area (report.css margins): a table too wide for the
    page (the Russian status table, with its dates kept on one line) is cut off at the edge.
    Pages with a chart are left out (pypdf places an SVG's text imprecisely)."""
    pdf = world.pdf(which, language)
    figures = _figure_pages(pdf)
    for number, page in enumerate(PdfReader(io.BytesIO(pdf)).pages[:30], start=1):
        if number in figures:
            continue
        width = float(page.mediabox.width)
        right = width - (14 if width > float(page.mediabox.height) else 18) * MM
        starts = _text_starts(page)
        assert starts
        past = [text for x, text in starts if x > right]
        assert not past, (number, past[:3])


def test_states_go_by_the_code_of_their_letters_and_receipts(world: World) -> None:
    """The CAMI matrix is headed by codes: the ISO 3166 alpha-2 codes the request references
    (CMS/CAMI/2024-2026/KZ), workbook names and receipts use, never a second set (KAZ)."""
    text = re.sub(r"\s+", " ", world.text("cami", "en"))
    for state in world.cami.states:
        assert f"{state.state.code}: {state.state.label('en')}" in text
        assert not re.search(rf"\b{state.state.iso3}\b", text), state.state.iso3


def test_key_messages_list_each_state_once_where_it_stands(world: World) -> None:
    """A state whose correction was requested keeps its timeliness but is not "reported":
    it is named under the correction only, never beside the states that reported."""
    import dataclasses

    from mou.i18n.formatting import Formatter
    from mou.reporting.progress_summary import key_messages

    data = world.bukhara
    first, *rest = data.states
    assert first.timeliness is not None  # it had an accepted return
    changed = dataclasses.replace(first, outcome="correction_requested")
    data = dataclasses.replace(data, states=(changed, *rest))
    messages = key_messages(data, "en", lambda text: text, Formatter("en"))
    name = first.state.label("en")
    named = [m for m in messages if name in m]
    assert len(named) == 1 and named[0].startswith("Correction requested"), messages
    accepted = sum(1 for s in data.states if s.outcome == "accepted")
    assert messages[0].startswith(f"{accepted} of the {data.counts.requested} States")
