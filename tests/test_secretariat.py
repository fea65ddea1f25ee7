"""The Secretariat runs a late cycle: extend, excuse, resend, review, close, publish.

Every action is checked for its effect on the database, the emails it sent (to aiosmtpd, once,
To/Cc as the official channel wants, in the state's language), its audit entry, and that
running it again changes and sends nothing. Both databases.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from email.utils import getaddresses
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.accounts.audit import logged_actions
from mou.accounts.roles import Actor, NotAllowed
from mou.catalogue.bootstrap import prepare_database
from mou.cycle.reminders import send_reminders
from mou.cycle.standing import cycle_status
from mou.errors import Refused
from mou.mail.delivery import deliver_pending
from mou.reporting.export import export_cycle
from mou.secretariat.cycles import (
    close_cycle,
    excuse_state,
    extend_deadline,
    list_cycles,
    resend_request,
)
from mou.secretariat.publication import public_releases, publish
from mou.secretariat.results import ActionResult
from mou.secretariat.review import accept_return, return_for_correction
from mou.service.actions import perform
from mou.service.protocol import (
    national_reports,
    open_and_dispatch,
    process_submission,
    receive_file,
    render_stale_reports,
    stale_national_reports,
    stale_reports,
)
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.conftest import relay
from tests.smtp_server import SmtpServer
from tests.test_protocol import filled_return

DEADLINE = dt.date(2027, 3, 31)
OFFICER = Actor("olga", "officer")
ADMIN = Actor("amir", "admin")
READER = Actor("rita", "reader")


def addresses(header: str | None) -> list[str]:
    return sorted(address for _, address in getaddresses([header or ""]))


@pytest.fixture
def service(settings: Settings, smtp: SmtpServer) -> Settings:
    prepare_database(settings)
    served = relay(settings, smtp)
    open_and_dispatch(served, "bukhara-deer", "2025-2026", DEADLINE)
    return served


def act(settings: Settings, action: Callable[[Session], ActionResult]) -> ActionResult:
    return perform(settings, action, render=False)


def cycle_id(settings: Settings) -> int:
    with session_scope(settings) as session:
        return session.scalars(select(m.ReportingCycle.id)).one()


def status(settings: Settings) -> dict[str, dict]:
    with session_scope(settings) as session:
        return {s["state"]: s for s in cycle_status(session, cycle_id(settings))["states"]}


def new_mail(smtp: SmtpServer, seen: int) -> list:
    return [r.message for r in smtp.received[seen:]]


def submit(settings: Settings, state: str, **changes) -> int:
    data = filled_return(settings, cycle_id(settings), state, **changes)
    submission_id, _ = receive_file(
        settings, data, filename=f"{state}.xlsx", sender=f"officer.{state.lower()}@example.org"
    )
    process_submission(settings, submission_id)
    return submission_id


def test_extend_excuse_and_reminders_follow(service: Settings, smtp: SmtpServer) -> None:
    cid = cycle_id(service)
    seen = len(smtp.received)
    new = dt.date(2027, 5, 31)
    done = act(
        service,
        lambda s: extend_deadline(
            s,
            service,
            OFFICER,
            cid,
            new,
            "asked by note verbale",
            state="KZ",
            today=dt.date(2027, 3, 1),
        ),
    )
    assert done.changed and done.state == "KZ"
    [notice] = new_mail(smtp, seen)
    assert addresses(notice["To"]) == ["mfa.kz@example.org"]
    assert addresses(notice["Cc"]) == ["environment.kz@example.org"]
    # Kazakhstan corresponds in Russian; the date is written out, never 31.05.2027.
    assert "продлен до 31 мая 2027\u202fг." in str(notice["Subject"])
    assert "/r/" in notice.get_body(("plain",)).get_content()  # a link valid to the new date
    again = act(
        service,
        lambda s: extend_deadline(
            s, service, OFFICER, cid, new, "asked again", state="KZ", today=dt.date(2027, 3, 1)
        ),
    )
    assert not again.changed and len(smtp.received) == seen + 1

    act(service, lambda s: excuse_state(s, OFFICER, cid, "TM", "no range left in TM"))
    standing = status(service)
    assert standing["KZ"]["deadline"] == "2027-05-31" and standing["KZ"]["extended"]
    assert standing["TM"]["outcome"] == "excused" and standing["TM"]["excused"]
    assert not act(service, lambda s: excuse_state(s, OFFICER, cid, "TM", "again")).changed

    # On the cycle's deadline, the "due" reminder goes to the states still held to it only.
    with session_scope(service) as session:
        queued = send_reminders(session, service, DEADLINE)
        reminded = sorted(message.key.split(":")[2] for message in queued)
    assert reminded == ["AF", "TJ", "UZ"]
    with session_scope(service) as session:
        on_new_date = send_reminders(session, service, new)
        assert [message.key for message in on_new_date if ":KZ:" in message.key] == [
            f"reminder:{cid}:KZ:2027-05-31:due"
        ]
    deliver_pending(service)
    [due] = [
        mail
        for mail in new_mail(smtp, 0)
        if "Казахстан" in str(mail["Subject"]) and "сегодня" in str(mail["Subject"])
    ]
    # Names the instrument, the state and the reference; carries the personal link.
    assert str(due["Subject"]).startswith("Меморандум") and "/KZ)" in str(due["Subject"])
    assert addresses(due["To"]) == ["environment.kz@example.org"]
    assert "/r/" in due.get_body(("plain",)).get_content()

    # The whole cycle later: every state not excused and still held to the old date is told.
    seen = len(smtp.received)
    act(
        service,
        lambda s: extend_deadline(
            s,
            service,
            OFFICER,
            cid,
            dt.date(2027, 4, 30),
            "meeting moved",
            today=dt.date(2027, 4, 1),
        ),
    )
    told = sorted(addresses(mail["To"])[0] for mail in new_mail(smtp, seen))
    assert told == ["mfa.af@example.org", "mfa.tj@example.org", "mfa.uz@example.org"]
    assert status(service)["UZ"]["deadline"] == "2027-04-30"
    assert status(service)["KZ"]["deadline"] == "2027-05-31"  # its own date is later still

    with pytest.raises(Refused, match="before"):
        act(
            service,
            lambda s: extend_deadline(
                s, service, OFFICER, cid, dt.date(2027, 4, 2), "x", today=dt.date(2027, 4, 1)
            ),
        )
    with pytest.raises(Refused, match="reason"):
        act(service, lambda s: excuse_state(s, OFFICER, cid, "AF", "  "))
    with pytest.raises(NotAllowed):
        act(service, lambda s: excuse_state(s, READER, cid, "AF", "a reader tries"))

    act(service, lambda s: excuse_state(s, OFFICER, cid, "TM", "TM will report", undo=True))
    assert status(service)["TM"]["outcome"] == "not received"
    actions = [e.action for e in logged_actions_of(service, cid)]
    assert actions == [
        "state.extend",
        "state.excuse",
        "cycle.extend",
        "state.unexcuse",
    ]


def logged_actions_of(settings: Settings, cid: int) -> list:
    with session_scope(settings) as session:
        return logged_actions(session, cid)


def test_a_corrected_address_gets_the_request_again_once(
    service: Settings, smtp: SmtpServer
) -> None:
    cid = cycle_id(service)
    seen = len(smtp.received)
    first = act(service, lambda s: resend_request(s, service, OFFICER, cid, "TJ", "never came"))
    [copy] = new_mail(smtp, seen)
    assert first.changed and addresses(copy["To"]) == ["mfa.tj@example.org"]
    assert "CMS/BD-MOU/2025-2026/TJ" in str(copy["Subject"])
    assert not act(service, lambda s: resend_request(s, service, OFFICER, cid, "TJ")).changed

    with session_scope(service) as session:
        mfa = session.scalars(select(m.Authority).filter_by(key="tj-mfa")).one()
        mfa.email = "protocol.tj@example.org"
    act(service, lambda s: resend_request(s, service, OFFICER, cid, "TJ", "address corrected"))
    act(service, lambda s: resend_request(s, service, OFFICER, cid, "TJ", "pressed twice"))
    later = new_mail(smtp, seen + 1)
    assert [addresses(mail["To"]) for mail in later] == [["protocol.tj@example.org"]]
    with session_scope(service) as session:
        request = session.scalars(
            select(m.ReportRequest).where(m.ReportRequest.reference.like("%/TJ"))
        ).one()
        assert request.reference in str(later[0]["Subject"])  # the same reference


def test_review_return_then_the_corrected_return_answers(
    service: Settings, smtp: SmtpServer
) -> None:
    first = submit(service, "UZ")
    assert status(service)["UZ"]["outcome"] == "accepted"
    seen = len(smtp.received)
    sent_back = act(
        service,
        lambda s: return_for_correction(
            s,
            service,
            OFFICER,
            first,
            ["national_total: the total is not the sum of the sites", "Please sign the return."],
        ),
    )
    assert sent_back.changed
    [mail] = new_mail(smtp, seen)
    body = mail.get_body(("plain",)).get_content()
    # In the return's language (Russian), naming the field's cell and sheet.
    assert "ячейка" in body and "лист «" in body and "the total is not the sum" in body
    assert "- Please sign the return." in body
    assert "officer.uz@example.org" in addresses(mail["To"])
    assert status(service)["UZ"]["outcome"] == "correction requested"
    assert not act(
        service, lambda s: return_for_correction(s, service, OFFICER, first, ["again"])
    ).changed
    with pytest.raises(Refused, match="not a field"):
        act(service, lambda s: return_for_correction(s, service, OFFICER, first, ["nosuch: x"]))
    with pytest.raises(Refused, match="not a field"):
        act(service, lambda s: return_for_correction(s, service, OFFICER, first, [("no", "x")]))

    corrected = submit(service, "UZ", national_total=1777)
    assert status(service)["UZ"]["outcome"] == "accepted"
    with session_scope(service) as session:
        correction = session.scalars(select(m.CorrectionRequest)).one()
        assert correction.answered_by_id == corrected
        changed = {c.field_key: c.changed for c in correction.comments}
    assert changed == {"national_total": True, None: None}


def test_accept_despite_warnings_and_errors(service: Settings, smtp: SmtpServer) -> None:
    cid = cycle_id(service)
    refused = submit(service, "KZ", reporting_institution=None)
    assert status(service)["KZ"]["outcome"] == "refused"
    with pytest.raises(Refused, match="--waive"):
        act(service, lambda s: accept_return(s, service, OFFICER, refused, "we know"))
    with pytest.raises(NotAllowed):
        act(
            service,
            lambda s: accept_return(s, service, OFFICER, refused, "x", waive=["required"]),
        )
    with session_scope(service) as session:
        codes = sorted(
            {i.code for i in session.get(m.Submission, refused).issues if i.severity == "error"}
        )
    done = act(
        service,
        lambda s: accept_return(
            s, service, ADMIN, refused, "total confirmed by phone", waive=codes
        ),
    )
    assert done.changed
    kz = status(service)["KZ"]
    assert kz["outcome"] == "accepted" and kz["latest"]["version"] == 1
    again = act(service, lambda s: accept_return(s, service, ADMIN, refused, "again", waive=codes))
    assert not again.changed

    fine = submit(service, "UZ")
    act(service, lambda s: accept_return(s, service, OFFICER, fine, "warnings checked"))
    with session_scope(service) as session:
        assert session.get(m.Submission, fine).review_reason == "warnings checked"
    assert cid in stale_reports(service)  # the reports must now say so


def test_close_and_publish(service: Settings, smtp: SmtpServer, tmp_path: Path) -> None:
    cid = cycle_id(service)
    submit(service, "UZ")
    closed = perform(service, lambda s: close_cycle(s, OFFICER, cid, "meeting held"))
    assert closed.changed and closed.details["rendered"]
    assert cycle_status_of(service)["status"] == "closed"
    assert cid not in stale_reports(service)  # the final reports were rendered
    assert not act(service, lambda s: close_cycle(s, OFFICER, cid)).changed
    with pytest.raises(Refused, match="is closed"):
        open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE)

    late = submit(service, "KZ")
    with session_scope(service) as session:
        issues = [i.code for i in session.get(m.Submission, late).issues]
    assert issues == ["cycle_closed"]
    with pytest.raises(Refused, match="closed"):
        act(service, lambda s: resend_request(s, service, OFFICER, cid, "KZ"))
    # The Secretariat can still take a late file by hand.
    act(
        service,
        lambda s: accept_return(
            s, service, ADMIN, late, "late but welcome", waive=["cycle_closed"]
        ),
    )
    assert status(service)["KZ"]["outcome"] == "accepted"

    act(service, lambda s: publish(s, OFFICER, cid, ["reports", "national-reports"]))
    with session_scope(service) as session:
        assert sorted(r.kind for r in public_releases(session)) == ["national-reports", "reports"]
    # Released national reports are made by whoever renders what is stale (here: the sweep's).
    assert stale_national_reports(service) == [cid]
    assert cid in render_stale_reports(service)
    files = national_reports(service, cid)
    assert sorted(files) == ["KZ", "UZ"]
    assert sorted(p.name for p in files["UZ"]) == ["UZ-en.pdf", "UZ-ru.pdf"]
    assert stale_national_reports(service) == []
    assert not act(service, lambda s: publish(s, OFFICER, cid, ["reports"])).changed
    act(service, lambda s: publish(s, OFFICER, cid, ["national-reports"], withdraw=True))
    with session_scope(service) as session:
        assert [r.kind for r in public_releases(session)] == ["reports"]
        rows = list_cycles(session)
    assert rows[0]["status"] == "closed" and rows[0]["counts"]["accepted"] == 2
    with session_scope(service) as session:
        exported = export_cycle(session, cid, tmp_path / "cycle.json", forms_dir=service.forms_dir)
    audit = json.loads(exported.read_text(encoding="utf-8"))["audit"]
    assert [entry["action"] for entry in audit][:2] == ["cycle.close", "review.accept"]
    assert [e.action for e in logged_actions_of(service, cid)] == [
        "cycle.close",
        "review.accept",
        "publication.release",
        "publication.release",
        "publication.withdraw",
    ]


def cycle_status_of(settings: Settings) -> dict:
    with session_scope(settings) as session:
        return cycle_status(session, cycle_id(settings))


def test_the_command_line_runs_the_same_actions(
    service: Settings, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    from mou.cli import main
    from mou.settings import get_settings

    monkeypatch.setenv("MOU_VAR_DIR", str(service.var_dir))
    monkeypatch.setenv("MOU_DATABASE_URL", service.effective_database_url)
    monkeypatch.setenv("MOU_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MOU_SMTP_PORT", str(smtp.port))
    get_settings.cache_clear()
    cid = cycle_id(service)

    def mou(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = mou("cycle", "list", "--json")
    assert code == 0 and json.loads(out)[0]["id"] == cid
    code, out, _ = mou(
        "cycle", "exempt", str(cid), "--state", "AF", "--reason", "no contact", "--json"
    )
    assert code == 0 and json.loads(out)["changed"]
    code, out, _ = mou("cycle", "exempt", str(cid), "--state", "AF", "--reason", "again")
    assert code == 0 and out.startswith("nothing to do")
    code, _, err = mou("cycle", "exempt", str(cid), "--state", "MN", "--reason", "x")
    assert code == 1 and "no request to MN" in err and len(err.strip().splitlines()) == 1
    code, _, err = mou("review", "accept", "999", "--reason", "x")
    assert code == 1 and "no return 999" in err
    code, out, _ = mou("audit", str(cid), "--json")
    [entry] = json.loads(out)
    assert entry["action"] == "state.excuse" and entry["actor"].startswith("cli")
    assert entry["state"] == "AF" and entry["reason"] == "no contact"

    # The rest of a late cycle; each step run twice: the second changes and sends nothing.
    uz = submit(service, "UZ")
    kz = submit(service, "KZ", reporting_institution=None)
    seen = len(smtp.received)
    steps = [
        ("cycle", "extend", cid, "--deadline", "2027-05-31", "--state", "KZ", "--reason", "nv"),
        ("request", "resend", cid, "--state", "TJ", "--reason", "never came"),
        ("review", "return", uz, "--comment", "national_total: check the sum", "--comment", "Sign"),
        ("review", "accept", kz, "--reason", "confirmed by phone", "--waive", "required"),
        ("cycle", "meeting", cid, "--name", "Fifth Meeting", "--name-ru", "Пятое совещание"),
        ("cycle", "close", cid, "--reason", "meeting held"),
        ("publish", cid, "--reports", "--national-reports"),
    ]
    for step in steps:
        code, out, err = mou(*map(str, step), "--json")
        assert code == 0 and json.loads(out)["changed"], (step, err)
        code, out, err = mou(*map(str, step))
        assert code == 0 and out.startswith("nothing to do"), (step, out, err)
    # The notice of the extension, the request sent again, the comments: once each.
    assert len(smtp.received) == seen + 3
    code, out, _ = mou("status", str(cid), "--json")
    states = {s["state"]: s for s in json.loads(out)["states"]}
    assert json.loads(out)["status"] == "closed"
    assert states["KZ"]["outcome"] == "accepted" and states["KZ"]["deadline"] == "2027-05-31"
    assert states["UZ"]["outcome"] == "correction requested"
    assert states["AF"]["outcome"] == "excused"
    code, out, _ = mou("audit", str(cid), "--json")
    assert [e["action"] for e in json.loads(out)] == [
        "state.excuse",
        "state.extend",
        "request.resend",
        "review.return",
        "review.accept",
        "cycle.meeting",
        "cycle.close",
        "publication.release",
        "publication.release",
    ]
    get_settings.cache_clear()


def test_two_officers_at_once_take_turns(service: Settings, smtp: SmtpServer) -> None:
    """Two extensions of one state and two acceptances of one return, started together: the
    deadline only moves later, the return is accepted and logged once."""
    import threading

    cid = cycle_id(service)
    fine = submit(service, "UZ")
    dates = [dt.date(2027, 6, 30), dt.date(2027, 5, 31)]
    results: list[object] = []
    start = threading.Barrier(4)

    def run(action: Callable[[Session], ActionResult]) -> None:
        start.wait(timeout=30)
        try:
            results.append(act(service, action))
        except Refused as refused:
            results.append(refused)

    def extend(day: dt.date) -> Callable[[Session], ActionResult]:
        return lambda s: extend_deadline(
            s, service, OFFICER, cid, day, "asked", state="KZ", today=dt.date(2027, 3, 1)
        )

    threads = [
        threading.Thread(target=run, args=(extend(dates[0]),)),
        threading.Thread(target=run, args=(extend(dates[1]),)),
        *(
            threading.Thread(
                target=run, args=(lambda s: accept_return(s, service, OFFICER, fine, "checked"),)
            )
            for _ in range(2)
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 4 and not any(
        isinstance(r, Exception) and not isinstance(r, Refused) for r in results
    )
    assert status(service)["KZ"]["deadline"] == "2027-06-30"
    actions = [e.action for e in logged_actions_of(service, cid)]
    assert actions.count("review.accept") == 1
    accepted = [r for r in results if isinstance(r, ActionResult) and r.action == "review.accept"]
    assert sorted(r.changed for r in accepted) == [False, True]


def test_a_number_too_big_for_the_database_is_wrong_usage(
    service: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from mou.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["review", "accept", "99999999999999999999", "--reason", "x"])
    assert exited.value.code == 2
    assert "is not the number of a cycle or a return" in capsys.readouterr().err


def test_the_meeting_is_set_and_the_summary_serves_it(service: Settings) -> None:
    """`mou cycle meeting`: the cover names the meeting, the agenda item and the original
    language; page 1 gives the key messages and the Action requested; the same values again
    change nothing; the summary is rendered again."""
    import io

    from pypdf import PdfReader

    from mou.secretariat.cycles import set_meeting

    cid = cycle_id(service)
    submit(service, "UZ")
    fields = {
        "name": "Fifth Meeting of the Signatories",
        "number": "BD/MOS5",
        "place": "Dushanbe, Tajikistan",
        "dates": "14-16 April 2027",
        "agenda_item": "7.1",
        "original": "ru",
        "action": "The meeting is invited to welcome the report of Uzbekistan.",
    }
    done = perform(service, lambda s: set_meeting(s, OFFICER, cid, fields, "announced"))
    assert done.changed and done.details["rendered"]
    assert not act(service, lambda s: set_meeting(s, OFFICER, cid, fields)).changed
    with pytest.raises(Refused, match="instrument's languages"):
        act(service, lambda s: set_meeting(s, OFFICER, cid, {"original": "de"}))
    with pytest.raises(NotAllowed):
        act(service, lambda s: set_meeting(s, READER, cid, {"place": "Bonn"}))
    with session_scope(service) as session:
        cycle = session.get(m.ReportingCycle, cid)
        folder = service.var_dir / "reports" / f"{cycle.instrument.code}-{cycle.period}"

    def page_one(language: str) -> str:
        pdf = (folder / f"progress-summary-{language}.pdf").read_bytes()
        return " ".join((PdfReader(io.BytesIO(pdf)).pages[0].extract_text() or "").split())

    text = page_one("en")
    for expected in (
        "Fifth Meeting of the Signatories (BD/MOS5)",
        "Dushanbe, Tajikistan, 14-16 April 2027",
        "Item 7.1 of the provisional agenda",
        "Original: Russian",
        "Key messages",
        "1 of the 5 States asked has reported.",
        "No report accepted yet: Afghanistan, Kazakhstan, Tajikistan, Turkmenistan.",
        "Action requested",
        "The meeting is invited to welcome the report of Uzbekistan.",
    ):
        assert expected in text, expected
    with session_scope(service) as session:
        [entry] = session.scalars(select(m.AuditEvent).filter_by(action="cycle.meeting")).all()
        assert entry.reason == "announced" and entry.details["new"]["agenda_item"] == "7.1"
    # Given in Russian too, the Russian summary prints the Russian texts; the English one
    # keeps those in the original language. Codes and numbers have one form only.
    russian = {
        "name.ru": "Пятое совещание подписавших сторон",
        "place.ru": "Душанбе, Таджикистан",
        "dates.ru": "14–16 апреля 2027 г.",
        "action.ru": "Совещанию предлагается приветствовать отчет Узбекистана.",
    }
    assert perform(service, lambda s: set_meeting(s, OFFICER, cid, russian)).changed
    with pytest.raises(Refused, match="instrument's languages are en, ru"):
        act(service, lambda s: set_meeting(s, OFFICER, cid, {"name.fr": "Cinquième réunion"}))
    with pytest.raises(Refused, match=r"unknown meeting field 'number\.ru'"):
        act(service, lambda s: set_meeting(s, OFFICER, cid, {"number.ru": "BD/MOS5"}))
    ru_text = page_one("ru")
    for expected in (
        "Пятое совещание подписавших сторон (BD/MOS5)",
        "Душанбе, Таджикистан, 14–16 апреля 2027 г.",
        "Совещанию предлагается приветствовать отчет Узбекистана.",
    ):
        assert expected in ru_text, expected
    assert "Fifth Meeting" not in ru_text and "Dushanbe" not in ru_text
    assert "Fifth Meeting of the Signatories" in page_one("en")
    # Only the place left: it shows alone; the default Action requested returns.
    rest = {key: "" for key in (*fields, *russian) if key != "place"}
    perform(service, lambda s: set_meeting(s, OFFICER, cid, rest))
    text = page_one("en")
    assert "Fifth Meeting" not in text and "Dushanbe, Tajikistan" in text
    assert "The meeting is invited to take note" in text and "Original: English" in text
    # No meeting at all: no meeting lines and no "Original:" either.
    perform(service, lambda s: set_meeting(s, OFFICER, cid, {"place": ""}))
    text = page_one("en")
    assert "Dushanbe" not in text and "Original:" not in text
