"""A corpus of broken and hostile returns: each gets a clear answer, the raw file is kept,
nothing else changes, and the service keeps running."""

from __future__ import annotations

import datetime as dt
import io
import re
import resource
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from msoffcrypto.format.ooxml import OOXMLFile
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from mou.cycle.context import template_for
from mou.cycle.opening import open_cycle
from mou.intake.decide import sandbox_limits
from mou.settings import Settings
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import session_scope
from mou.workbook.builder import TemplateContext, build_template
from mou.workbook.extract import extract
from mou.workbook.identity import TemplateIdentity
from tests.test_workbook import Env, bukhara_answers, open_test_cycles, template
from tests.workbooks import (
    fill,
    libreoffice_convert,
    libreoffice_delete_row,
    submit_file,
    to_strict,
)

KEYED = {"threats", "action_plan_implementation"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return open_test_cycles(Settings(var_dir=tmp_path_factory.mktemp("hostile") / "var"))


def filled(env: Env, state: str = "KZ", language: str = "en", **changes) -> bytes:
    answers = bukhara_answers(language)
    answers.update(changes)
    return fill(template(env, state, language), answers, keyed=KEYED)


def rezip(
    data: bytes,
    replace: dict[str, bytes] | None = None,
    add: dict[str, bytes] | None = None,
    drop: Callable[[str], bool] = lambda name: False,
) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if drop(item.filename):
                continue
            content = (replace or {}).get(item.filename, source.read(item.filename))
            target.writestr(item.filename, content)
        present = set(source.namelist())
        missing = {k: v for k, v in (replace or {}).items() if k not in present}
        for name, content in {**missing, **(add or {})}.items():
            target.writestr(name, content)
    return buffer.getvalue()


def sheet_member(data: bytes, name: str) -> str:
    """The zip member of the worksheet that holds a defined name."""
    wb = load_workbook(io.BytesIO(data))
    sheet, _ = next(iter(wb.defined_names[name].destinations))
    index = wb.sheetnames.index(sheet) + 1
    return f"xl/worksheets/sheet{index}.xml"


def edit_xml(data: bytes, member: str, change: Callable[[str], str]) -> bytes:
    xml = zipfile.ZipFile(io.BytesIO(data)).read(member).decode()
    return rezip(data, replace={member: change(xml).encode()})


def with_names(data: bytes, change: Callable[[Workbook], None]) -> bytes:
    wb = load_workbook(io.BytesIO(data))
    change(wb)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# -- the corpus ------------------------------------------------------------------------------


def not_zip(env):
    return b"Dear Secretariat, please find our report below.\n" * 20


def empty(env):
    return b""


def truncated(env):
    data = filled(env)
    return data[: len(data) // 2]


def zip_bomb(env):
    return rezip(filled(env), add={"xl/media/image1.bin": b"\0" * (100 * 2**20)})


def xml_bomb(env):
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "{"&lol%s;" % (i - 1 if i > 1 else "") * 10}">' for i in range(1, 10)
        )
        + ']><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>&lol9;</t></si></sst>'
    )
    return rezip(filled(env), replace={"xl/sharedStrings.xml": laughs.encode()})


def utf16_xml_bomb(env):
    # The same entities in UTF-16, where "<!DOCTYPE" is not those bytes, in the shared
    # strings the workbook points to (so a reader parses them).
    laughs = zipfile.ZipFile(io.BytesIO(xml_bomb(env))).read("xl/sharedStrings.xml").decode()
    laughs = laughs.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    wired = shared_strings(1, filled(env))
    return rezip(wired, replace={"xl/sharedStrings.xml": laughs.encode("utf-16")})


def huge_dimension(env):
    data = filled(env)
    member = sheet_member(data, "national_total")
    return edit_xml(
        data,
        member,
        lambda x: re.sub(r'<dimension ref="[^"]+"', '<dimension ref="A1:XFD1048576"', x),
    )


def cells_across_the_grid(env):
    # A 2 KB sheet whose cells really span A1:XFD1048576: reading stops below the answers.
    data = filled(env)
    member = sheet_member(data, "national_total")

    def change(xml: str) -> str:
        xml = re.sub(r'<dimension ref="[^"]+"', '<dimension ref="A1:XFD1048576"', xml)
        far = '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
        return xml.replace("</sheetData>", far + "</sheetData>")

    return edit_xml(data, member, change)


def libreoffice_deleted_row(env):
    # A person deletes the empty row between two questions in LibreOffice, which then writes
    # <dimension ref="A1:F1048576"/> and an empty <row r="1048576">.
    data = libreoffice_delete_row(filled(env), "3. Population status", 24)
    sheet = zipfile.ZipFile(io.BytesIO(data)).read(sheet_member(data, "national_total")).decode()
    assert re.search(r'<dimension ref="A1:[A-Z]+1048576"', sheet), sheet[:800]
    assert '<row r="1048576"' in sheet
    return data


def strict_open_xml(env):
    # Excel's File > Save As > "Strict Open XML Spreadsheet (*.xlsx)".
    return to_strict(filled(env))


def million_rows(env):
    data = filled(env)
    member = sheet_member(data, "general_comments")
    rows = "".join(f'<row r="{r}"><c r="A{r}"><v>1</v></c></row>' for r in range(1000, 1_001_000))

    def change(xml: str) -> str:
        xml = re.sub(r'<dimension ref="[^"]+"', '<dimension ref="A1:A1000999"', xml)
        return xml.replace("</sheetData>", rows + "</sheetData>")

    return edit_xml(data, member, change)


def wrong_dimension(env):
    data = filled(env)
    member = sheet_member(data, "population_sites")
    return edit_xml(
        data, member, lambda x: re.sub(r'<dimension ref="[^"]+"', '<dimension ref="A1:A1"', x)
    )


def macros(env):
    return rezip(filled(env), add={"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0 fake vba project"})


def external_link(env):
    link = (
        b'<?xml version="1.0"?><externalLink xmlns="http://schemas.openxmlformats.org/'
        b'spreadsheetml/2006/main"><externalBook/></externalLink>'
    )
    return rezip(filled(env), add={"xl/externalLinks/externalLink1.xml": link})


def password_protected(env):
    source = io.BytesIO(filled(env))
    encrypted = io.BytesIO()
    office = OOXMLFile(source)
    office.encrypt("secret-password", encrypted)
    return encrypted.getvalue()


def legacy_xls(env):
    return libreoffice_convert(filled(env), ".xlsx", "xls")


def open_document(env):
    return libreoffice_convert(filled(env), ".xlsx", "ods")


def empty_workbook(env):
    buffer = io.BytesIO()
    Workbook().save(buffer)
    return buffer.getvalue()


def word_document(env):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document/>")
    return buffer.getvalue()


def workbook_outside_xl(env):
    # Excel and openpyxl open it (they follow _rels/.rels); no spreadsheet program writes it.
    return (Path(__file__).parent / "fixtures" / "real-xlsx" / "wtf_path.xlsx").read_bytes()


def _cycle_template(env: Env, period: str, after: Callable[[m.ReportingCycle], None]) -> bytes:
    with session_scope(env.settings) as session:
        cycle = open_cycle(session, env.settings, "bukhara-deer", period, dt.date(2030, 3, 1)).cycle
        data = template_for(session, env.settings, cycle.id, "KZ", "en")
        after(cycle)
    return fill(data, bukhara_answers(), keyed=KEYED)


def outdated_version(env):
    return _cycle_template(env, "2027-2028", lambda cycle: setattr(cycle, "form_version", 2))


def closed_cycle(env):
    return _cycle_template(env, "2021-2022", lambda cycle: setattr(cycle, "status", "closed"))


def unknown_cycle(env):
    from mou.forms import load_form

    context = TemplateContext(
        form=load_form(env.settings.forms_dir, "bukhara-deer"),
        identity=TemplateIdentity("bukhara-deer", 1, 999, "KZ", "en"),
        instrument_name="Bukhara Deer MoU",
        state_name="Kazakhstan",
        period="2099-2100",
        period_start=dt.date(2099, 1, 1),
        period_end=dt.date(2100, 12, 31),
        deadline=dt.date(2101, 1, 1),
    )
    return fill(build_template(context, env.settings), bukhara_answers(), keyed=KEYED)


def forged_token(env):
    def change(wb):
        token = wb.defined_names["mou_identity"].attr_text
        wb.defined_names["mou_identity"].attr_text = token[:-3] + (
            '000"' if token[-4] != "0" else '111"'
        )

    return with_names(filled(env), change)


def text_in_number(env):
    return filled(env, national_total="many deer")


def decimal_comma_in_count(env):
    return filled(env, national_total="9,99")


def ambiguous_thousands(env):
    return filled(env, national_total="1.475")


def negative_count(env):
    answers = bukhara_answers()
    answers["population_sites"][0][3] = -5
    return fill(template(env, "KZ"), answers, keyed=KEYED)


def future_year(env):
    answers = bukhara_answers()
    answers["population_sites"][0][2] = 2150
    return fill(template(env, "KZ"), answers, keyed=KEYED)


def ancient_year(env):
    answers = bukhara_answers()
    answers["population_sites"][0][2] = 1800
    return fill(template(env, "KZ"), answers, keyed=KEYED)


def missing_required(env):
    answers = bukhara_answers()
    del answers["reporting_institution"]
    return fill(template(env, "KZ"), answers, keyed=KEYED)


def unknown_choice(env):
    return filled(env, national_trend="Skyrocketing")


def overlong_text(env):
    return filled(env, reporting_institution="Ministry " * 60)


def formula_without_value(env):
    return filled(env, national_total="=SUM(1000,776)")


def stretched_name(env):
    def change(wb):
        defined = wb.defined_names["population_sites"]
        sheet = defined.attr_text.split("!")[0]
        defined.attr_text = f"{sheet}!$A$1:$XFD$1048576"

    return with_names(filled(env), change)


def deleted_name(env):
    return with_names(filled(env), lambda wb: wb.defined_names.pop("national_total"))


def corrupt_sheet_xml(env):
    data = filled(env)
    return edit_xml(data, sheet_member(data, "national_total"), lambda x: x[: len(x) // 2] + "<<>>")


def shared_strings(count: int, data: bytes) -> bytes:
    """Add a shared-strings part of ``count`` distinct 100-character strings."""
    items = "".join(f"<si><t>{i:08d}{'x' * 92}</t></si>" for i in range(count))
    sst = (
        '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/'
        f'spreadsheetml/2006/main" count="{count}" uniqueCount="{count}">{items}</sst>'
    )
    archive = zipfile.ZipFile(io.BytesIO(data))
    rels = (
        archive.read("xl/_rels/workbook.xml.rels")
        .decode()
        .replace(
            "</Relationships>",
            '<Relationship Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/sharedStrings" Target="/xl/sharedStrings.xml" Id="rIdFlood"/>'
            "</Relationships>",
        )
    )
    types = (
        archive.read("[Content_Types].xml")
        .decode()
        .replace(
            "</Types>",
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        )
    )
    return rezip(
        data,
        replace={
            "xl/sharedStrings.xml": sst.encode(),
            "xl/_rels/workbook.xml.rels": rels.encode(),
            "[Content_Types].xml": types.encode(),
        },
    )


def shared_strings_flood(env):
    return shared_strings(100_000, filled(env))


def future_submission_date(env):
    return filled(env, submission_date=dt.datetime(2099, 1, 1))


# (builder, expected status, expected code, a phrase the English message contains)
CORPUS = [
    (not_zip, "rejected", "not_a_workbook", "not an Excel workbook"),
    (empty, "rejected", "empty_file", "empty"),
    (truncated, "rejected", "corrupt", "damaged"),
    (zip_bomb, "rejected", "oversized_content", "unpacks to more than"),
    (xml_bomb, "rejected", "unsafe_xml", "not allowed"),
    (utf16_xml_bomb, "rejected", "unsafe_xml", "not allowed"),
    # A <dimension> is a hint: what a sheet claims is not what it holds.
    (huge_dimension, "accepted", None, None),
    (cells_across_the_grid, "accepted", None, None),
    (libreoffice_deleted_row, "accepted", None, None),
    (strict_open_xml, "accepted", None, None),
    (million_rows, "accepted", "extra_content", "only the answer cells were read"),
    (wrong_dimension, "accepted", None, None),
    (macros, "rejected", "macros", "macros"),
    (external_link, "accepted", "external_links", "links"),
    (password_protected, "rejected", "encrypted", "password"),
    (legacy_xls, "rejected", "legacy_xls", "Save As"),
    (open_document, "rejected", "ods", "OpenDocument"),
    (empty_workbook, "rejected", "no_identity", "not a reporting template"),
    (word_document, "rejected", "not_a_workbook", "not an Excel workbook"),
    (workbook_outside_xl, "rejected", "unusual_layout", "save it as Excel Workbook"),
    (outdated_version, "rejected", "outdated_form", "version 1"),
    (closed_cycle, "rejected", "cycle_closed", "closed"),
    (unknown_cycle, "rejected", "unknown_cycle", "does not know"),
    (forged_token, "rejected", "identity_tampered", "altered"),
    (text_in_number, "rejected", "not_integer", "many deer"),
    (decimal_comma_in_count, "rejected", "not_integer", "9,99"),
    (ambiguous_thousands, "rejected", "ambiguous_number", "1475"),
    (negative_count, "rejected", "below_min", "-5"),
    (future_year, "rejected", "above_max", "2150"),
    (ancient_year, "rejected", "below_min", "1800"),
    (missing_required, "rejected", "required", "Reporting institution"),
    (unknown_choice, "rejected", "unknown_choice", "Skyrocketing"),
    (overlong_text, "rejected", "too_long", "the limit is 300"),
    (formula_without_value, "rejected", "formula_without_value", "formula"),
    (stretched_name, "rejected", "range_too_large", "stretched"),
    (deleted_name, "rejected", "missing_name", "cannot be found"),
    (corrupt_sheet_xml, "rejected", "corrupt_sheet", "'3. Population status' is damaged"),
    (future_submission_date, "accepted", "future_date", "future"),
    (shared_strings_flood, "rejected", "oversized_content", "unpacks to more than"),
]


def _row_counts(settings: Settings) -> dict[str, int]:
    with session_scope(settings) as session:
        return {
            name: session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in m.Base.metadata.tables.items()
        }


@pytest.mark.parametrize(
    ("build", "status", "code", "phrase"), CORPUS, ids=[c[0].__name__ for c in CORPUS]
)
def test_hostile_return_gets_a_clear_answer(env: Env, build, status, code, phrase) -> None:
    data = build(env)
    before = _row_counts(env.settings)
    outcome, created = submit_file(env.settings, data, filename="../../etc/return.xlsx")
    assert created
    assert outcome.status == status, [i.message for i in outcome.issues]
    if code is None:
        assert outcome.issues == []
    else:
        issue = next((i for i in outcome.issues if i.code == code), None)
        assert issue is not None, [i.code for i in outcome.issues]
        assert phrase in issue.message
        assert "Traceback" not in issue.message
        assert issue.severity == ("error" if status == "rejected" else "warning")
    after = _row_counts(env.settings)
    # The raw file is kept; a refusal adds the submission and its issues, nothing else.
    assert filestore.read_bytes(env.settings.files_dir, filestore.sha256_of(data)) == data
    with session_scope(env.settings) as session:
        row = session.get(m.Submission, outcome.submission_id)
        assert row.filename == "return.xlsx"
    if status == "rejected":
        changed = {k for k in after if after[k] != before[k]}
        assert changed <= {
            "submissions",
            "validation_issues",
            "stored_files",
            "report_requests",
            "reporting_cycles",
        }
        assert after["answers"] == before["answers"]


def test_refusal_is_in_the_template_language(env: Env) -> None:
    outcome, _ = submit_file(
        env.settings, filled(env, "TJ", "ru", national_total="много"), filename="r.xlsx"
    )
    issue = next(i for i in outcome.issues if i.code == "not_integer")
    assert "должно быть целым числом" in issue.message and "много" in issue.message


def test_unreadable_file_is_answered_in_the_senders_language(env: Env) -> None:
    outcome, _ = submit_file(
        env.settings, b"not a workbook at all", filename="x.xlsx", sender="mfa.tj@example.org"
    )
    assert outcome.issues[0].code == "not_a_workbook"
    assert "Книга Excel" in outcome.issues[0].message


def _crowded(data: bytes, name: str, count: int) -> bytes:
    """``count`` more cells below everything on the sheet holding ``name``."""
    rows = "".join(
        f'<row r="{r}"><c r="A{r}"><v>1</v></c></row>' for r in range(1000, 1000 + count)
    )

    def change(xml: str) -> str:
        xml = re.sub(r'<dimension ref="[^"]+"', f'<dimension ref="A1:F{999 + count}"', xml)
        return xml.replace("</sheetData>", rows + "</sheetData>")

    return edit_xml(data, sheet_member(data, name), change)


def _damaged(data: bytes, member: str) -> bytes:
    """The zip with one member's bytes altered after its checksum was written."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            stored = zipfile.ZIP_STORED if item.filename == member else zipfile.ZIP_DEFLATED
            target.writestr(item.filename, source.read(item.filename), compress_type=stored)
    content = source.read(member)
    at = buffer.getvalue().index(content) + len(content) // 2
    damaged = bytearray(buffer.getvalue())
    damaged[at] ^= 0x01
    return bytes(damaged)


def _tab(data: bytes, name: str) -> str:
    sheet, _ = next(iter(load_workbook(io.BytesIO(data)).defined_names[name].destinations))
    return sheet


@pytest.mark.parametrize("language", ["en", "ru"])
def test_messages_name_the_tab_a_person_sees(env: Env, language: str) -> None:
    """A sheet is named as its tab reads (workbook.xml), never by its zip part (sheet4.xml)."""
    state = {"en": "AF", "ru": "TJ"}[language]
    data = filled(env, state, language, national_total=1811)
    tab = _tab(data, "national_total")

    crowded = _crowded(data, "national_total", 110_000)
    outcome, _ = submit_file(env.settings, crowded, filename="crowded.xlsx")
    assert outcome.status == "accepted", [i.message for i in outcome.issues]
    (warning,) = [i for i in outcome.issues if i.code == "extra_content"]
    assert tab in warning.message and ".xml" not in warning.message
    assert warning.sheet == tab

    tight = Settings(var_dir=env.settings.var_dir, max_sheet_cells=100_000)
    crowded = _crowded(filled(env, state, language, national_total=1812), "national_total", 110_000)
    outcome, _ = submit_file(tight, crowded, filename="too-many.xlsx")
    assert [i.code for i in outcome.issues] == ["sheet_too_large"]
    assert tab in outcome.issues[0].message and ".xml" not in outcome.issues[0].message

    damaged = _damaged(data, sheet_member(data, "national_total"))
    outcome, _ = submit_file(env.settings, damaged, filename="damaged.xlsx")
    assert [i.code for i in outcome.issues] == ["corrupt_sheet"]
    assert tab in outcome.issues[0].message and ".xml" not in outcome.issues[0].message


def test_strict_open_xml_reads_as_the_transitional_file(env: Env) -> None:
    data = filled(env, "UZ", national_total=1805)
    limits = sandbox_limits(env.settings).extract
    assert extract(to_strict(data), limits) == extract(data, limits)


def test_row_deleted_in_libreoffice_reads_the_same_answers(env: Env) -> None:
    data = filled(env, "TM", national_total=1806)
    deleted = libreoffice_delete_row(data, "3. Population status", 24)
    limits = sandbox_limits(env.settings).extract
    before, after = extract(data, limits), extract(deleted, limits)
    assert after.warnings == []
    assert {k: v.rows for k, v in after.names.items()} == {
        k: v.rows for k, v in before.names.items()
    }
    assert after.names["national_trend"].min_row == before.names["national_trend"].min_row - 1


def test_oversized_upload_is_refused(env: Env) -> None:
    small = Settings(var_dir=env.settings.var_dir, max_upload_bytes=1000)
    outcome, _ = submit_file(small, filled(env, "AF"), filename="big.xlsx")
    assert [i.code for i in outcome.issues] == ["file_too_large"]


def test_parse_that_runs_too_long_is_stopped_and_the_service_goes_on(env: Env) -> None:
    hurried = Settings(var_dir=env.settings.var_dir, parse_timeout_seconds=0.001)
    outcome, _ = submit_file(hurried, filled(env, "TM"), filename="slow.xlsx")
    assert [i.code for i in outcome.issues] == ["parse_timeout"]
    later, _ = submit_file(env.settings, filled(env, "TM", national_total=1800), filename="ok.xlsx")
    assert later.status == "accepted"


def test_parse_that_needs_too_much_memory_is_stopped(env: Env) -> None:
    # 65,000 strings (7.5 MB, under the part cap) need more than 40 MB to load, while an
    # ordinary return reads in under 32 MB.
    starved = Settings(var_dir=env.settings.var_dir, parse_memory_bytes=40 * 2**20)
    flood = shared_strings(65_000, filled(env, "UZ", national_total=1801))
    outcome, _ = submit_file(starved, flood, filename="m.xlsx")
    assert [i.code for i in outcome.issues] == ["parse_memory"]
    ordinary, _ = submit_file(starved, filled(env, "UZ", national_total=1802), filename="o.xlsx")
    assert ordinary.status == "accepted"


def test_the_corpus_leaves_the_service_process_small() -> None:
    # Parsing happens in the sandbox child: the test process itself stays far below 1 GB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 1024 * 1024
