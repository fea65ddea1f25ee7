"""SQLite and PostgreSQL accept and refuse the same inputs: text from a file or a sender that
is longer than its column is fitted before the insert, on both databases alike."""

from __future__ import annotations

import io
import re
import zipfile

from mou.catalogue.bootstrap import prepare_database
from mou.service.protocol import open_and_dispatch, process_submission, receive_file
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.test_protocol import DEADLINE, filled_return

LONG_SHEET = "1. General information " + "and a very long tab name indeed " * 5


def with_sheet_renamed(data: bytes, old: str, new: str) -> bytes:
    """The workbook with a tab renamed in workbook.xml, names pointing at it moved too (as a
    program that allows long names would write it)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "xl/workbook.xml":
                content = content.decode().replace(old, new).encode()
            target.writestr(item.filename, content)
    return buffer.getvalue()


def test_a_tab_name_longer_than_its_column_is_kept_cut_on_both_databases(
    settings: Settings,
) -> None:
    prepare_database(settings)
    cycle = open_and_dispatch(settings, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    data = filled_return(settings, cycle, "KZ", "en", reporting_institution=None)
    sheet = (
        re.search(
            rb'<sheet name="(1\.[^"]+)"', zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml")
        )
        .group(1)
        .decode()
    )
    renamed = with_sheet_renamed(data, sheet, LONG_SHEET)
    submission_id, _ = receive_file(settings, renamed, filename="kz.xlsx")
    outcome = process_submission(settings, submission_id)
    assert outcome.status == "rejected"
    assert [i.code for i in outcome.issues] == ["required"]  # the answer's own problem
    with session_scope(settings) as session:
        (issue,) = session.get(m.Submission, submission_id).issues
        assert len(issue.sheet) == 100 and issue.sheet.endswith("…")
        assert LONG_SHEET.strip() in issue.message  # the message names the whole tab


def test_a_sender_longer_than_an_address_can_be_is_not_kept_as_one(settings: Settings) -> None:
    prepare_database(settings)
    cycle = open_and_dispatch(settings, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    sender = "x" * 300 + "@example.org"
    submission_id, _ = receive_file(
        settings, filled_return(settings, cycle, "KZ"), filename="kz.xlsx", sender=sender
    )
    assert process_submission(settings, submission_id).status == "accepted"
    with session_scope(settings) as session:
        assert session.get(m.Submission, submission_id).sender is None
