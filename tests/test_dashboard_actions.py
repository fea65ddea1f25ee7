"""The Secretariat acts on a cycle from the dashboard: each action's form, its confirmation
page, the action itself (post/redirect/get with a notice in the page's language), refusals as
notices, readers refused (403), and what the pages then show: the cycle page per state, the
ministry's page (deadline, comments), the public page of releases. Both databases; the emails
go to aiosmtpd and are counted."""

from __future__ import annotations

import datetime as dt
import html as html_module
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from mou.accounts.audit import logged_actions
from mou.catalogue.bootstrap import prepare_database
from mou.cycle.links import portal_link
from mou.portal.cycle_actions import review_comments
from mou.portal.server import create_app
from mou.service.protocol import open_and_dispatch, reports_folder
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.accounts import SignedInClient, TestClient
from tests.conftest import relay
from tests.smtp_server import SmtpServer
from tests.test_secretariat import addresses, status, submit

DEADLINE = dt.date(2027, 3, 31)


@pytest.fixture
def service(settings: Settings, smtp: SmtpServer) -> Settings:
    prepare_database(settings)
    served = relay(settings, smtp)
    open_and_dispatch(served, "bukhara-deer", "2025-2026", DEADLINE)
    return served


@pytest.fixture
def app(service: Settings) -> Iterator[Any]:
    app = create_app(service, ingest="thread", render_reports=False)
    yield app
    app.state.portal.inline.close()


def cycle_of(settings: Settings) -> int:
    with session_scope(settings) as session:
        return session.scalars(select(m.ReportingCycle.id)).one()


def act(
    client: SignedInClient, path: str, data: dict[str, str], lang: str = "en"
) -> tuple[Any, Any]:
    """Post the form (the confirmation page comes back), then confirm it; the confirmation
    page and the page the action redirected to."""
    url = f"{path}?lang={lang}"
    asked = client.post_form(url, data)
    assert asked.status_code == 200, asked.text[:500]
    assert 'name="confirm" value="yes"' in asked.text
    done = client.post_form(url, {**data, "confirm": "yes"})
    assert done.status_code == 303, done.text[:500]
    page = client.get(done.headers["location"])
    assert page.status_code == 200
    return asked, page


def notice(html: str) -> str:
    found = re.search(r'<div class="notice [^"]*"[^>]*id="notice">(.*?)</div>', html, re.S)
    assert found, "no notice on the page"
    return html_module.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


def mail_since(smtp: SmtpServer, seen: int) -> list:
    return [r.message for r in smtp.received[seen:]]


def test_an_officer_extends_excuses_and_resends_with_confirmation(
    app: Any, service: Settings, smtp: SmtpServer, signed_in: Any
) -> None:
    officer = signed_in(app, "officer")
    cid = cycle_of(service)
    page = officer.get(f"/dashboard/cycles/{cid}")
    assert page.status_code == 200
    # What each state needs next, in words: the next reminder and its date.
    assert "Reminder 14 days before the deadline" in page.text
    assert "17 March 2027" in page.text
    assert "mfa.kz@example.org" in page.text and "environment.kz@example.org" in page.text

    seen = len(smtp.received)
    form = {"state": "KZ", "deadline": "2027-05-31", "reason": "asked by note verbale"}
    asked, after = act(officer, f"/dashboard/cycles/{cid}/extend", form)
    assert "Please confirm" in asked.text and "31 May 2027" in asked.text
    assert "KZ: the deadline is now 31 May 2027. Notices sent: 1." in notice(after.text)
    [sent] = mail_since(smtp, seen)
    assert addresses(sent["To"]) == ["mfa.kz@example.org"]
    assert status(service)["KZ"]["deadline"] == "2027-05-31"
    # The notice is read once.
    assert 'id="notice"' not in officer.get(f"/dashboard/cycles/{cid}").text

    # Again: nothing changes, nothing is sent, and the page says so.
    _, again = act(officer, f"/dashboard/cycles/{cid}/extend", form)
    assert "Nothing changed" in notice(again.text) and len(smtp.received) == seen + 1

    # In Russian, the notice too.
    _, excused = act(
        officer,
        f"/dashboard/cycles/{cid}/excuse",
        {"state": "TM", "reason": "no range left in TM"},
        lang="ru",
    )
    assert "TM: государство освобождено от отчета" in notice(excused.text)
    assert "Освобождено: 1" in excused.text
    assert status(service)["TM"]["outcome"] == "excused"
    assert len(smtp.received) == seen + 1  # an exemption sends nothing
    _, undone = act(
        officer,
        f"/dashboard/cycles/{cid}/excuse",
        {"state": "TM", "reason": "TM will report", "undo": "1"},
        lang="fr",
    )
    assert "TM n'est plus dispensé." in notice(undone.text)
    assert status(service)["TM"]["outcome"] == "not received"

    # A corrected address gets the request again, once.
    with session_scope(service) as session:
        session.scalars(
            select(m.Authority).filter_by(key="tj-mfa")
        ).one().email = "protocol.tj@example.org"
    _, resent = act(
        officer, f"/dashboard/cycles/{cid}/resend", {"state": "TJ", "reason": "address corrected"}
    )
    assert "TJ: the request was sent again" in notice(resent.text)
    [request] = mail_since(smtp, seen + 1)
    assert addresses(request["To"]) == ["protocol.tj@example.org"]
    _, twice = act(officer, f"/dashboard/cycles/{cid}/resend", {"state": "TJ", "reason": ""})
    assert "Nothing changed" in notice(twice.text) and len(smtp.received) == seen + 2
    assert "Request sent again" in twice.text  # the state's emails, in words

    # A refusal is a notice, never a traceback; a past date is refused by the core.
    _, refused = act(
        officer,
        f"/dashboard/cycles/{cid}/extend",
        {"deadline": "2020-01-01", "reason": "too late"},
    )
    assert "The action was refused" in notice(refused.text)
    assert "has passed already" in notice(refused.text)
    bad = officer.post_form(
        f"/dashboard/cycles/{cid}/extend", {"deadline": "soon", "reason": "x", "confirm": "yes"}
    )
    assert bad.status_code == 303
    assert "not a date" in notice(officer.get(bad.headers["location"]).text)

    with session_scope(service) as session:
        actions = [(e.action, e.actor, e.state) for e in logged_actions(session, cid)]
    name = officer.user.name
    assert actions == [
        ("state.extend", name, "KZ"),
        ("state.excuse", name, "TM"),
        ("state.unexcuse", name, "TM"),
        ("request.resend", name, "TJ"),
    ]


def test_review_return_the_ministry_sees_the_comments_and_the_answer_is_shown(
    app: Any, service: Settings, smtp: SmtpServer, signed_in: Any
) -> None:
    officer = signed_in(app, "officer")
    cid = cycle_of(service)
    first = submit(service, "UZ")
    page = officer.get(f"/dashboard/cycles/{cid}")
    assert f'action="/dashboard/submissions/{first}/return?lang=en"' in page.text
    assert '<option value="national_total">' in page.text  # the form's fields to pick

    seen = len(smtp.received)
    comments = {
        "field_1": "national_total",
        "text_1": "The total is not the sum of the sites.",
        "field_2": "",
        "text_2": "Please sign the return.",
    }
    asked, after = act(officer, f"/dashboard/submissions/{first}/return", comments)
    assert "The total is not the sum of the sites." in asked.text
    assert f"Return № {first} was sent back to UZ for correction. Comments: 2." in notice(
        after.text
    )
    [mail] = mail_since(smtp, seen)
    assert "the sum of the sites" in mail.get_body(("plain",)).get_content()
    assert status(service)["UZ"]["outcome"] == "correction requested"
    assert "a corrected return is awaited" in after.text

    # The ministry's page lists the comments with their sheet and cell, in Russian.
    token = portal_link(service, cid, "UZ").split("/r/", 1)[1]
    ministry = TestClient(app).get(f"/r/{token}")
    assert "Секретариат просит внести исправления" in ministry.text
    assert "The total is not the sum of the sites." in ministry.text
    assert re.search(r"<td>[A-Z]+\d+</td>", ministry.text)  # the cell
    assert "Общее замечание" in ministry.text

    corrected = submit(service, "UZ", national_total=1777)
    answered = officer.get(f"/dashboard/cycles/{cid}").text
    assert f"was answered by return № {corrected}" in answered
    assert "Changed" in answered
    assert "Секретариат просит" not in TestClient(app).get(f"/r/{token}").text

    # Accept the corrected one with a reason (its warnings checked).
    _, accepted = act(
        officer, f"/dashboard/submissions/{corrected}/accept", {"reason": "warnings checked"}
    )
    assert f"Return № {corrected} is accepted by the Secretariat." in notice(accepted.text)
    with session_scope(service) as session:
        assert session.get(m.Submission, corrected).review_reason == "warnings checked"


def test_an_admin_waives_errors_an_officer_cannot(
    app: Any, service: Settings, signed_in: Any
) -> None:
    cid = cycle_of(service)
    refused = submit(service, "KZ", reporting_institution=None)
    with session_scope(service) as session:
        codes = sorted(
            {i.code for i in session.get(m.Submission, refused).issues if i.severity == "error"}
        )
    officer = signed_in(app, "officer")
    assert (
        f"/dashboard/submissions/{refused}/accept"
        not in officer.get(f"/dashboard/cycles/{cid}").text
    )
    waive = {f"waive_{n}": code for n, code in enumerate(codes, 1)}
    answer = officer.post_form(
        f"/dashboard/submissions/{refused}/accept",
        {**waive, "reason": "x", "confirm": "yes"},
    )
    assert answer.status_code == 403  # the core's own check of the role
    admin = signed_in(app, "admin")
    page = admin.get(f"/dashboard/cycles/{cid}").text
    assert f"/dashboard/submissions/{refused}/accept" in page
    _, done = act(
        admin,
        f"/dashboard/submissions/{refused}/accept",
        {**waive, "reason": "confirmed by phone"},
    )
    assert f"Return № {refused} is accepted" in notice(done.text)
    assert status(service)["KZ"]["outcome"] == "accepted"


def test_the_meeting_is_set_on_the_cycle_page(app: Any, service: Settings, signed_in: Any) -> None:
    officer = signed_in(app, "officer")
    cid = cycle_of(service)
    page = officer.get(f"/dashboard/cycles/{cid}?lang=ru").text
    assert "Совещание, для которого готовится сводный обзор" in page
    form = {
        "meeting_name": "Fifth Meeting of the Signatories",
        "meeting_number": "BD/MOS5",
        "meeting_place": "Dushanbe, Tajikistan",
        "meeting_dates": "14-16 April 2027",
        "meeting_agenda_item": "7.1",
        "meeting_original": "en",
        "meeting_action": "The meeting is invited to take note.",
        "meeting_name.ru": "Пятое совещание подписавших сторон",
        "meeting_place.ru": "",
        "reason": "announced",
    }
    assert 'name="meeting_name.ru"' in page and 'name="meeting_action.en"' in page
    asked, done = act(officer, f"/dashboard/cycles/{cid}/meeting", form)
    assert "Dushanbe, Tajikistan" in asked.text and "Agenda item" in asked.text
    assert "Meeting (in Russian)" in asked.text and "Пятое совещание" in asked.text
    assert "The meeting is set." in notice(done.text)
    with session_scope(service) as session:
        cycle = session.get(m.ReportingCycle, cid)
        assert cycle.meeting["agenda_item"] == "7.1" and cycle.meeting["place"].startswith("Dush")
        assert cycle.meeting["name.ru"].startswith("Пятое") and "place.ru" not in cycle.meeting
        [entry] = session.scalars(select(m.AuditEvent).filter_by(action="cycle.meeting")).all()
        assert entry.actor.startswith("officer") and entry.reason == "announced"
    # The form shows what is set; sent again unchanged, nothing changes.
    page = officer.get(f"/dashboard/cycles/{cid}").text
    assert 'value="BD/MOS5"' in page and "The meeting is invited to take note." in page
    assert 'value="Пятое совещание подписавших сторон"' in page
    _, again = act(officer, f"/dashboard/cycles/{cid}/meeting", form)
    assert "as given already" in notice(again.text)


def test_close_publish_and_the_public_page(app: Any, service: Settings, signed_in: Any) -> None:
    officer = signed_in(app, "officer")
    cid = cycle_of(service)
    _, closed = act(officer, f"/dashboard/cycles/{cid}/close", {"reason": "meeting held"})
    assert "The cycle is closed." in notice(closed.text)
    assert status(service)["UZ"]["outcome"] == "not received"
    with session_scope(service) as session:
        cycle = session.get(m.ReportingCycle, cid)
        assert cycle.status == "closed"
        folder = reports_folder(service, cycle)
    # The PDFs a render would leave (the renders are the reporting tests' business).
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "ru"):
        (folder / f"progress-summary-{lang}.pdf").write_bytes(b"%PDF-1.7 " + lang.encode())
    public = TestClient(app)
    assert public.get("/releases").status_code == 200
    assert "Nothing has been published yet." in public.get("/releases").text
    private = public.get(f"/releases/{cid}/reports/progress-summary-en.pdf")
    assert private.status_code == 404  # not published: private

    _, published = act(officer, f"/dashboard/cycles/{cid}/publish", {"kind": "reports"})
    assert "Published on the public page: Progress summaries." in notice(published.text)
    listing = public.get("/releases?lang=ru").text
    assert "Опубликованные отчеты" in listing and "Сводный отчет, Русский" in listing
    assert public.get(f"/releases/{cid}/reports/progress-summary-ru.pdf").content.endswith(b"ru")
    assert public.get(f"/releases/{cid}/reports/..%2Frendered.json").status_code == 404
    assert public.get(f"/releases/{cid}/national-reports/KZ-en.pdf").status_code == 404
    assert "/releases?lang=fr" in public.get("/?lang=fr").text  # linked from the home page

    _, withdrawn = act(
        officer, f"/dashboard/cycles/{cid}/publish", {"kind": "reports", "withdraw": "1"}
    )
    assert "Withdrawn from the public page" in notice(withdrawn.text)
    assert public.get(f"/releases/{cid}/reports/progress-summary-en.pdf").status_code == 404
    with session_scope(service) as session:
        assert [e.action for e in logged_actions(session, cid)] == [
            "cycle.close",
            "publication.release",
            "publication.withdraw",
        ]


ACTION_POSTS = [
    ("/dashboard/cycles/{cid}/extend", {"deadline": "2027-05-31", "reason": "r"}),
    ("/dashboard/cycles/{cid}/excuse", {"state": "TM", "reason": "r"}),
    ("/dashboard/cycles/{cid}/resend", {"state": "TJ"}),
    ("/dashboard/cycles/{cid}/meeting", {"meeting_name": "MOS5"}),
    ("/dashboard/cycles/{cid}/close", {}),
    ("/dashboard/cycles/{cid}/publish", {"kind": "reports"}),
    ("/dashboard/submissions/{sid}/accept", {"reason": "r"}),
    ("/dashboard/submissions/{sid}/return", {"text_1": "r"}),
]


def test_readers_csrf_and_strangers_are_refused(
    app: Any, service: Settings, smtp: SmtpServer, signed_in: Any
) -> None:
    cid = cycle_of(service)
    sid = submit(service, "UZ")
    reader = signed_in(app, "reader")
    page = reader.get(f"/dashboard/cycles/{cid}").text
    assert "Your role lets you view this cycle" in page
    assert "/extend?" not in page and "/return?" not in page and "/publish?" not in page
    seen = len(smtp.received)
    officer = signed_in(app, "officer")
    stranger = TestClient(app)
    for path, data in ACTION_POSTS:
        url = path.format(cid=cid, sid=sid)
        for confirm in ("", "yes"):
            answer = reader.post_form(url, {**data, "confirm": confirm})
            assert answer.status_code == 403, url
            assert "Not allowed for your role" in answer.text
        no_token = officer.post(url, data={**data, "confirm": "yes"}, follow_redirects=False)
        assert no_token.status_code == 403 and "The form has expired" in no_token.text, url
        unsigned = stranger.post(url, data={**data, "confirm": "yes"}, follow_redirects=False)
        assert unsigned.status_code == 303
        assert unsigned.headers["location"].startswith("/dashboard/login")
    assert len(smtp.received) == seen
    with session_scope(service) as session:
        assert logged_actions(session, cid) == []
    assert officer.get("/dashboard/cycles/999999").status_code == 404
    assert officer.post_form("/dashboard/submissions/999999/accept", {}).status_code == 404


def test_a_forged_notice_cookie_is_ignored(app: Any, service: Settings, signed_in: Any) -> None:
    officer = signed_in(app, "officer")
    cid = cycle_of(service)
    officer.cookies.set("mou_notice", "eyJraW5kIjoicmVmdXNlZCJ9.0000", path="/dashboard")
    assert 'id="notice"' not in officer.get(f"/dashboard/cycles/{cid}").text


def test_the_ministry_page_shows_its_own_deadline_and_when_it_has_passed(
    app: Any, service: Settings
) -> None:
    cid = cycle_of(service)
    with session_scope(service) as session:
        cycle = session.get(m.ReportingCycle, cid)
        kz = next(r for r in cycle.requests if r.state.code == "KZ")
        kz.deadline = dt.date(2027, 5, 31)
    client = TestClient(app)
    kz_link = portal_link(service, cid, "KZ", deadline=dt.date(2027, 5, 31))
    page = client.get("/r/" + kz_link.split("/r/", 1)[1] + "?lang=en").text
    assert "31 May 2027" in page and "extended; originally 31 March 2027" in page
    assert "The deadline has passed" not in page

    with session_scope(service) as session:
        session.get(m.ReportingCycle, cid).deadline = dt.date(2026, 11, 1)
    af_link = portal_link(service, cid, "AF", deadline=dt.date(2026, 11, 1))
    page = client.get("/r/" + af_link.split("/r/", 1)[1] + "?lang=ru").text
    assert "Срок представления истек 1 ноября 2026" in page


def test_review_comments_from_the_form() -> None:
    form = {
        "field_1": "national_total",
        "text_1": "  wrong\n total ",
        "field_2": "",
        "text_2": "NB: sign it.",
        "field_3": "national_total",
        "text_3": "",
    }
    # A general comment may start with a word and a colon: the form says it is general.
    assert review_comments(form) == [("national_total", "wrong\n total"), (None, "NB: sign it.")]
