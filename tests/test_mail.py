"""The outbox against real parts: the project database (SQLite and PostgreSQL), the file store
and an aiosmtpd SMTP server on a port the OS chose. Time is passed in as ``now``, never slept."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections import Counter
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from mou.mail.delivery import MAX_ATTEMPTS, DeliveryReport, deliver_pending, retry_delay
from mou.mail.message import build_email, eml_filename
from mou.mail.outbox import Attachment, enqueue_message, outbox_summary
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.smtp_server import SmtpServer

SUBJECT_RU = "Запрос национального отчёта: Бухарский олень, 2025–2026"
BODY_RU = "Уважаемые коллеги,\n\nпросим заполнить прилагаемую форму отчёта.\n"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


from tests.conftest import relay  # noqa: E402


def enqueue(session: Session, settings: Settings, key: str, **fields: Any) -> m.OutboxMessage:
    values: dict[str, Any] = {
        "kind": key.split(":", 1)[0],
        "to": ["mfa@example.kz"],
        "cc": [],
        "subject": SUBJECT_RU,
        "body_text": BODY_RU,
    }
    values.update(fields)
    row, created = enqueue_message(session, settings, key=key, **values)
    assert created
    return row


def rows(session: Session) -> list[m.OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(m.OutboxMessage).order_by(m.OutboxMessage.id)))


def utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands timestamps back without their zone; the outbox writes UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def mailboxes(raw: bytes, header: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, names decoded per RFC 2047.

    Not ``policy.default``: its address parser keeps the folding space between two encoded
    words of one long display name ("иностранны х"), which RFC 2047 says to drop.
    """
    value = BytesParser(policy=policy.compat32).parsebytes(raw)[header]
    return [(str(make_header(decode_header(name))), addr) for name, addr in getaddresses([value])]


# --- enqueue ---------------------------------------------------------------------------------


def test_same_key_twice_is_one_row_and_one_email(
    session: Session, settings: Settings, smtp: SmtpServer
) -> None:
    first, created = enqueue_message(
        session,
        settings,
        key="request:1:KZ:1",
        kind="request",
        to=["mfa@example.kz"],
        cc=["focal@example.kz"],
        subject=SUBJECT_RU,
        body_text=BODY_RU,
    )
    again, created_again = enqueue_message(
        session,
        settings,
        key="request:1:KZ:1",
        kind="request",
        to=["someone.else@example.kz"],
        cc=[],
        subject="A different subject",
        body_text="different",
    )
    session.commit()
    assert (created, created_again) == (True, False)
    assert again.id == first.id and again.subject == SUBJECT_RU and again.to == ["mfa@example.kz"]
    assert session.scalar(select(func.count(m.OutboxMessage.id))) == 1
    assert outbox_summary(session) == {
        "pending": 1,
        "sending": 0,
        "sent": 0,
        "partial": 0,
        "failed": 0,
        "bounced": 0,
    }

    report = deliver_pending(relay(settings, smtp))
    assert report == DeliveryReport(sent=1, sent_message_ids=[first.message_id])
    assert deliver_pending(relay(settings, smtp)) == DeliveryReport()
    assert [r.message_id for r in smtp.received] == [first.message_id]

    [row] = rows(session)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None and row.claimed_by
    assert outbox_summary(session) == {
        "pending": 0,
        "sending": 0,
        "sent": 1,
        "partial": 0,
        "failed": 0,
        "bounced": 0,
    }
    assert outbox_summary(session, cycle_id=99) == dict.fromkeys(outbox_summary(session), 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to", []),
        ("to", ["not an address"]),
        ("cc", ["Имя <>"]),
        ("subject", "two\nlines"),
        ("kind", "k" * 21),
        ("attachments", [Attachment("a\r\nBcc: x@y.z", "text/plain", b"")]),
    ],
)
def test_enqueue_refuses_a_message_that_could_never_be_sent(
    sqlite_settings: Settings, field: str, value: Any
) -> None:
    fields: dict[str, Any] = {
        "kind": "request",
        "to": ["mfa@example.kz"],
        "cc": [],
        "subject": "s",
        "body_text": "b",
    }
    fields[field] = value
    with pytest.raises(ValueError):
        enqueue_message(None, sqlite_settings, key="request:1:KZ:1", **fields)  # type: ignore[arg-type]


def test_enqueue_rolls_back_with_the_caller_and_waits_for_concurrent_writers(
    session: Session, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The row is part of the caller's transaction. Two other writers reach their INSERT while
    the first is uncommitted and wait: one with the same key gets the committed row back; one
    with another key but the same attachment bytes (on PostgreSQL it waits on the uncommitted
    stored_files row) is still enqueued, and the bytes are recorded once."""
    # Nothing else written first: the savepoint must not commit on its own (pysqlite would).
    enqueue(session, settings, "receipt:7", attachments=[Attachment("a.txt", "text/plain", b"x")])
    session.rollback()
    assert rows(session) == []
    assert session.scalar(select(func.count(m.StoredFile.sha256))) == 0

    caplog.set_level(logging.DEBUG, logger="mou.mail.outbox")
    shared = Attachment("Форма.xlsx", XLSX, b"the same template bytes")
    outcome: dict[str, tuple[int, bool]] = {}
    errors: list[BaseException] = []

    def writer(key: str) -> None:
        try:
            with session_scope(settings) as other:
                row, created = enqueue_message(
                    other, settings, key=key, kind="reminder", to=["b@example.kz"], cc=[],
                    subject=f"from {key}", body_text="-", attachments=[shared],
                )  # fmt: skip
                outcome[key] = (row.id, created)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with session_scope(settings) as first:
        mine = enqueue(first, settings, "reminder:1:KZ:2", subject="first", attachments=[shared])
        threads = [
            threading.Thread(target=writer, args=(key,))
            for key in ("reminder:1:KZ:2", "reminder:1:UZ:2")
        ]
        for thread in threads:
            thread.start()
        _wait_until_blocked(settings, threads, waiting=2)
    for thread in threads:
        thread.join(timeout=30)

    assert not errors and not any(t.is_alive() for t in threads)
    assert outcome["reminder:1:KZ:2"] == (mine.id, False)
    assert outcome["reminder:1:UZ:2"][1] is True
    assert [(r.key, r.subject) for r in rows(session)] == [
        ("reminder:1:KZ:2", "first"),
        ("reminder:1:UZ:2", "from reminder:1:UZ:2"),
    ]
    assert session.scalar(select(func.count(m.StoredFile.sha256))) == 1
    logged = [r.getMessage() for r in caplog.records]
    assert any("enqueued concurrently" in line for line in logged)


def _wait_until_blocked(settings: Settings, threads: list[threading.Thread], waiting: int) -> None:
    """Until the other writers wait on our uncommitted rows (PostgreSQL can show it)."""
    if settings.effective_database_url.startswith("sqlite"):
        # SQLite cannot show a connection in its busy handler; the writers need milliseconds.
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 10
    with session_scope(settings) as probe:
        while time.monotonic() < deadline and all(t.is_alive() for t in threads):
            blocked = probe.scalar(
                text(
                    "select count(*) from pg_stat_activity "
                    "where datname = current_database() and wait_event_type = 'Lock'"
                )
            )
            if blocked == waiting:
                return
            probe.rollback()
            time.sleep(0.01)
    pytest.fail("the other writers never waited for the first")


# --- what arrives ----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_delivered_message_round_trips(session: Session, settings: Settings) -> None:
    server = SmtpServer(credentials=("mou", "пароль-s3cret"))
    server.start()
    try:
        smtp_settings = relay(
            settings,
            server,
            smtp_user="mou",
            smtp_password="пароль-s3cret",
            mail_from="Секретариат КМВ <cms.secretariat@example.org>",
        )
        workbook = bytes(range(256)) * 40  # every byte value, binary-safe
        guidance = "Руководство\n".encode()
        row = enqueue(
            session,
            smtp_settings,
            "request:1:KZ:1",
            to=["Министерство иностранных дел <mfa@example.kz>"],
            cc=["focal@example.kz", '"Фокусный центр, Астана" <focal.point@example.kz>'],
            body_html="<p>Уважаемые коллеги,</p>",
            attachments=[
                Attachment("Отчёт_Казахстан_2025-2026.xlsx", XLSX, workbook),
                Attachment("guidance.txt", "text/plain; charset=utf-8", guidance),
            ],
        )
        session.commit()
        assert deliver_pending(smtp_settings).sent == 1
        [received] = server.received
    finally:
        server.stop()

    assert received.mail_from == "cms.secretariat@example.org"
    assert received.rcpt_tos == ["mfa@example.kz", "focal@example.kz", "focal.point@example.kz"]
    assert received.raw.isascii()  # every Cyrillic header and name went out encoded
    mail = received.message
    assert mailboxes(received.raw, "From") == [("Секретариат КМВ", "cms.secretariat@example.org")]
    assert mailboxes(received.raw, "To") == [("Министерство иностранных дел", "mfa@example.kz")]
    assert mailboxes(received.raw, "Cc") == [
        ("", "focal@example.kz"),
        ("Фокусный центр, Астана", "focal.point@example.kz"),
    ]
    assert str(mail["Subject"]) == SUBJECT_RU
    assert mail["Message-ID"] == row.message_id
    assert row.message_id.endswith("@example.org>")
    assert mail["Date"].datetime == utc(row.created_at).replace(microsecond=0)
    # Base64 text is encoded in canonical form, CRLF line breaks (RFC 2045).
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == BODY_RU
    assert mail.get_body(("html",)).get_content().strip() == "<p>Уважаемые коллеги,</p>"
    assert [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True)) for p in
            mail.iter_attachments()] == [
        ("Отчёт_Казахстан_2025-2026.xlsx", XLSX, workbook),
        ("guidance.txt", "text/plain", guidance),
    ]  # fmt: skip
    assert list(mail.iter_attachments())[1].get_content() == "Руководство\n"  # charset kept
    # The row names the bytes by hash; the file store holds them.
    digests = [a["sha256"] for a in row.attachments]
    assert digests == [hashlib.sha256(workbook).hexdigest(), hashlib.sha256(guidance).hexdigest()]
    assert session.scalar(select(func.count(m.StoredFile.sha256))) == 2


# --- failure and retry -----------------------------------------------------------------------


def test_relay_down_then_back_sends_once_after_backoff(
    session: Session, settings: Settings, smtp: SmtpServer
) -> None:
    smtp_settings = relay(settings, smtp)
    row = enqueue(session, settings, "request:1:KZ:1")
    session.commit()
    smtp.stop()
    t0 = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)

    report = deliver_pending(smtp_settings, now=t0)
    assert (report.sent, report.deferred, report.failed, report.still_pending) == (0, 1, 0, 1)
    [failed] = rows(session)
    assert (failed.status, failed.attempts) == ("pending", 1)
    assert "refused" in failed.last_error.lower() and "\n" not in failed.last_error
    assert utc(failed.next_attempt_at) == t0 + dt.timedelta(seconds=30)

    smtp.start()  # same port
    early = deliver_pending(smtp_settings, now=t0 + dt.timedelta(seconds=29))
    assert (early.sent, early.still_pending) == (0, 1)
    assert smtp.received == [] and rows(session)[0].attempts == 1

    late = deliver_pending(smtp_settings, now=t0 + dt.timedelta(seconds=31))
    assert late.sent_message_ids == [row.message_id]
    assert deliver_pending(smtp_settings, now=t0 + dt.timedelta(hours=2)).sent == 0
    assert [r.message_id for r in smtp.received] == [row.message_id]
    [sent] = rows(session)
    assert (sent.status, sent.attempts) == ("sent", 2)
    assert utc(sent.sent_at) == t0 + dt.timedelta(seconds=31)


def test_retry_delay_doubles_up_to_an_hour() -> None:
    assert [retry_delay(n).total_seconds() for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600
    ]  # fmt: skip


def test_which_failures_are_retried(
    session: Session, settings: Settings, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A crashed sender's claim is retried after 15 minutes, a live claim is left alone; a 5xx
    refusal of every recipient is not retried; a partial refusal is delivered and recorded as
    partial; the last allowed attempt (about a week of them) gives up."""
    smtp_settings = relay(settings, smtp)
    crashed = enqueue(session, settings, "reminder:1:KZ:1")
    busy = enqueue(session, settings, "reminder:1:UZ:1")
    session.commit()
    t0 = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)
    for row, claimed_at in ((crashed, t0 - dt.timedelta(minutes=16)), (busy, t0)):
        session.execute(
            update(m.OutboxMessage)
            .where(m.OutboxMessage.id == row.id)
            .values(status="sending", claimed_by="host-a:4242", claimed_at=claimed_at, attempts=1)
        )
    session.commit()

    report = deliver_pending(smtp_settings, now=t0 + dt.timedelta(minutes=5))
    assert report.sent_message_ids == [crashed.message_id]
    by_key = {r.key: r for r in rows(session)}
    assert (by_key["reminder:1:KZ:1"].status, by_key["reminder:1:KZ:1"].attempts) == ("sent", 2)
    assert any("host-a:4242 stopped while sending" in r.getMessage() for r in caplog.records)
    assert by_key["reminder:1:UZ:1"].status == "sending"  # claimed 5 minutes ago: still live
    later = deliver_pending(smtp_settings, now=t0 + dt.timedelta(minutes=16))
    assert later.sent_message_ids == [busy.message_id]

    refused = enqueue(session, settings, "receipt:1", to=["refuse@example.kz"])
    partial = enqueue(session, settings, "receipt:2", to=["ok@example.kz"], cc=["refuse2@x.kz"])
    session.commit()
    report = deliver_pending(smtp_settings, now=t0 + dt.timedelta(minutes=20))
    assert (report.sent, report.partial, report.failed, report.deferred) == (1, 1, 1, 0)
    by_key = {r.key: r for r in rows(session)}
    assert (by_key["receipt:1"].status, by_key["receipt:1"].attempts) == ("failed", 1)
    assert "550" in by_key["receipt:1"].last_error
    assert by_key["receipt:2"].status == "partial"  # not plainly "sent"
    assert "refuse2@x.kz" in by_key["receipt:2"].last_error
    assert [r.rcpt_tos for r in smtp.received if r.message_id == partial.message_id] == [
        ["ok@example.kz"]
    ]
    assert Counter(r.message_id for r in smtp.received) == {
        crashed.message_id: 1,
        busy.message_id: 1,
        partial.message_id: 1,
    }
    assert refused.message_id not in {r.message_id for r in smtp.received}

    last = enqueue(session, settings, "receipt:3")
    session.execute(
        update(m.OutboxMessage)
        .where(m.OutboxMessage.id == last.id)
        .values(attempts=MAX_ATTEMPTS - 1)
    )
    session.commit()
    smtp.stop()
    report = deliver_pending(smtp_settings, now=t0 + dt.timedelta(minutes=21))
    assert (report.failed, report.still_pending) == (1, 0)
    row = next(r for r in rows(session) if r.key == "receipt:3")
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert outbox_summary(session) == {
        "pending": 0,
        "sending": 0,
        "sent": 2,
        "partial": 1,
        "failed": 2,
        "bounced": 0,
    }


# --- concurrency -----------------------------------------------------------------------------


def test_two_deliverers_at_once_send_each_message_exactly_once(
    session: Session, settings: Settings, smtp: SmtpServer
) -> None:
    expected = {
        enqueue(session, settings, f"request:1:S{n:02d}:1", to=[f"mfa{n}@example.kz"]).message_id
        for n in range(30)
    }
    session.commit()
    smtp_settings = relay(settings, smtp)
    start = threading.Barrier(2)
    reports: dict[str, DeliveryReport] = {}
    errors: list[BaseException] = []

    def deliverer(name: str) -> None:
        try:
            start.wait(timeout=10)
            reports[name] = deliver_pending(smtp_settings, worker=name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliverer, args=(n,)) for n in ("worker-a", "worker-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    at_server = Counter(r.message_id for r in smtp.received)
    assert set(at_server) == expected and set(at_server.values()) == {1}
    a, b = reports["worker-a"].sent_message_ids, reports["worker-b"].sent_message_ids
    assert not set(a) & set(b) and set(a) | set(b) == expected
    assert all(r.status == "sent" and r.attempts == 1 for r in rows(session))
    assert {r.claimed_by for r in rows(session)} <= {"worker-a", "worker-b"}


# --- embedded default: .eml files ------------------------------------------------------------


def test_without_smtp_each_message_becomes_one_eml_file(
    session: Session, settings: Settings
) -> None:
    embedded = settings.model_copy(update={"smtp_host": ""})
    keys = ["request:1:KZ:1", "reminder:1:KZ:2", "receipt:12"]
    made = {
        key: enqueue(
            session,
            embedded,
            key,
            attachments=[Attachment("Форма отчёта.xlsx", XLSX, key.encode())],
        )
        for key in keys
    }
    session.commit()

    first = deliver_pending(embedded, limit=2)
    assert (first.sent, first.still_pending) == (2, 1)
    assert deliver_pending(embedded).sent == 1
    files = sorted(embedded.outbox_dir.iterdir())
    assert [f.name for f in files] == sorted(eml_filename(k) for k in keys)
    assert "request_1_KZ_1.eml" in [f.name for f in files]
    for key, row in made.items():
        mail = parse((embedded.outbox_dir / eml_filename(key)).read_bytes())
        assert mail["Message-ID"] == row.message_id
        assert str(mail["Subject"]) == SUBJECT_RU
        [attachment] = mail.iter_attachments()
        assert (attachment.get_filename(), attachment.get_content()) == (
            "Форма отчёта.xlsx",
            key.encode(),
        )
        # What would go over SMTP is what is on disk.
        assert mail["Message-ID"] == build_email(row, embedded)["Message-ID"]

    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    assert deliver_pending(embedded).sent == 0
    assert {f.name: f.stat().st_mtime_ns for f in embedded.outbox_dir.iterdir()} == stamps


def test_eml_file_names_are_safe_and_distinct() -> None:
    keys = ["request:1:KZ:1", "request_1_KZ_1", "../../etc/passwd", "receipt:отчёт", "a=5F"]
    names = [eml_filename(k) for k in keys]
    assert names[0] == "request_1_KZ_1.eml"
    assert len(set(names)) == len(keys)
    assert all("/" not in n and not n.startswith("..") for n in names[1:])
    assert all(n.isascii() and len(n) < 255 for n in [*names, eml_filename("k" * 200)])


def test_a_relay_down_for_a_weekend_loses_no_mail(
    session: Session, settings: Settings, smtp: SmtpServer
) -> None:
    smtp_settings = relay(settings, smtp)
    row = enqueue(session, settings, "request:1:KZ:1")
    session.commit()
    smtp.stop()
    t0 = dt.datetime(2030, 1, 4, 18, 0, tzinfo=dt.UTC)  # Friday evening
    now = t0
    while now < t0 + dt.timedelta(hours=62):  # the outbox runs every minute: every due retry
        report = deliver_pending(smtp_settings, now=now)
        assert report.failed == 0
        [pending] = rows(session)
        now = max(now + dt.timedelta(minutes=1), utc(pending.next_attempt_at))
    assert pending.status == "pending" and pending.attempts > 10
    smtp.start()  # Monday morning
    assert deliver_pending(smtp_settings, now=now).sent_message_ids == [row.message_id]
    assert [r.message_id for r in smtp.received] == [row.message_id]


def test_a_claim_of_a_sender_that_died_on_this_machine_is_sent_again_at_once(
    session: Session, settings: Settings, smtp: SmtpServer
) -> None:
    import os
    import socket
    import subprocess
    import sys

    from mou.mail import delivery

    smtp_settings = relay(settings, smtp)
    here, namespace = socket.gethostname(), delivery._pid_namespace()
    row = enqueue(session, settings, "receipt:7")
    session.commit()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    t0 = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)
    session.execute(
        update(m.OutboxMessage)
        .where(m.OutboxMessage.id == row.id)
        .values(
            status="sending",
            # This test's own PID with another start time: the PID of a sender that died,
            # now another process's (whatever the machine does with PIDs meanwhile).
            claimed_by=f"{here}:{os.getpid()}:1:{namespace}:1",
            claimed_at=t0 - dt.timedelta(seconds=20),
            attempts=1,
        )
    )
    session.commit()
    # The service restarts within a minute: the dead claim is not left for 15 minutes.
    assert deliver_pending(smtp_settings, now=t0).sent_message_ids == [row.message_id]
    # A live claimant is not gone; one whose PID no process holds, or a later one, is.
    assert not delivery.claimant_gone(delivery._default_worker())
    started = delivery._process_start(os.getpid())
    assert not delivery.claimant_gone(f"{here}:{os.getpid()}:1:{namespace}:{started}")
    assert delivery.claimant_gone(f"{here}:{gone}:1:{namespace}:{started}")
    # The same host and process id in another PID namespace (a container) is not judged.
    assert not delivery.claimant_gone(f"{here}:{gone}:1:another-namespace")
    assert not delivery.claimant_gone(f"{here}:{gone}:1")
