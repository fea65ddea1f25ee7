"""The Secretariat's mailbox as an intake channel, against a real IMAP server (Dovecot on
loopback) and a real SMTP server (aiosmtpd), on SQLite and PostgreSQL: replies with a
workbook become returns with a threaded receipt, other mail is answered once or not at all,
bounces mark the message that did not arrive, and nothing happens twice."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mou.catalogue.bootstrap import prepare_database
from mou.cycle.standing import cycle_status
from mou.service.mailbox import poll_mailbox
from mou.service.protocol import open_and_dispatch
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.conftest import imap_settings, relay
from tests.imap_server import DovecotServer
from tests.mailbox_mail import (
    delivery_status_notification,
    exim_bounce,
    forwarded,
    reply,
    xlsx,
    zipped,
)
from tests.smtp_server import SmtpServer
from tests.test_protocol import filled_return

DEADLINE = dt.date(2027, 3, 31)
FOCAL_UZ = "environment.uz@example.org"
ROOT = Path(__file__).resolve().parent.parent


def parsed(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def count(settings: Settings, model: type, **where: object) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(model).filter_by(**where)) or 0


@pytest.fixture
def mailbox(settings: Settings, smtp: SmtpServer, dovecot: DovecotServer) -> Settings:
    """The service with the test relay and the test mailbox, and a cycle opened for KZ, UZ."""
    prepare_database(settings)
    service = imap_settings(relay(settings, smtp), dovecot)
    open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE, states=["KZ", "UZ"])
    return service


def request_email(smtp: SmtpServer) -> EmailMessage:
    [request] = [r.message for r in smtp.received if "mfa.uz@example.org" in str(r.message["To"])]
    return request


def sent_after(smtp: SmtpServer, before: int) -> list[EmailMessage]:
    return [r.message for r in smtp.received[before:]]


def test_a_reply_with_the_workbook_is_accepted_and_answered_in_its_thread(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    request = request_email(smtp)
    workbook = filled_return(mailbox, 1, "UZ", "ru")
    answer = reply(request, FOCAL_UZ, attachments=[xlsx("uz-report.xlsx", workbook)])
    dovecot.append(answer.as_bytes())
    before = len(smtp.received)

    report = poll_mailbox(mailbox)

    assert len(report.submissions) == 1
    with session_scope(mailbox) as session:
        submission = session.get(m.Submission, report.submissions[0])
        assert (submission.status, submission.channel, submission.sender) == (
            "accepted",
            "email",
            FOCAL_UZ,
        )
        row = session.scalars(select(m.MailMessage)).one()
        assert row.message_id == answer["Message-ID"] and row.kind == "return"
        assert row.sender == FOCAL_UZ and row.in_reply_to == request["Message-ID"]
    [receipt] = sent_after(smtp, before)
    assert receipt["In-Reply-To"] == answer["Message-ID"]
    assert receipt["References"].split() == [request["Message-ID"], answer["Message-ID"]]
    assert receipt["Subject"] == answer["Subject"]  # "Re: ..." once, not "Re: Re: ..."
    assert receipt["Auto-Submitted"] == "auto-replied"
    assert FOCAL_UZ in receipt["To"]
    assert "принят" in receipt.get_body(("plain",)).get_content()  # the template's language
    # Moved once its effects were committed.
    assert dovecot.messages("INBOX") == []
    assert len(dovecot.messages("Processed")) == 1
    # The request itself was automatic too.
    assert request["Auto-Submitted"] == "auto-generated"


def test_a_zipped_and_a_forwarded_workbook_are_accepted(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    request = request_email(smtp)
    first = filled_return(mailbox, 1, "UZ", "ru")
    second = filled_return(mailbox, 1, "UZ", "en")
    in_zip = reply(
        request,
        FOCAL_UZ,
        attachments=[("report.zip", "application/zip", zipped(("Отчет УЗ.xlsx", first)))],
    )
    inner = reply(request, FOCAL_UZ, attachments=[xlsx("corrected.xlsx", second)])
    dovecot.append(in_zip.as_bytes())
    dovecot.append(forwarded(inner, "mfa.uz@example.org").as_bytes())

    report = poll_mailbox(mailbox)

    assert len(report.submissions) == 2
    with session_scope(mailbox) as session:
        rows = session.scalars(
            select(m.Submission).where(m.Submission.id.in_(report.submissions))
        ).all()
        assert sorted((s.status, s.filename) for s in rows) == [
            ("accepted", "corrected.xlsx"),
            ("accepted", "Отчет УЗ.xlsx"),
        ]
        forwarded_one = next(s for s in rows if s.filename == "corrected.xlsx")
        assert forwarded_one.sender == "mfa.uz@example.org"  # who sent it in
    assert len(dovecot.messages("Processed")) == 2


def test_an_out_of_office_reply_gets_nothing(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    request = request_email(smtp)
    for headers in (
        {"Auto-Submitted": "auto-replied"},
        {"X-Autoreply": "yes"},
        {"Precedence": "auto_reply"},
    ):
        dovecot.append(
            reply(
                request, FOCAL_UZ, text="I am out of the office until Monday.", headers=headers
            ).as_bytes()
        )
    before = len(smtp.received)

    report = poll_mailbox(mailbox)

    assert [h["kind"] for h in report.handled] == ["auto_reply"] * 3
    assert sent_after(smtp, before) == []
    assert count(mailbox, m.OutboxMessage, kind="mail-answer") == 0
    assert len(dovecot.messages("Processed")) == 3


def test_a_message_with_no_workbook_gets_one_answer_and_no_second(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    request = request_email(smtp)
    question = reply(request, FOCAL_UZ, text="Could you send us the template in English?")
    dovecot.append(question.as_bytes())
    before = len(smtp.received)

    poll_mailbox(mailbox)

    [answer] = sent_after(smtp, before)
    assert answer["In-Reply-To"] == question["Message-ID"]
    assert answer["Auto-Submitted"] == "auto-replied"
    assert answer["To"] == FOCAL_UZ
    body = answer.get_body(("plain",)).get_content()
    assert "книги отчета" in body and ".xlsx" in body  # Uzbekistan's language: Russian
    # The same message delivered again (a server that redelivers, a second copy in the
    # folder), and a second message from the same sender the same day: no second answer.
    dovecot.append(question.as_bytes())
    dovecot.append(reply(request, FOCAL_UZ, text="Hello again?").as_bytes())
    again = poll_mailbox(mailbox)
    assert again.already == 1
    assert [a["Message-ID"] for a in sent_after(smtp, before)] == [answer["Message-ID"]]
    assert count(mailbox, m.OutboxMessage, kind="mail-answer") == 1


def test_an_unknown_sender_is_answered_in_english_and_russian(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    dovecot.append(reply(None, "someone@elsewhere.example.net", subject="Question").as_bytes())
    before = len(smtp.received)
    poll_mailbox(mailbox)
    [answer] = sent_after(smtp, before)
    body = answer.get_body(("plain",)).get_content()
    assert "no report workbook" in body.lower() or "did not contain a report workbook" in body
    assert "книги отчета" in body


def test_a_bounce_marks_the_request_bounced_and_tells_the_secretariat_once(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    request = request_email(smtp)
    dsn = delivery_status_notification(request, "mfa.uz@example.org")
    dovecot.append(dsn)
    before = len(smtp.received)

    report = poll_mailbox(mailbox)

    assert [h["kind"] for h in report.handled] == ["bounce"]
    with session_scope(mailbox) as session:
        message = session.scalars(
            select(m.OutboxMessage).filter_by(kind="request", key="request:1:UZ:1")
        ).one()
        assert message.status == "bounced"
        assert "5.1.1" in message.last_error and "mfa.uz@example.org" in message.last_error
        status = cycle_status(session, message.cycle_id)
    [uz] = [s for s in status["states"] if s["state"] == "UZ"]
    assert [p["status"] for p in uz["mail_problems"]] == ["bounced"]
    [alert] = sent_after(smtp, before)
    assert alert["To"] == mailbox.mail_from
    assert "not delivered" in alert["Subject"] and request_key_of(alert)
    assert "mou request resend 1 --state UZ" in alert.get_body(("plain",)).get_content()
    # The same bounce read again: no second alert.
    dovecot.append(dsn)
    assert poll_mailbox(mailbox).already == 1
    assert len(sent_after(smtp, before)) == 1
    # `mou status` shows it.
    shown = subprocess.run(
        [sys.executable, "-m", "mou", "status", "1"],
        env={**os.environ, **_env(mailbox)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "request email bounced" in shown


def request_key_of(alert: EmailMessage) -> bool:
    return "request:" in alert["Subject"]


def test_a_plain_text_bounce_of_a_receipt_is_recognised(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    request = request_email(smtp)
    dovecot.append(exim_bounce(request, "mfa.uz@example.org").as_bytes())
    poll_mailbox(mailbox)
    assert count(mailbox, m.OutboxMessage, kind="request", status="bounced") == 1


def _env(settings: Settings) -> dict[str, str]:
    return {
        "MOU_VAR_DIR": str(settings.var_dir),
        "MOU_DATABASE_URL": settings.effective_database_url,
        "MOU_SECRET": settings.secret,
        "MOU_SMTP_HOST": settings.smtp_host,
        "MOU_SMTP_PORT": str(settings.smtp_port),
        "MOU_IMAP_HOST": settings.imap_host,
        "MOU_IMAP_PORT": str(settings.imap_port),
        "MOU_IMAP_USER": settings.imap_user,
        "MOU_IMAP_PASSWORD": settings.imap_password,
        "MOU_IMAP_SECURITY": settings.imap_security,
        "PREFECT_API_URL": "",
    }


KILLED_AFTER_COMMIT = textwrap.dedent(
    """
    import os, signal
    from mou.mailbox import imap
    from mou.service.mailbox import poll_mailbox
    from mou.settings import Settings

    def killed(self, uid):  # the commit is done, the move never happens: kill -9 here
        os.kill(os.getpid(), signal.SIGKILL)

    imap.ImapMailbox.done = killed
    poll_mailbox(Settings())
    """
)


def test_the_same_message_read_again_after_a_kill_between_commit_and_move_is_one_return(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    request = request_email(smtp)
    workbook = filled_return(mailbox, 1, "UZ", "ru")
    dovecot.append(reply(request, FOCAL_UZ, attachments=[xlsx("uz.xlsx", workbook)]).as_bytes())

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_COMMIT],
        env={**os.environ, **_env(mailbox), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert count(mailbox, m.Submission) == 1  # committed before the kill
    assert len(dovecot.messages("INBOX")) == 1  # but still on the server

    again = poll_mailbox(mailbox)

    assert again.already == 1 and again.submissions == []
    assert count(mailbox, m.Submission) == 1
    assert count(mailbox, m.MailMessage) == 1
    assert dovecot.messages("INBOX") == [] and len(dovecot.messages("Processed")) == 1


def test_supporting_documents_are_kept_with_the_return(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    request = request_email(smtp)
    workbook = filled_return(mailbox, 1, "UZ", "ru")
    plan = b"%PDF-1.7\n% national plan\n" + b"0" * 1000
    map_png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    fake = b"MZ\x90\x00 this is a program"
    dovecot.append(
        reply(
            request,
            FOCAL_UZ,
            attachments=[
                xlsx("uz.xlsx", workbook),
                ("plan.pdf", "application/pdf", plan),
                ("range map.png", "image/png", map_png),
                ("plan.pdf.exe", "application/pdf", fake),
            ],
        ).as_bytes()
    )

    report = poll_mailbox(mailbox)

    with session_scope(mailbox) as session:
        documents = session.scalars(select(m.SupportingDocument)).all()
        assert sorted((d.filename, d.content_type) for d in documents) == [
            ("plan.pdf", "application/pdf"),
            ("range map.png", "image/png"),
        ]
        assert {d.submission_id for d in documents} == set(report.submissions)
    assert "unsupported_document" in report.handled[0]["note"]


def test_an_xls_attachment_gets_the_same_answer_as_on_the_portal(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    request = request_email(smtp)
    legacy = bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 2000
    dovecot.append(
        reply(
            request, FOCAL_UZ, attachments=[("old.xls", "application/vnd.ms-excel", legacy)]
        ).as_bytes()
    )
    before = len(smtp.received)

    poll_mailbox(mailbox)

    with session_scope(mailbox) as session:
        submission = session.scalars(select(m.Submission)).one()
        assert submission.status == "rejected"
        [issue] = submission.issues
        assert issue.code == "legacy_xls"
    [receipt] = sent_after(smtp, before)
    assert receipt["In-Reply-To"] is not None
    assert issue.message in receipt.get_body(("plain",)).get_content()


def test_two_readers_at_once_make_one_return(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    import threading

    from mou.mailbox.reader import read_mailbox

    request = request_email(smtp)
    workbook = filled_return(mailbox, 1, "UZ", "ru")
    dovecot.append(reply(request, FOCAL_UZ, attachments=[xlsx("uz.xlsx", workbook)]).as_bytes())
    results = []
    start = threading.Barrier(2)

    def read() -> None:
        start.wait()
        try:
            results.append(read_mailbox(mailbox))
        except Exception as exc:  # the other reader moved it under this one
            results.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=60)

    assert count(mailbox, m.Submission) == 1
    assert count(mailbox, m.MailMessage) == 1
    assert sum(len(r.submissions) for r in results if not isinstance(r, Exception)) == 1


def test_mailbox_poll_refuses_without_a_mailbox(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mou", "mailbox", "poll"],
        env={**os.environ, "MOU_VAR_DIR": str(settings.var_dir), "MOU_IMAP_HOST": ""},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "MOU_IMAP_HOST" in done.stderr and "Traceback" not in done.stderr


def test_mailbox_poll_says_when_the_password_is_wrong_and_never_shows_it(
    mailbox: Settings, dovecot: DovecotServer
) -> None:
    wrong = {**_env(mailbox), "MOU_IMAP_PASSWORD": "not-the-password-42"}
    done = subprocess.run(
        [sys.executable, "-m", "mou", "mailbox", "poll", "--json"],
        env={**os.environ, **wrong},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "refused" in done.stderr and "not-the-password-42" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_the_imap_password_is_never_shown(tmp_path: Path) -> None:
    from mou.service.serve import banner

    configured = Settings(
        var_dir=tmp_path / "var",
        imap_host="imap.example.org",
        imap_user="reports@example.org",
        imap_password="a-mailbox-password-77",
    )
    assert "a-mailbox-password-77" not in repr(configured)
    shown = "\n".join(banner(configured, "http://127.0.0.1:4200/api"))
    assert "reports@example.org@imap.example.org:993/INBOX (ssl)" in shown
    assert "a-mailbox-password-77" not in shown


def test_a_workbook_of_another_state_in_a_states_thread_is_refused(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    # The sender is not in the address book: only the thread (UZ's request) says whose
    # report to expect, and the workbook's signed identity says Kazakhstan.
    request = request_email(smtp)
    kazakh = filled_return(mailbox, 1, "KZ", "ru")
    dovecot.append(
        reply(
            request, "deputy@ministry.example.org", attachments=[xlsx("kz.xlsx", kazakh)]
        ).as_bytes()
    )
    report = poll_mailbox(mailbox)
    with session_scope(mailbox) as session:
        submission = session.get(m.Submission, report.submissions[0])
        assert submission.status == "rejected"
        assert [i.code for i in submission.issues] == ["wrong_state"]


def test_mailbox_poll_json_reports_the_pass(
    mailbox: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    import json

    request = request_email(smtp)
    workbook = filled_return(mailbox, 1, "UZ", "ru")
    dovecot.append(reply(request, FOCAL_UZ, attachments=[xlsx("uz.xlsx", workbook)]).as_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "mou", "mailbox", "poll", "--json"],
        env={**os.environ, **_env(mailbox)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["seen"] == 1 and len(report["submissions"]) == 1
    assert [h["kind"] for h in report["handled"]] == ["return"]
    assert count(mailbox, m.Submission, status="accepted") == 1
