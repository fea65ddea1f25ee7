"""The reporting protocol without a Prefect server: dispatch, intake, receipts, reminders,
sweep; every effect happens once, whatever is re-run, retried or interrupted."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mou.catalogue.bootstrap import prepare_database
from mou.cycle.context import template_for
from mou.i18n.formatting import Formatter
from mou.intake import decide as intake
from mou.intake import record
from mou.mail.delivery import deliver_pending
from mou.service.protocol import (
    UndecidedSubmission,
    open_and_dispatch,
    process_submission,
    receive_file,
    remind,
    sweep,
)
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.conftest import relay
from tests.smtp_server import SmtpServer
from tests.test_workbook import bukhara_answers
from tests.workbooks import fill

DEADLINE = dt.date(2027, 3, 31)
KEYED = {"threats", "action_plan_implementation"}
STATES = ["AF", "KZ", "TJ", "TM", "UZ"]


def addresses(header: str | None) -> list[str]:
    from email.utils import getaddresses

    return sorted(address for _, address in getaddresses([header or ""]))


def filled_return(settings: Settings, cycle_id: int, state: str, language: str = "ru", **changes):
    with session_scope(settings) as session:
        template = template_for(session, settings, cycle_id, state, language)
    answers = bukhara_answers(language)
    answers.update(changes)
    return fill(template, answers, keyed=KEYED)


def count(settings: Settings, model: type, **where) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(model).filter_by(**where)) or 0


@pytest.fixture
def service(settings: Settings, smtp: SmtpServer) -> Settings:
    prepare_database(settings)
    return relay(settings, smtp)


def test_requests_go_to_foreign_affairs_with_copy_to_focal_ministry_once(
    service: Settings, smtp: SmtpServer
) -> None:
    first = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE)
    again = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE)

    assert first.created and sorted(first.dispatched) == STATES
    assert not again.created and again.dispatched == [] and sorted(again.already) == STATES
    assert len(smtp.received) == 5
    by_to = {addresses(r.message["To"])[0]: r for r in smtp.received}
    uz = by_to["mfa.uz@example.org"].message
    assert addresses(uz["Cc"]) == ["environment.uz@example.org"]
    assert "CMS/BD-MOU/2025-2026/UZ" in str(uz["Subject"])
    # Written out, never 31.03.2027: "31 марта 2027 г."
    assert Formatter("ru").date(DEADLINE) in uz.get_body(("plain",)).get_content()
    attachments = {a.get_filename(): a for a in uz.iter_attachments()}
    letter = next(a for name, a in attachments.items() if name.endswith(".pdf"))
    assert letter.get_content().startswith(b"%PDF")
    workbook = attachments["bukhara-deer-2025-2026-UZ-ru.xlsx"].get_content()
    assert workbook.startswith(b"PK")
    # The template the ministry received is accepted as it comes back.
    assert str(uz["Subject"]).startswith("Бухарский") or "запрос" in str(uz["Subject"]).lower()


def test_opening_again_with_another_deadline_or_more_states_is_refused(
    service: Settings, smtp: SmtpServer
) -> None:
    from mou.errors import Refused

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE, states=["KZ"])
    later = DEADLINE + dt.timedelta(days=30)
    with pytest.raises(Refused, match=f"mou cycle extend {cycle.cycle_id} --deadline {later}"):
        open_and_dispatch(service, "bukhara-deer", "2025-2026", later, states=["KZ"])
    with pytest.raises(Refused, match=r"does not ask UZ.*--states KZ"):
        open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE, states=["KZ", "UZ"])
    for states in (["KZ"], None):  # the same states, or its own: nothing new, no refusal
        again = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE, states=states)
        assert not again.created and again.already == ["KZ"] and again.dispatched == []
    with session_scope(service) as session:
        opened = session.get(m.ReportingCycle, cycle.cycle_id)
        assert opened.deadline == DEADLINE and len(opened.requests) == 1
    assert len(smtp.received) == 1


def test_a_new_cycle_needs_a_begun_period_and_a_deadline_not_before_today(
    service: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mou import clock
    from mou.errors import Refused

    monkeypatch.setattr(clock, "utcnow", lambda: dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC))
    with pytest.raises(Refused, match=r"deadline 2026-11-30 is before today \(2026-12-01\)"):
        open_and_dispatch(service, "bukhara-deer", "2025-2026", dt.date(2026, 11, 30))
    with pytest.raises(Refused, match="period 2027-2028 has not started"):
        open_and_dispatch(service, "bukhara-deer", "2027-2028", dt.date(2029, 3, 31))
    assert count(service, m.ReportingCycle) == 0
    # The date of the request is given (the demo, a scheduled run): the same rules on it.
    opened = open_and_dispatch(
        service, "bukhara-deer", "2023-2024", dt.date(2025, 3, 31), today=dt.date(2025, 1, 15)
    )
    assert opened.created
    assert open_and_dispatch(service, "bukhara-deer", "2025-2026", dt.date(2026, 12, 1)).created


def test_relay_down_during_dispatch_then_each_request_arrives_once(
    service: Settings, smtp: SmtpServer
) -> None:
    smtp.stop()
    opening = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE)
    assert opening.delivery is not None and opening.delivery.sent == 0
    assert count(service, m.OutboxMessage, status="pending") == 5
    smtp.start()
    later = m.utcnow() + dt.timedelta(minutes=5)
    report = deliver_pending(service, now=later)
    assert report.sent == 5
    assert deliver_pending(service, now=later + dt.timedelta(hours=2)).sent == 0
    assert sorted(r.message_id for r in smtp.received) == sorted(report.sent_message_ids)


def test_accepted_return_gets_a_receipt_with_its_summary(
    service: Settings, smtp: SmtpServer
) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    data = filled_return(service, cycle, "UZ")
    submission_id, created = receive_file(
        service, data, filename="отчёт.xlsx", sender="focal.point.uz@example.org"
    )
    outcome = process_submission(service, submission_id)
    assert created and outcome.status == "accepted"
    [receipt] = [r for r in smtp.received if "focal.point.uz@example.org" in r.rcpt_tos]
    message = receipt.message
    assert addresses(message["To"]) == ["focal.point.uz@example.org"]
    assert addresses(message["Cc"]) == ["environment.uz@example.org"]
    assert "принят" in str(message["Subject"])
    [summary] = list(message.iter_attachments())
    assert summary.get_filename().endswith(".pdf")
    assert summary.get_content().startswith(b"%PDF")
    # Processing again (a retried flow) sends nothing new.
    again = process_submission(service, submission_id)
    assert again.already_decided and again.status == "accepted"
    assert len([r for r in smtp.received if "focal.point.uz@example.org" in r.rcpt_tos]) == 1


def test_refused_return_gets_the_reasons_in_its_language(
    service: Settings, smtp: SmtpServer
) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    data = filled_return(service, cycle, "KZ", national_total="много")
    submission_id, _ = receive_file(
        service, data, filename="kz.xlsx", sender="focal.point.kz@example.org"
    )
    assert process_submission(service, submission_id).status == "rejected"
    [receipt] = [r for r in smtp.received if "focal.point.kz@example.org" in r.rcpt_tos]
    body = receipt.message.get_body(("plain",)).get_content()
    assert "не может быть принят" in body and "много" in body
    assert count(service, m.Answer) == 0


def test_corrected_resubmission_supersedes_and_identical_bytes_are_recognised(
    service: Settings,
) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    first = filled_return(service, cycle, "TJ", national_total=200)
    corrected = filled_return(service, cycle, "TJ", national_total=210)
    one, _ = receive_file(service, first, filename="tj.xlsx")
    process_submission(service, one)
    same, created = receive_file(service, first, filename="tj-again.xlsx")
    assert (same, created) == (one, False)
    two, _ = receive_file(service, corrected, filename="tj-v2.xlsx")
    outcome = process_submission(service, two)
    assert outcome.version == 2 and outcome.superseded_id == one
    with session_scope(service) as session:
        assert session.get(m.Submission, one).superseded_by_id == two
    assert count(service, m.Submission) == 2


def test_the_same_bytes_through_two_channels_at_once_are_one_submission(
    service: Settings,
) -> None:
    """The email and the portal bring the same file while the first is still uncommitted: the
    second waits for it (on PostgreSQL, on the rows; on SQLite, on the write lock) and gets
    the first's row back, with no error and no second file record. (SQLite cannot show a
    waiting writer: there the two may not overlap, and the test still checks the outcome.)"""
    from tests.test_mail import _wait_until_blocked

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    data = filled_return(service, cycle, "KZ")
    files_before = count(service, m.StoredFile)
    second: list[record.Recorded] = []
    errors: list[BaseException] = []

    def portal() -> None:
        try:
            with session_scope(service) as other:
                second.append(
                    record.record_submission(other, service, data, filename="b", channel="portal")
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with session_scope(service) as session:
        first = record.record_submission(session, service, data, filename="a", channel="email")
        thread = threading.Thread(target=portal)
        thread.start()
        _wait_until_blocked(service, [thread], waiting=1)
    thread.join(timeout=30)
    assert not errors and not thread.is_alive()
    assert first.created and not second[0].created
    assert second[0].submission_id == first.submission_id
    assert second[0].sha256 == first.sha256
    assert count(service, m.Submission) == 1
    assert count(service, m.StoredFile) == files_before + 1
    with session_scope(service) as session:
        assert session.get(m.Submission, first.submission_id).channel == "email"


class Crash(BaseException):
    """Stands for the process dying at that line (not an Exception: nothing catches it)."""


def test_ingest_killed_midway_then_rerun_decides_once(
    service: Settings, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    submission_id, _ = receive_file(
        service, filled_return(service, cycle, "TM"), filename="tm.xlsx", sender="x@example.org"
    )
    real_decide = intake._decide

    def dies_after_writing(*args, **kwargs):
        real_decide(*args, **kwargs)  # answers and issues are written, not committed
        raise Crash

    monkeypatch.setattr(intake, "_decide", dies_after_writing)
    with pytest.raises(Crash):
        process_submission(service, submission_id)
    assert count(service, m.Answer) == 0
    assert count(service, m.Submission, status="received") == 1
    monkeypatch.undo()

    report = sweep(service, older_than=dt.timedelta(0))
    assert report.ingested == [submission_id]
    assert count(service, m.Submission, status="accepted") == 1
    answers = count(service, m.Answer)
    assert answers > 0
    assert sweep(service, older_than=dt.timedelta(0)).ingested == []
    assert count(service, m.Answer) == answers
    assert len([r for r in smtp.received if "x@example.org" in r.rcpt_tos]) == 1


def test_sweep_sends_a_receipt_lost_between_decision_and_outbox(
    service: Settings, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mou.service.protocol

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    submission_id, _ = receive_file(
        service,
        filled_return(service, cycle, "AF", "en"),
        filename="af.xlsx",
        sender="y@example.org",
    )

    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(mou.service.protocol, "enqueue_receipt", crash)
    with pytest.raises(Crash):
        process_submission(service, submission_id)
    monkeypatch.undo()
    assert count(service, m.Submission, status="accepted") == 1
    report = sweep(service)
    assert report.receipts == [submission_id]
    assert sweep(service).receipts == []
    assert len([r for r in smtp.received if "y@example.org" in r.rcpt_tos]) == 1


def test_reminders_follow_the_rules(service: Settings, smtp: SmtpServer) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    before = len(smtp.received)

    def sent_since(mark: int) -> list:
        return smtp.received[mark:]

    assert remind(service, DEADLINE - dt.timedelta(days=20)) == 0
    assert remind(service, DEADLINE - dt.timedelta(days=14)) == 5
    assert remind(service, DEADLINE - dt.timedelta(days=13)) == 0  # never twice for a step
    polite = sent_since(before)
    uz = next(r for r in polite if "environment.uz@example.org" in addresses(r.message["To"]))
    assert addresses(uz.message["Cc"]) == ["mfa.uz@example.org"]

    # Uzbekistan reports: no more reminders for it.
    submission_id, _ = receive_file(service, filled_return(service, cycle, "UZ"), filename="u")
    assert process_submission(service, submission_id).status == "accepted"
    mark = len(smtp.received)
    assert remind(service, DEADLINE) == 4
    due = [r for r in sent_since(mark) if r.message["Subject"] and "UZ" not in str(r.rcpt_tos)]
    assert len(due) == 4 and all("uz" not in " ".join(r.rcpt_tos) for r in due)

    mark = len(smtp.received)
    assert remind(service, DEADLINE + dt.timedelta(days=7)) == 4  # escalation
    escalated = sent_since(mark)
    kz = next(r for r in escalated if "mfa.kz@example.org" in addresses(r.message["To"]))
    assert addresses(kz.message["Cc"]) == ["environment.kz@example.org"]
    assert "CMS/BD-MOU/2025-2026/KZ" in kz.message.get_body(("plain",)).get_content()
    # The state goes by one code everywhere: the reference's, in the workbook's name as in
    # the request's, and in the note's.
    names = sorted(a.get_filename() for a in kz.message.iter_attachments())
    assert names == [
        "bukhara-deer-2025-2026-KZ-ru.xlsx",
        "note-CMS-BD-MOU-2025-2026-KZ-overdue-1.pdf",
    ]
    assert remind(service, DEADLINE + dt.timedelta(days=8)) == 0
    assert remind(service, DEADLINE + dt.timedelta(days=30)) == 4
    assert remind(service, DEADLINE + dt.timedelta(days=90)) == 0


def test_a_late_first_reminder_run_sends_only_the_current_step(service: Settings) -> None:
    open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE, states=["KZ"])
    assert remind(service, DEADLINE + dt.timedelta(days=10)) == 1
    with session_scope(service) as session:
        keys = session.scalars(
            select(m.OutboxMessage.key).where(m.OutboxMessage.kind == "reminder")
        ).all()
    assert keys == [f"reminder:{1}:KZ:overdue-1"] or [k.split(":")[-1] for k in keys] == [
        "overdue-1"
    ]


def test_inbox_file_is_recorded_once_and_moved_aside(service: Settings) -> None:
    from mou.service.inbox import InboxWatcher

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    service.inbox_dir.mkdir(parents=True, exist_ok=True)
    dropped = service.inbox_dir / "uz.xlsx"
    dropped.write_bytes(filled_return(service, cycle, "UZ"))
    (service.inbox_dir / "uz.xlsx.json").write_text('{"sender": "z@example.org"}')
    watcher = InboxWatcher(service, settle_seconds=0)
    assert watcher.scan() == []  # first look: size noted, file may still be growing
    [submission_id] = watcher.scan()
    assert watcher.scan() == []
    assert not dropped.exists()
    assert any(Path(service.inbox_dir / "taken").iterdir())
    with session_scope(service) as session:
        submission = session.get(m.Submission, submission_id)
        assert (submission.sender, submission.channel, submission.status) == (
            "z@example.org",
            "inbox",
            "received",
        )


def test_inbox_with_inline_ingest_decides_and_receipts_at_once(service: Settings) -> None:
    """`mou serve`'s watcher decides a drop in its own process; a second drop of the same
    bytes is recognised and decided nothing new."""
    from mou.service.inbox import InboxWatcher
    from mou.service.protocol import InlineIngest

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    service.inbox_dir.mkdir(parents=True, exist_ok=True)
    data = filled_return(service, cycle, "UZ")
    ingest = InlineIngest(service)
    watcher = InboxWatcher(service, ingest=ingest, settle_seconds=0)
    try:
        (service.inbox_dir / "uz.xlsx").write_bytes(data)
        watcher.scan()
        [submission_id] = watcher.scan()
        (service.inbox_dir / "uz-again.xlsx").write_bytes(data)
        watcher.scan()
        assert watcher.scan() == [submission_id]

        def decided() -> bool:
            with session_scope(service) as session:
                return session.get(m.Submission, submission_id).status != "received"

        deadline = time.monotonic() + 60
        while not decided() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ingest.close()
    with session_scope(service) as session:
        submissions = session.scalars(select(m.Submission)).all()
        assert [(s.id, s.status, s.version) for s in submissions] == [
            (submission_id, "accepted", 1)
        ]
        receipts = session.scalars(
            select(m.OutboxMessage).where(m.OutboxMessage.kind == "receipt")
        ).all()
        assert [r.submission_id for r in receipts] == [submission_id]


# --- a return that cannot be decided does not stop the others ------------------------------


def test_a_return_that_cannot_be_decided_is_set_aside_and_the_next_is_decided(
    service: Settings, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    # Sent from the focal ministry's address: the state, hence the language, is known.
    bad, _ = receive_file(
        service,
        filled_return(service, cycle, "TM"),
        filename="tm.xlsx",
        sender="environment.tm@example.org",
    )
    good, _ = receive_file(
        service, filled_return(service, cycle, "KZ"), filename="kz.xlsx", sender="kz@example.org"
    )
    real_validate = intake.validate
    broken = {"now": True}

    def fails_while_broken(extraction, context, messages):  # a fault of ours, every time
        if broken["now"]:
            raise TypeError("a bug met a file it did not expect")
        return real_validate(extraction, context, messages)

    monkeypatch.setattr(intake, "validate", fails_while_broken)
    # Tried twice at once, then left for the sweep: a passing fault must not refuse a return.
    with pytest.raises(UndecidedSubmission):
        process_submission(service, bad)
    with session_scope(service) as session:
        assert session.get(m.Submission, bad).status == "received"
    # The third fault, in the sweep, sets it aside; the sweep goes on to the next return.
    report = sweep(service, older_than=dt.timedelta(0))
    assert report.ingested == [bad] and report.failed == [good]  # good fails too: still broken
    with session_scope(service) as session:
        set_aside = session.get(m.Submission, bad)
        assert [i.code for i in set_aside.issues] == ["processing_failed"]
        assert set_aside.status == "rejected" and set_aside.version is None
    broken["now"] = False
    assert process_submission(service, good).status == "accepted"

    # The Secretariat has been told, by email and on its dashboard.
    from mou.portal.server import create_app
    from tests.accounts import signed_in_client

    alert = next(r.message for r in smtp.received if "cms.secretariat@example.org" in r.rcpt_tos)
    alert_text = alert.get_body(("plain",)).get_content()
    assert "tm.xlsx" in str(alert["Subject"]) and "TypeError" in alert_text
    client = signed_in_client(create_app(service, ingest="thread"), "reader")
    dashboard = client.get("/dashboard?lang=ru").text
    assert "Отчеты, которые не удалось обработать" in dashboard
    assert f"/dashboard/submissions/{bad}/file" in dashboard and "tm.xlsx" in dashboard

    receipt = next(
        r.message
        for r in smtp.received
        # the request letter went there too
        if "environment.tm@example.org" in r.rcpt_tos
        and "CMS/BD-MOU" not in str(r.message["Subject"])
    )
    body = receipt.get_body(("plain",)).get_content()
    assert "Секретариат уведомлен" in str(receipt["Subject"])
    assert "сбоя на нашей стороне" in body and "исправьте" not in body.lower()
    with session_scope(service) as session:
        kept = session.get(m.Submission, bad)
        assert kept.status == "rejected" and kept.state_id is None
        assert session.get(m.StoredFile, kept.file_sha256) is not None  # the file is kept
    # Deciding again (a retry, the sweep) changes nothing and sends nothing more.
    before = len(smtp.received)
    assert sweep(service, older_than=dt.timedelta(0)).ingested == []
    assert process_submission(service, bad).already_decided
    assert len(smtp.received) == before


def test_a_database_that_keeps_failing_on_one_return_never_refuses_it(
    service: Settings, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    import mou.service.protocol as protocol

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    stuck, _ = receive_file(service, filled_return(service, cycle, "TM"), filename="tm.xlsx")
    fine, _ = receive_file(service, filled_return(service, cycle, "KZ"), filename="kz.xlsx")
    real_ingest = protocol.ingest_submission
    down = {"now": True}

    def database_fails_on_it(session, settings, submission_id, now=None):
        if submission_id == stuck and down["now"]:
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return real_ingest(session, settings, submission_id, now)

    monkeypatch.setattr(protocol, "ingest_submission", database_fails_on_it)
    first = sweep(service, older_than=dt.timedelta(0))
    assert first.failed == [stuck] and first.ingested == [fine]  # the sweep went on
    for _ in range(4):  # the database being away is not the file's fault: never set aside
        assert sweep(service, older_than=dt.timedelta(0)).failed == [stuck]
    down["now"] = False
    assert sweep(service, older_than=dt.timedelta(0)).ingested == [stuck]
    with session_scope(service) as session:
        assert session.get(m.Submission, stuck).status == "accepted"


def test_a_receipt_that_cannot_be_rendered_does_not_stop_the_sweep(
    service: Settings, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mou.reporting.state_summary as state_summary

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    first, _ = receive_file(
        service, filled_return(service, cycle, "TM"), filename="tm.xlsx", sender="a@example.org"
    )
    second, _ = receive_file(
        service, filled_return(service, cycle, "KZ"), filename="kz.xlsx", sender="b@example.org"
    )
    with session_scope(service) as session:  # decided by someone whose receipts were lost
        for submission_id in (first, second):
            intake.ingest_submission(session, service, submission_id)
    real = state_summary.render_state_summary
    calls: list[int] = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the renderer met something it did not expect")
        return real(*args, **kwargs)

    monkeypatch.setattr(state_summary, "render_state_summary", fails_once)
    report = sweep(service, older_than=dt.timedelta(0))
    assert report.failed == [first] and report.receipts == [second]
    assert sweep(service, older_than=dt.timedelta(0)).receipts == [first]  # the next sweep


def test_the_sweep_goes_on_past_a_receipt_that_cannot_be_written(
    service: Settings, smtp: SmtpServer
) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    odd, _ = receive_file(
        service, filled_return(service, cycle, "TM"), filename="tm.xlsx", sender="not an address"
    )
    fine, _ = receive_file(
        service, filled_return(service, cycle, "KZ"), filename="kz.xlsx", sender="kz@example.org"
    )
    with session_scope(service) as session:  # decided by someone whose receipt was lost
        for submission_id in (odd, fine):
            intake.ingest_submission(session, service, submission_id)
    report = sweep(service, older_than=dt.timedelta(0))
    assert report.receipts == [fine]
    assert any("kz@example.org" in r.rcpt_tos for r in smtp.received)


def test_a_return_for_another_instrument_does_not_silence_a_reminder(service: Settings) -> None:
    bukhara = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE, states=["KZ"])
    cami = open_and_dispatch(service, "cami", "2024-2026", DEADLINE, states=["KZ"]).cycle_id
    # Kazakhstan's CAMI return, from its focal ministry, recorded and not yet read.
    with session_scope(service) as session:
        cami_template = template_for(session, service, cami, "KZ", "ru")
    receive_file(
        service, cami_template, filename="kz-cami.xlsx", sender="environment.kz@example.org"
    )
    assert remind(service, DEADLINE) == 2  # both cycles' "due" reminders
    with session_scope(service) as session:
        keys = set(
            session.scalars(
                select(m.OutboxMessage.key).where(m.OutboxMessage.kind == "reminder")
            ).all()
        )
    assert f"reminder:{bukhara.cycle_id}:KZ:due" in keys


def test_a_dropped_file_is_taken_only_once_it_has_settled(service: Settings) -> None:
    from mou.service.inbox import InboxWatcher

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    service.inbox_dir.mkdir(parents=True, exist_ok=True)
    data = filled_return(service, cycle, "UZ")
    dropped = service.inbox_dir / "uz.xlsx"
    dropped.write_bytes(data[: len(data) // 2])  # a copy over a share, paused half way
    written = dropped.stat().st_mtime
    watcher = InboxWatcher(service, settle_seconds=2.0)
    assert watcher.scan(now=written + 0.3) == []
    assert watcher.scan(now=written + 0.6) == []  # same size, but modified only just now
    with dropped.open("ab") as handle:  # the copy resumes and finishes
        handle.write(data[len(data) // 2 :])
    finished = dropped.stat().st_mtime
    assert watcher.scan(now=finished + 0.3) == []
    [submission_id] = watcher.scan(now=finished + 2.5)
    with session_scope(service) as session:
        stored = session.get(m.Submission, submission_id).file_sha256
    assert stored == hashlib.sha256(data).hexdigest()  # the whole file, not half of it


@pytest.mark.parametrize(
    "sidecar", ['["z@example.org"]', "{not json", '{"sender": 42}', '{"from": "z@example.org"}']
)
def test_a_drop_with_a_broken_sidecar_is_refused_once_with_a_note(
    service: Settings, sidecar: str
) -> None:
    from mou.service.inbox import InboxWatcher

    service.inbox_dir.mkdir(parents=True, exist_ok=True)
    (service.inbox_dir / "uz.xlsx").write_bytes(b"PK whatever")
    (service.inbox_dir / "uz.xlsx.json").write_text(sidecar)
    watcher = InboxWatcher(service, settle_seconds=0)
    assert watcher.scan() == [] and watcher.scan() == []
    assert sorted(p.name for p in service.inbox_dir.iterdir()) == ["refused"]
    refused = sorted(p.name for p in (service.inbox_dir / "refused").iterdir())
    assert len(refused) == 3 and refused[-1].endswith("uz.xlsx.refused.txt")
    note = (service.inbox_dir / "refused" / refused[-1]).read_text()
    assert "uz.xlsx.json" in note and "drop both files" in note
    assert count(service, m.Submission) == 0
    assert watcher.scan() == []


def test_a_return_uploaded_through_its_link_is_pending_while_it_is_read(
    service: Settings,
) -> None:
    from mou.cycle.standing import cycle_status

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    # What the portal records before deciding: the link names the state and the cycle.
    receive_file(
        service,
        filled_return(service, cycle, "KZ"),
        filename="kz.xlsx",
        state="KZ",
        cycle_id=cycle,
        channel="portal",
    )
    with session_scope(service) as session:
        status = cycle_status(session, cycle)
    by_state = {s["state"]: s for s in status["states"]}
    assert by_state["KZ"]["outcome"] == "pending" and by_state["KZ"]["submissions"] == 1
    assert status["summary"]["pending"] == 1
    assert remind(service, DEADLINE) == 4  # and no reminder while it is read


def test_summaries_out_of_date_are_rendered_again_from_the_database(service: Settings) -> None:
    from mou.service.protocol import (
        consolidate_and_render,
        render_stale_reports,
        reports_folder,
        stale_reports,
    )

    bukhara = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    first, _ = receive_file(service, filled_return(service, bukhara, "KZ"), filename="kz.xlsx")
    process_submission(service, first)
    # The render its acceptance asked for was lost (a kill -9, a cancelled run).
    assert stale_reports(service) == [bukhara]
    assert sweep(service, older_than=dt.timedelta(0)).reports == [bukhara]
    assert stale_reports(service) == []
    with session_scope(service) as session:
        folder = reports_folder(service, session.get(m.ReportingCycle, bukhara))
    assert sorted(p.name for p in folder.glob("*.pdf")) == [
        "progress-summary-en.pdf",
        "progress-summary-ru.pdf",
    ]
    # A return accepted while (or after) the summaries were made leaves them stale again,
    # and so does a summary file that went missing.
    second, _ = receive_file(service, filled_return(service, bukhara, "UZ"), filename="uz.xlsx")
    process_submission(service, second)
    assert stale_reports(service) == [bukhara]
    assert render_stale_reports(service) == [bukhara] and stale_reports(service) == []
    (folder / "progress-summary-ru.pdf").unlink()
    assert stale_reports(service) == [bukhara]
    consolidate_and_render(service, bukhara, ["ru"])
    assert stale_reports(service) == []
    assert not list(folder.glob(".*partial"))  # no half-written file left behind


def test_consolidation_runs_of_two_cycles_at_once_both_render_and_a_repeat_renders_nothing(
    service: Settings,
) -> None:
    from mou.service.protocol import render_if_stale, stale_reports

    bukhara = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    cami = open_and_dispatch(service, "cami", "2024-2026", DEADLINE, states=["KZ"]).cycle_id
    kz, _ = receive_file(service, filled_return(service, bukhara, "KZ"), filename="kz.xlsx")
    assert process_submission(service, kz).status == "accepted"
    with session_scope(service) as session:
        data = synthetic_cami_return(service, session, cami)
    cami_return, _ = receive_file(service, data, filename="kz-cami.xlsx")
    assert process_submission(service, cami_return).status == "accepted"
    assert stale_reports(service) == [bukhara, cami]

    written: dict[int, list[Path]] = {}
    runs = [
        threading.Thread(target=lambda c=c: written.setdefault(c, render_if_stale(service, c)))
        for c in (bukhara, cami)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=300)
    assert sorted(written) == [bukhara, cami] and all(written.values())
    assert stale_reports(service) == []
    # Another run of the same burst finds the summaries up to date and renders nothing.
    assert render_if_stale(service, bukhara) == []


def test_a_return_decided_after_a_later_one_is_not_said_to_count(
    service: Settings, smtp: SmtpServer
) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    earlier, _ = receive_file(
        service,
        filled_return(service, cycle, "KZ", national_total=1700),
        filename="kz-first.xlsx",
        sender="environment.kz@example.org",
    )
    later, _ = receive_file(
        service,
        filled_return(service, cycle, "KZ", national_total=1776),
        filename="kz-second.xlsx",
        sender="environment.kz@example.org",
    )
    assert process_submission(service, later).status == "accepted"
    assert process_submission(service, earlier).status == "accepted"  # decided last
    receipts = [
        r.message
        for r in smtp.received
        if "kz-first.xlsx" in r.message.get_body(("plain",)).get_content()
    ]
    (receipt,) = receipts
    body = receipt.get_body(("plain",)).get_content()
    assert "заменяет" in str(receipt["Subject"]) and "kz-second.xlsx" in body
    assert "принят как версия" not in body


def versions(settings: Settings, *ids: int) -> list[int | None]:
    with session_scope(settings) as session:
        return [session.get(m.Submission, i).version for i in ids]


def test_versions_follow_the_order_returns_were_received_not_decided(service: Settings) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    first, second, third = (
        receive_file(
            service,
            filled_return(service, cycle, "KZ", national_total=1700 + n),
            filename=f"kz-{n}.xlsx",
        )[0]
        for n in range(3)
    )
    assert process_submission(service, second).version == 1
    late = process_submission(service, first)  # received first, decided after the second
    assert late.status == "accepted" and late.version is None  # it never counted
    assert process_submission(service, third).version == 2
    assert versions(service, first, second, third) == [None, 1, 2]
    with session_scope(service) as session:
        assert session.get(m.Submission, first).superseded_by_id == second
        assert session.get(m.Submission, second).superseded_by_id == third


def test_two_deciders_of_one_state_at_once_number_in_the_order_received(
    service: Settings,
) -> None:
    """Both deciders wait for the request's lock (held here) and then take turns: the one that
    comes second sees the first's committed decision, whichever of the two it is."""
    from mou.store.database import begin_sqlite_transaction
    from tests.test_mail import _wait_until_blocked

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    ids = [
        receive_file(
            service,
            filled_return(service, cycle, "UZ", national_total=1500 + n),
            filename=f"uz-{n}.xlsx",
        )[0]
        for n in range(2)
    ]
    errors: list[BaseException] = []

    def decide(submission_id: int) -> None:
        try:
            with session_scope(service) as other:
                intake.ingest_submission(other, service, submission_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with session_scope(service) as session:
        begin_sqlite_transaction(session, immediate=True)
        session.execute(
            select(m.ReportRequest)
            .join(m.RangeState)
            .where(m.ReportRequest.cycle_id == cycle, m.RangeState.code == "UZ")
            .with_for_update()
        ).one()
        threads = [threading.Thread(target=decide, args=(i,)) for i in reversed(ids)]
        for thread in threads:
            thread.start()
        _wait_until_blocked(service, threads, waiting=2)
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert versions(service, *ids) in ([1, 2], [None, 1])
    assert count(service, m.Submission, status="accepted") == 2


def test_a_drop_over_the_size_the_service_keeps_is_refused_with_a_note(
    service: Settings,
) -> None:
    from mou.service.inbox import InboxWatcher

    small = service.model_copy(update={"max_upload_bytes": 1000, "max_kept_bytes": 5000})
    small.inbox_dir.mkdir(parents=True, exist_ok=True)
    (small.inbox_dir / "huge.xlsx").write_bytes(b"PK" + b"x" * 6000)
    watcher = InboxWatcher(small, settle_seconds=0)
    assert watcher.scan() == [] and watcher.scan() == []
    notes = list((small.inbox_dir / "refused").glob("*.refused.txt"))
    assert len(notes) == 1 and "nothing was recorded" in notes[0].read_text()
    assert count(small, m.Submission) == 0 and count(small, m.StoredFile) == 0


def test_mail_that_did_not_reach_everyone_shows_in_the_status_and_can_be_sent_again(
    service: Settings, smtp: SmtpServer
) -> None:
    from mou.cli.outbox import cmd_outbox_retry
    from mou.cli.reports import cmd_status
    from mou.cycle.standing import cycle_status

    refused = {"mfa.kz@example.org", "mfa.uz@example.org", "environment.uz@example.org"}
    with session_scope(service) as session:  # the test relay refuses refuse* addresses
        for authority in session.scalars(select(m.Authority)):
            if authority.email in refused:
                authority.email = "refuse." + authority.email
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    with session_scope(service) as session:
        states = {s["state"]: s for s in cycle_status(session, cycle)["states"]}
    # Kazakhstan: the ministry of foreign affairs (To) refused, the focal ministry (Cc) got it.
    assert states["KZ"]["request_email"] == "partial"
    [kz] = states["KZ"]["mail_problems"]
    assert kz["kind"] == "request" and "refuse.mfa.kz@example.org" in kz["error"]
    # Uzbekistan: every address refused, the request failed.
    assert states["UZ"]["request_email"] == "failed"
    assert [p["status"] for p in states["UZ"]["mail_problems"]] == ["failed"]
    assert states["TJ"]["mail_problems"] == []

    import argparse
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        cmd_status(argparse.Namespace(cycle=cycle, json=False), service)
    assert "KZ: request email partial: recipients refused" in printed.getvalue()
    assert "UZ: request email failed" in printed.getvalue()

    with session_scope(service) as session:  # the addresses are mended on the queued mail
        failed = session.scalars(select(m.OutboxMessage).filter_by(status="failed")).one()
        failed.to = [a.removeprefix("refuse.") for a in failed.to]
        failed.cc = [a.removeprefix("refuse.") for a in failed.cc]
    before = len(smtp.received)
    with contextlib.redirect_stdout(io.StringIO()):
        assert cmd_outbox_retry(argparse.Namespace(key=None, json=False), service) == 0
    assert len(smtp.received) == before + 1  # only the failed one; the partial is not resent
    with session_scope(service) as session:
        after = {s["state"]: s for s in cycle_status(session, cycle)["states"]}
    assert after["UZ"]["request_email"] == "sent" and after["UZ"]["mail_problems"] == []
    assert after["KZ"]["request_email"] == "partial"


def test_mail_of_no_cycle_that_failed_shows_in_the_status_and_on_the_dashboard(
    service: Settings, smtp: SmtpServer
) -> None:
    import argparse
    import contextlib
    import io

    from mou.cli.reports import cmd_status
    from mou.cycle.standing import cycle_status
    from mou.portal.server import create_app
    from tests.accounts import signed_in_client

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    # Not a workbook: no cycle or state is ever read, and the relay refuses its sender.
    lost, _ = receive_file(
        service, b"not a workbook", filename="notes.xlsx", sender="refuse.someone@example.org"
    )
    assert process_submission(service, lost).status == "rejected"
    with session_scope(service) as session:
        status = cycle_status(session, cycle)
    [problem] = status["mail_problems_outside_cycles"]
    assert problem["kind"] == "receipt" and problem["status"] == "failed"
    assert problem["key"] == f"receipt:{lost}" and "refuse.someone" in problem["to"]
    assert status["mail_problems"] == [] and all(not s["mail_problems"] for s in status["states"])

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        cmd_status(argparse.Namespace(cycle=cycle, json=False), service)
    assert "no cycle: receipt email failed" in printed.getvalue()
    assert "mou outbox retry" in printed.getvalue()

    client = signed_in_client(create_app(service, ingest="thread"), "reader")
    dashboard = client.get("/dashboard?lang=fr").text
    assert "Courriels hors cycle non remis à tous" in dashboard
    assert f"receipt:{lost}" in dashboard and "refuse.someone@example.org" in dashboard


def test_the_sweep_removes_what_a_killed_writer_left_half_written(service: Settings) -> None:
    import os

    from mou.service.protocol import remove_leftover_files

    service.files_dir.joinpath("ab", "cd").mkdir(parents=True)
    service.outbox_dir.mkdir(parents=True)
    (service.var_dir / "reports" / "cami-2024-2026").mkdir(parents=True)
    old = [
        service.files_dir / "ab" / "cd" / ".incoming-x1",
        service.outbox_dir / ".sending-x2.tmp",
        service.var_dir / "reports" / "cami-2024-2026" / ".progress-summary-en.pdf.1.partial",
    ]
    fresh = service.outbox_dir / ".sending-x3.tmp"  # another process is writing it now
    kept = service.outbox_dir / "request-1-KZ.eml"
    for path in [*old, fresh, kept]:
        path.write_bytes(b"x")
    two_hours_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).timestamp()
    for path in [*old, kept]:
        os.utime(path, (two_hours_ago, two_hours_ago))
    assert remove_leftover_files(service) == 3
    assert not any(path.exists() for path in old)
    assert fresh.exists() and kept.exists()
    assert sweep(service, older_than=dt.timedelta(0)).temporary_files == 0


def test_a_decision_is_announced_once_however_often_it_is_asked_for(
    service: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mou.service.protocol as protocol

    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    announced: list[str] = []
    monkeypatch.setattr(protocol.events, "emit", lambda event, *a, **k: announced.append(event))
    submission_id, _ = receive_file(service, filled_return(service, cycle, "KZ"), filename="k")
    announced.clear()  # the "received" signal
    process_submission(service, submission_id)
    process_submission(service, submission_id)  # the sweep, a second worker, a start-up sweep
    assert announced == ["mou.submission.accepted"]


def test_a_cycle_that_cannot_be_rendered_does_not_hold_back_the_others(
    service: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mou.reporting.progress_summary as progress_summary
    from mou.service.protocol import render_stale_reports, stale_reports

    bukhara = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    cami = open_and_dispatch(service, "cami", "2024-2026", DEADLINE, states=["KZ"]).cycle_id
    first, _ = receive_file(service, filled_return(service, bukhara, "KZ"), filename="kz.xlsx")
    process_submission(service, first)
    with session_scope(service) as session:
        cami_return = synthetic_cami_return(service, session, cami)
    second, _ = receive_file(service, cami_return, filename="kz-cami.xlsx")
    assert process_submission(service, second).status == "accepted"
    real = progress_summary.render_progress_summary

    def fails_for_bukhara(consolidated, language, settings):
        if consolidated.cycle.id == bukhara:
            raise RuntimeError("a fault in the Bukhara layout")
        return real(consolidated, language, settings)

    monkeypatch.setattr(progress_summary, "render_progress_summary", fails_for_bukhara)
    assert render_stale_reports(service) == [cami]
    assert stale_reports(service) == [bukhara]  # still stale: the next sweep tries again


def synthetic_cami_return(service: Settings, session, cycle_id: int) -> bytes:
    import random

    from mou.demo.synthetic import synthetic_return

    return synthetic_return(service, cycle_id, "KZ", random.Random(3), language="ru").data


def test_a_translation_is_not_counted_against_the_texts_length(service: Settings) -> None:
    """general_comments takes 4000 characters: a 3000-character text with a 3000-character
    translation after "[en]" is accepted; a 4001-character text alone is refused as too long."""
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    original, english = "Учет проведен. " * 200, "Count made. " * 250
    both = filled_return(
        service, cycle, "TJ", general_comments=f"{original.strip()}\n[en]\n{english.strip()}"
    )
    accepted, _ = receive_file(service, both, filename="tj.xlsx", sender="tj@example.org")
    assert process_submission(service, accepted).status == "accepted"
    long = filled_return(service, cycle, "KZ", general_comments="Учет " * 801)
    refused, _ = receive_file(service, long, filename="kz.xlsx", sender="kz@example.org")
    outcome = process_submission(service, refused)
    assert outcome.status == "rejected"
    assert [i.code for i in outcome.issues if i.severity == "error"] == ["too_long"]
