"""Reading an incoming email without a database or a server: who and which thread, whether a
machine wrote it, bounces, and the files it carries (zips and forwarded messages too)."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

import pytest

from mou.intake.documents import DOCX, ODT, PDF, PNG, XLSX, sniff_document
from mou.mailbox.message import parse_mail
from tests.mailbox_mail import (
    delivery_status_notification,
    exim_bounce,
    forwarded,
    reply,
    xlsx,
    zipped,
)


def office_file(names: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in names.items():
            archive.writestr(name, data)
    return buffer.getvalue()


XLSX_BYTES = office_file({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"<w/>"})
TEMPLATED = office_file(
    {"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"<w/>", "docProps/custom.xml": b"<c/>"}
)


def request() -> EmailMessage:
    mail = reply(None, "cms.secretariat@example.org", subject="Request", to="mfa@example.org")
    return mail


def test_a_reply_names_its_thread_and_sender() -> None:
    original = request()
    answer = reply(
        original, "Focal Point <focal@example.org>", attachments=[xlsx("r.xlsx", XLSX_BYTES)]
    )
    mail = parse_mail(answer.as_bytes())
    assert mail.sender == "focal@example.org"
    assert mail.message_id == answer["Message-ID"]
    assert mail.thread_ids == (original["Message-ID"],)
    assert mail.automatic is None and mail.bounce is None
    assert [w.filename for w in mail.workbooks] == ["r.xlsx"]


@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        ({"Auto-Submitted": "auto-replied"}, None),
        ({"Auto-Submitted": "auto-generated"}, None),
        ({"X-Autoreply": "yes"}, None),
        ({"X-Autorespond": "on"}, None),
        ({"Precedence": "bulk"}, None),
        ({"Precedence": "auto_reply"}, None),
        ({"X-Auto-Response-Suppress": "All"}, None),
        ({"List-Id": "<news.example.org>"}, None),
        ({}, "Automatic reply: Request"),
        ({}, "Автоматический ответ: Запрос"),
        ({}, "Réponse automatique : Demande"),
        ({}, "Out of Office: Request"),
        ({}, "Abwesenheitsnotiz: Request"),
        ({}, "Absente du bureau : Demande"),
    ],
)
def test_automatic_messages_are_told_apart(headers: dict[str, str], subject: str | None) -> None:
    mail = parse_mail(
        reply(request(), "focal@example.org", headers=headers, subject=subject).as_bytes()
    )
    assert mail.automatic is not None


def test_a_subject_that_only_begins_like_an_absence_notice_is_not_automatic() -> None:
    mail = parse_mail(
        reply(
            request(), "focal@example.org", subject="Re: Report (the minister is absent)"
        ).as_bytes()
    )
    assert mail.automatic is None


def test_a_person_writing_auto_submitted_no_is_not_automatic() -> None:
    mail = parse_mail(
        reply(request(), "focal@example.org", headers={"Auto-Submitted": "no"}).as_bytes()
    )
    assert mail.automatic is None


def test_the_services_own_address_coming_back_is_never_answered() -> None:
    mail = parse_mail(
        reply(request(), "cms.secretariat@example.org").as_bytes(),
        own_address="CMS.Secretariat@example.org",
    )
    assert mail.automatic == "from the service's own address"


def test_a_delivery_status_notification_is_a_bounce_and_its_workbook_no_return() -> None:
    original = request()
    raw = delivery_status_notification(original, "mfa@example.org")
    mail = parse_mail(raw)
    assert mail.bounce is not None
    assert mail.bounce.original_message_id == original["Message-ID"]
    assert mail.bounce.recipients == ("mfa@example.org",)
    assert "5.1.1" in mail.bounce.reason and "User unknown" in mail.bounce.reason
    assert mail.workbooks == ()


def test_a_delay_notice_is_not_a_bounce() -> None:
    raw = delivery_status_notification(request(), "mfa@example.org", action="delayed")
    assert parse_mail(raw).bounce is None


def test_a_plain_text_bounce_names_the_message_and_the_reason() -> None:
    original = request()
    mail = parse_mail(exim_bounce(original, "mfa@example.org").as_bytes())
    assert mail.bounce is not None
    assert mail.bounce.original_message_id == original["Message-ID"]
    assert "550 No such user here" in mail.bounce.reason


def test_workbooks_are_found_in_zips_and_forwarded_messages() -> None:
    inner = reply(request(), "focal@example.org", attachments=[xlsx("inner.xlsx", XLSX_BYTES)])
    outer = forwarded(inner, "mfa@example.org")
    outer.add_attachment(
        zipped(("folder/zipped.xlsx", XLSX_BYTES), ("__MACOSX/._zipped.xlsx", b"junk")),
        maintype="application",
        subtype="zip",
        filename="returns.zip",
    )
    mail = parse_mail(outer.as_bytes())
    assert sorted(w.filename for w in mail.workbooks) == ["inner.xlsx", "zipped.xlsx"]
    assert mail.sender == "mfa@example.org"


def test_a_zip_bomb_is_cut_at_the_inflated_limit() -> None:
    bomb = zipped(("huge.xlsx", b"\0" * (5 * 2**20)))
    message = reply(request(), "focal@example.org")
    message.add_attachment(bomb, maintype="application", subtype="zip", filename="bomb.zip")
    mail = parse_mail(message.as_bytes(), max_inflated=2**20)
    assert mail.workbooks == ()
    assert any("too large once unpacked" in s for s in mail.skipped)


def test_among_several_spreadsheets_the_templated_ones_are_the_returns() -> None:
    message = reply(
        request(),
        "focal@example.org",
        attachments=[xlsx("report.xlsx", TEMPLATED), xlsx("census table.xlsx", XLSX_BYTES)],
    )
    mail = parse_mail(message.as_bytes())
    assert [w.filename for w in mail.workbooks] == ["report.xlsx"]
    assert [d.filename for d in mail.documents] == ["census table.xlsx"]


def test_a_message_without_message_id_or_from_is_still_read() -> None:
    mail = parse_mail(b"Subject: hello\r\n\r\nno headers to speak of\r\n")
    assert mail.message_id is None and mail.sender is None
    assert mail.automatic == "no From address"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.4\n...", PDF),
        (b"\x89PNG\r\n\x1a\n....", PNG),
        (office_file({"[Content_Types].xml": b"", "word/document.xml": b""}), DOCX),
        (XLSX_BYTES, XLSX),
        (office_file({"mimetype": ODT.encode(), "content.xml": b""}), ODT),
        (b"MZ\x90\x00", None),
        (b"<html><script>", None),
        (office_file({"readme.txt": b"a zip, not a document"}), None),
    ],
)
def test_documents_are_known_by_their_first_bytes(data: bytes, expected: str | None) -> None:
    assert sniff_document(data) == expected


def test_a_workbook_attached_without_a_file_name_is_still_a_return() -> None:
    message = reply(request(), "focal@example.org")
    message.add_attachment(
        XLSX_BYTES,
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        disposition="attachment",
    )
    mail = parse_mail(message.as_bytes())
    assert [w.filename for w in mail.workbooks] == ["attachment.xlsx"]
