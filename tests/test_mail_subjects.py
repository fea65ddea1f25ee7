"""Subjects and dates as a ministry's mail client shows them: decoded from the bytes sent,
with every space kept (RFC 2047), naming the instrument, the state and the reference, and
dates written out in the message's language, never 31.03.2027."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import random
import re
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest

from mou.cycle.reminders import send_reminders
from mou.i18n.formatting import Formatter
from mou.mail.message import POLICY, build_email, set_subject
from mou.service.protocol import open_and_dispatch, process_submission, receive_file
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.test_protocol import DEADLINE, filled_return, service  # noqa: F401 - fixture

state_names: list[str] = []  # every range state's name in every language (set by `mails`)
NUMERIC_DATE = re.compile(r"\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b")


def decoded(mail: EmailMessage) -> tuple[str, str]:
    """The Subject as a strict RFC 2047 decoder reads it, and as Python's own parser does."""
    raw = mail.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert all(len(line) <= 78 for line in head.split("\r\n")), head
    folded = re.search(r"^Subject: (.*?)\r\n(?! )", head + "\r\n", re.M | re.S)
    assert folded
    strict = str(make_header(decode_header(folded.group(1).replace("\r\n", ""))))
    parsed = str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
    return strict, parsed


def test_a_space_at_a_fold_is_never_lost() -> None:
    words = [
        "Отчет",
        "получен",
        "и",
        "принят:",
        "Туркменистан,",
        "Меморандум",
        "о",
        "взаимопонимании",
        "по",
        "бухарскому",
        "оленю",
        "2025-2026",
        "(версия",
        "2,",
        "CMS/BD-MOU/2025-2026/TM)",
        "Республики",
        "Таджикистан",
    ]
    for seed in range(400):
        pick = random.Random(seed)
        subject = " ".join(pick.choice(words) for _ in range(pick.randint(1, 30)))
        mail = EmailMessage(policy=POLICY)
        set_subject(mail, subject)
        mail.set_content("x")
        assert decoded(mail) == (subject, subject), subject


def test_english_subjects_are_plain_and_have_no_leading_space() -> None:
    mail = EmailMessage(policy=POLICY)
    set_subject(mail, "  Report received and accepted: Kazakhstan, Bukhara Deer MoU 2025-2026 ")
    mail.set_content("x")
    assert b"=?" not in mail.as_bytes()
    assert (
        decoded(mail)[1] == "Report received and accepted: Kazakhstan, Bukhara Deer MoU 2025-2026"
    )


@pytest.fixture
def mails(service: Settings) -> list[tuple[m.OutboxMessage, EmailMessage]]:  # noqa: F811
    global state_names
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    good = filled_return(service, cycle, "TJ", "ru")
    bad = filled_return(service, cycle, "KZ", "ru", national_total="около 300")
    for data, name, sender in ((good, "tj.xlsx", "tj@example.org"), (bad, "kz.xlsx", None)):
        submission_id, _ = receive_file(service, data, filename=name, sender=sender, state=None)
        process_submission(service, submission_id)
    with session_scope(service) as session:
        send_reminders(session, service, DEADLINE - dt.timedelta(days=14))
        session.commit()
        rows = list(session.query(m.OutboxMessage).order_by(m.OutboxMessage.id))
        state_names = [n for s in session.query(m.RangeState) for n in s.name.values()]
        return [(row, build_email(row, service)) for row in rows]


def test_every_subject_decodes_to_what_was_written_and_names_the_request(mails) -> None:
    kinds = set()
    for row, mail in mails:
        kinds.add(row.kind)
        strict, parsed = decoded(mail)
        assert strict == parsed == row.subject, row.key
        assert row.subject == row.subject.strip()
        if row.kind in ("request", "reminder", "receipt"):
            with_reference = re.search(r"CMS/BD-MOU/2025-2026/[A-Z]{2}", row.subject)
            assert with_reference, row.subject
            lower = row.subject.lower()
            assert any(name in lower for name in ("бухар", "bukhara", "boukhara")), row.subject
            assert any(name in row.subject for name in state_names), row.subject
    assert {"request", "reminder", "receipt"} <= kinds


def test_a_refusal_names_the_state_and_carries_the_personal_portal_link(mails) -> None:
    [refusal] = [row for row, _ in mails if row.kind == "receipt" and "не принят" in row.subject]
    assert "Казахстан" in refusal.subject and "CMS/BD-MOU/2025-2026/KZ" in refusal.subject
    assert "/r/" in refusal.body_text and "Казахстан" in refusal.body_text


def test_dates_in_emails_are_written_out_in_the_messages_language(mails) -> None:
    for row, _ in mails:
        assert not NUMERIC_DATE.search(row.subject + "\n" + row.body_text), (
            row.key,
            NUMERIC_DATE.findall(row.subject + row.body_text),
        )
    requests = [row for row, _ in mails if row.kind == "request"]
    russian = next(r for r in requests if r.key.endswith(":TJ") or "TJ" in r.key)
    assert Formatter("ru").date(DEADLINE) in russian.body_text  # 31 марта 2027 г.


def test_dates_per_locale() -> None:
    day = dt.date(2026, 12, 1)
    assert Formatter("en").date(day) == "1 December 2026"
    assert Formatter("fr").date(day) == "1er décembre 2026"
    assert Formatter("fr").date(dt.date(2026, 12, 2)) == "2 décembre 2026"
    assert Formatter("ru").date(day) == "1 декабря 2026\u202fг."  # narrow no-break space
    moment = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    assert Formatter("fr").moment(moment) == "1er déc. 2026, 09:30 UTC"
