"""The Secretariat runs a late cycle in a real browser (headless Debian chromium, Playwright)
against the portal served by uvicorn with an SMTP relay (aiosmtpd), both on free ports.

An officer signs in, extends one state's deadline, excuses another, resends a request after
an address was corrected, sends a return back for correction with two comments, sees the
corrected return (sent through the ministry's link page) answer them, accepts one despite a
warning, closes the cycle and publishes its summaries; the public page then lists the PDFs.
A reader sees no button and is refused (403) when posting anyway; every step is in the audit
log; every email reached the relay exactly once.

Chromium missing: skip, or fail with ``MOU_REQUIRE_BROWSER=1``. ``MOU_SCREENSHOT_DIR=DIR``
writes a screenshot of each page in en, ru and fr.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mou.catalogue.bootstrap import prepare_database
from mou.clock import utcnow
from mou.portal.server import PortalServer, create_app, serve_portal_in_thread
from mou.service.protocol import open_and_dispatch
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import engine_for, session_scope
from tests import accounts
from tests.conftest import relay
from tests.e2e.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, DECISION_MS, _missing
from tests.smtp_server import SmtpServer
from tests.test_protocol import filled_return

pytestmark = pytest.mark.timeout(600)
ACTION_MS = 30_000  # an action commits and sends its emails before the page comes back
RENDER_SECONDS = 300  # the summaries are rendered in the background after close and publish


@dataclass
class Service:
    settings: Settings
    server: PortalServer
    app: Any
    smtp: SmtpServer
    cycle_id: int
    officer: accounts.TestUser
    reader: accounts.TestUser

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")  # one Playwright at a time: the other browser test has its own
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("secretariat-browser")
    smtp = SmtpServer()
    smtp.start()
    settings = relay(Settings(var_dir=root / "var", portal_port=0), smtp)
    prepare_database(settings)
    cycle_id = open_and_dispatch(
        settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31)
    ).cycle_id
    # A late cycle: its deadline passed a fortnight ago.
    with session_scope(settings) as session:
        session.get(m.ReportingCycle, cycle_id).deadline = utcnow().date() - dt.timedelta(days=14)
    officer = accounts.make_user(settings, "officer", "olga.officer")
    reader = accounts.make_user(settings, "reader", "rita.reader")
    app = create_app(settings, ingest="thread")
    server = serve_portal_in_thread(settings, app=app)
    try:
        yield Service(settings, server, app, smtp, cycle_id, officer, reader)
    finally:
        server()
        app.state.portal.inline.close()
        app.state.renders.close()
        smtp.stop()
        engine_for.cache_clear()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    problems: list[str] = []
    context.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and "status of 403" not in msg.text
            else None
        ),
    )
    yield context
    context.close()
    assert problems == []  # no blocked stylesheet, no missing asset, no script error


def shoot(page: Any, name: str) -> None:
    """A full-page screenshot of ``page`` in en, ru and fr (with MOU_SCREENSHOT_DIR)."""
    folder = os.environ.get("MOU_SCREENSHOT_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    url = page.url
    base = url.split("#", 1)[0]
    for lang in ("en", "ru", "fr"):
        if "lang=" in base:
            target = base.replace("lang=en", f"lang={lang}").replace("lang=ru", f"lang={lang}")
        else:
            target = base + ("&" if "?" in base else "?") + f"lang={lang}"
        page.goto(target)
        page.screenshot(path=str(Path(folder) / f"{name}-{lang}.png"), full_page=True)
    page.goto(url)


def shoot_contacts(page: Any) -> None:
    """The contacts page in en, ru and fr, Tajikistan's form and history open."""
    folder = Path(os.environ["MOU_SCREENSHOT_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    url = page.url
    for lang in ("en", "ru", "fr"):
        page.goto(url.split("?", 1)[0] + f"?lang={lang}")
        page.locator("#contact-tj-mfa details.contact-edit > summary").click()
        page.locator("#history-tj-mfa details.contact-history > summary").click()
        page.screenshot(path=str(folder / f"contacts-{lang}.png"), full_page=True)
    page.goto(url)


def shoot_confirmation(page: Any, cycle_url: str, deadline: dt.date) -> None:
    """The confirmation page of an extension in each language, cancelled."""
    folder = Path(os.environ["MOU_SCREENSHOT_DIR"])
    for lang in ("en", "ru", "fr"):
        page.goto(cycle_url.replace("lang=en", f"lang={lang}"))
        kz = page.locator("#state-KZ")
        kz.locator("details.state-actions > summary").click()
        kz.locator("#deadline-KZ").fill(deadline.isoformat())
        kz.locator("#extend-reason-KZ").fill("Asked by note verbale of 20 November")
        kz.locator("form[action*=extend] button").click()
        page.screenshot(path=str(folder / f"confirm-{lang}.png"), full_page=True)
        page.locator(".confirm-form a").click()
    page.goto(cycle_url)
    page.locator("#state-KZ details.state-actions > summary").click()
    page.locator("#deadline-KZ").fill(deadline.isoformat())
    page.locator("#extend-reason-KZ").fill("Asked by note verbale of 20 November")


def sign_in(page: Any, service: Service, user: accounts.TestUser) -> None:
    from playwright.sync_api import expect

    page.goto(f"{service.url}/dashboard/login?lang=en")
    page.get_by_label("Account name").fill(user.name)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Reporting cycles")


def confirm(page: Any, heading: str, notice: str) -> None:
    """The confirmation page repeats the action; confirming it shows the notice."""
    from playwright.sync_api import expect

    expect(page.locator("h1")).to_have_text(heading)
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#notice")).to_contain_text(notice, timeout=ACTION_MS)


def upload(page: Any, link: str, workbook: bytes, filename: str, outcome: str) -> None:
    from playwright.sync_api import expect

    page.goto(link + "?lang=en")
    page.get_by_label("Completed workbook", exact=True).set_input_files(
        {"name": filename, "mimeType": "application/octet-stream", "buffer": workbook}
    )
    page.get_by_role("button", name="Send the report").click()
    expect(page.locator(".outcome h1")).to_have_text(outcome, timeout=DECISION_MS)


def link_of(page: Any, service: Service, state: str) -> str:
    """The state's personal link as the cycle page shows it (here at the test server's port:
    the settings say port 0, the port the OS chose is the server's)."""
    shown = page.locator(f"#state-{state} code.link-text").inner_text()
    return service.url + "/r/" + shown.split("/r/", 1)[1]


def mail_keys(service: Service) -> Counter[str]:
    """The outbox key of every message the relay received, counted."""
    with session_scope(service.settings) as session:
        rows = session.execute(select(m.OutboxMessage.message_id, m.OutboxMessage.key)).all()
    keys = {message_id: key for message_id, key in rows}
    return Counter(keys.get(str(r.message["Message-ID"]), "?") for r in service.smtp.received)


def test_an_officer_runs_a_late_cycle_to_publication(
    service: Service, context: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    cid = service.cycle_id
    cycle_url = f"{service.url}/dashboard/cycles/{cid}?lang=en"
    page = context.new_page()
    sign_in(page, service, service.officer)
    shoot(page, "cycles")
    page.get_by_role("link", name="Bukhara Deer MoU").click()
    expect(page.locator("h1")).to_contain_text("2025-2026")
    kz = page.locator("#state-KZ")
    expect(kz).to_contain_text("14 days overdue")
    expect(kz).to_contain_text("Reminder 30 days after the deadline")
    expect(kz).to_contain_text("mfa.kz@example.org")
    expect(kz.locator("table.emails")).to_contain_text("Request")

    # 1. Extend Kazakhstan's deadline.
    new_deadline = utcnow().date() + dt.timedelta(days=60)
    kz.locator("details.state-actions > summary").click()
    kz.locator("#deadline-KZ").fill(new_deadline.isoformat())
    kz.locator("#extend-reason-KZ").fill("Asked by note verbale of 20 November")
    if os.environ.get("MOU_SCREENSHOT_DIR"):
        shoot_confirmation(page, cycle_url, new_deadline)
    kz.get_by_role("button", name="Extend…").click()
    expect(page.locator(".confirm-facts")).to_contain_text("Kazakhstan (KZ)")
    confirm(page, "Extend the deadline", "KZ: the deadline is now")
    expect(page.locator("#row-KZ")).to_contain_text("extended; originally")
    expect(page.locator("#state-KZ")).not_to_contain_text("overdue")

    # 2. Excuse Turkmenistan.
    tm = page.locator("#state-TM")
    tm.locator("details.state-actions > summary").click()
    tm.locator("#excuse-reason-TM").fill("No Bukhara deer range left in Turkmenistan")
    tm.get_by_role("button", name="Excuse…").click()
    confirm(page, "Excuse the state from reporting", "TM is excused")
    expect(page.locator("#state-TM .excused")).to_have_text(
        "No Bukhara deer range left in Turkmenistan"
    )
    expect(page.locator(".tally")).to_contain_text("Excused: 1")

    # 3. Correct Tajikistan's address on the contacts page (from the toolbar) and send the
    # request again.
    page.get_by_role("link", name="Contacts", exact=True).click()
    contact = page.locator("#contact-tj-mfa")
    contact.locator("details.contact-edit > summary").click()
    contact.locator("#email-tj-mfa").fill("protocol.tj@example.org")
    contact.locator("#reason-tj-mfa").fill("Address corrected by the ministry")
    contact.get_by_role("button", name="Save the contact").click()
    expect(page.locator(".notice-ok")).to_contain_text("tj-mfa: the contact was changed.")
    changes = page.locator("#history-tj-mfa")
    changes.locator("details.contact-history > summary").click()
    expect(changes.locator("table.history")).to_contain_text(
        "mfa.tj@example.org → protocol.tj@example.org"
    )
    expect(changes.locator("table.history")).to_contain_text("Address corrected by the ministry")
    if os.environ.get("MOU_SCREENSHOT_DIR"):
        shoot_contacts(page)
    page.goto(cycle_url)
    tj = page.locator("#state-TJ")
    expect(tj.locator(".addressees")).to_contain_text("protocol.tj@example.org")
    tj.locator("details.state-actions > summary").click()
    tj.locator("#resend-reason-TJ").fill("Address corrected by the ministry")
    tj.get_by_role("button", name="Send again…").click()
    confirm(page, "Send the request again", "TJ: the request was sent again")
    expect(page.locator("#state-TJ table.emails")).to_contain_text("Request sent again")

    # 4. Uzbekistan's return comes through its link; the officer sends it back with two
    # comments, one on a field, one general.
    uz_link = link_of(page, service, "UZ")
    ministry = context.new_page()
    upload(
        ministry,
        uz_link,
        filled_return(service.settings, cid, "UZ", "ru"),
        "uz.xlsx",
        "Your report was accepted",
    )
    page.goto(cycle_url)
    uz = page.locator("#state-UZ")
    uz.locator("details.return-form > summary").click()
    uz.locator("select[name=field_1]").select_option("national_total")
    uz.locator("textarea[name=text_1]").fill("The total is not the sum of the sites.")
    uz.locator("textarea[name=text_2]").fill("Please have the return signed by the focal point.")
    if os.environ.get("MOU_SCREENSHOT_DIR"):  # the review form, filled (English only)
        uz.screenshot(path=str(Path(os.environ["MOU_SCREENSHOT_DIR"]) / "review-form-en.png"))
    uz.get_by_role("button", name="Send back…").click()
    expect(page.locator(".confirm-facts")).to_contain_text("The total is not the sum")
    confirm(page, "Send the return back for correction", "Comments: 2.")
    expect(page.locator("#state-UZ")).to_contain_text("a corrected return is awaited")
    expect(page.locator("#row-UZ")).to_contain_text("Correction requested")
    shoot(page, "cycle")

    # 5. The ministry sees the comments, with sheet and cell, and sends a corrected file.
    ministry.goto(uz_link + "?lang=en")
    comments = ministry.locator("#correction table tbody tr")
    expect(comments).to_have_count(2)
    expect(comments.first).to_contain_text("The total is not the sum of the sites.")
    expect(comments.nth(1)).to_contain_text("General")
    shoot(ministry, "ministry-correction")
    upload(
        ministry,
        uz_link,
        filled_return(service.settings, cid, "UZ", "ru", national_total=1777),
        "uz corrected.xlsx",
        "Your report was accepted",
    )
    ministry.goto(uz_link + "?lang=en")
    expect(ministry.locator("#correction")).to_have_count(0)
    page.goto(cycle_url)
    uz = page.locator("#state-UZ")
    expect(uz).to_contain_text("was answered by return")
    expect(uz.locator("table.comments").first).to_contain_text("Changed")

    # 6. Afghanistan's return has a warning (a date in the future); the officer accepts it.
    af_link = link_of(page, service, "AF")
    ministry.goto(af_link + "?lang=en")
    expect(ministry.locator("#deadline-passed")).to_contain_text("The deadline has passed")
    shoot(ministry, "ministry-passed")
    ministry.goto(link_of(page, service, "KZ") + "?lang=en")
    expect(ministry.locator(".facts")).to_contain_text("extended; originally")
    expect(ministry.locator("#deadline-passed")).to_have_count(0)
    shoot(ministry, "ministry-extended")
    upload(
        ministry,
        af_link,
        filled_return(service.settings, cid, "AF", "en", submission_date=dt.datetime(2099, 1, 1)),
        "af.xlsx",
        "Your report was accepted, with points to check",
    )
    page.goto(cycle_url)
    af = page.locator("#state-AF")
    af.locator(".review details > summary").first.click()
    af.locator("textarea[name=reason]").first.fill(
        "Date typed in error; confirmed by the focal point"
    )
    af.get_by_role("button", name="Accept…").click()
    confirm(page, "Accept the return", "is accepted by the Secretariat")

    # 7. A reader sees the cycle but no button, and a post is refused.
    reading = context.browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        reader = reading.new_page()
        sign_in(reader, service, service.reader)
        reader.goto(cycle_url)
        expect(reader.locator("main")).to_contain_text("Your role lets you view this cycle")
        expect(reader.locator("main form")).to_have_count(0)
        token = reader.locator("input[name=csrf_token]").first.get_attribute("value")
        for action in ("extend", "excuse", "resend", "close", "publish"):
            answer = reader.request.post(
                f"{service.url}/dashboard/cycles/{cid}/{action}",
                form={
                    "csrf_token": token,
                    "state": "AF",
                    "deadline": new_deadline.isoformat(),
                    "kind": "reports",
                    "reason": "a reader tries",
                    "confirm": "yes",
                },
                max_redirects=0,
            )
            assert answer.status == 403, action
        shoot(reader, "cycle-reader")
    finally:
        reading.close()

    # 8. Close the cycle, then publish the summaries.
    page.goto(cycle_url)
    page.locator("#actions details > summary", has_text="Close the cycle").click()
    page.locator("#close-reason").fill("Meeting of signatories held")
    page.get_by_role("button", name="Close…").click()
    confirm(page, "Close the cycle", "The cycle is closed.")
    page.locator("[data-action=publish-reports]").click()
    confirm(page, "Publish on the public page", "Published on the public page")
    service.app.state.renders.drain(RENDER_SECONDS)
    page.goto(cycle_url)
    expect(page.locator("#publication .file-list").first).to_contain_text("progress-summary-ru.pdf")
    shoot(page, "cycle-closed")

    # 9. The public page lists the summaries; each one downloads.
    public = context.new_page()
    public.goto(f"{service.url}/?lang=en")
    shoot(public, "home")
    public.get_by_role("link", name="Reports published by the Secretariat").click()
    expect(public.locator("h1")).to_have_text("Published reports")
    links = public.locator(f"#cycle-{cid} .release-reports a")
    expect(links).to_have_count(2)
    expect(links.first).to_contain_text("Progress summary, English")
    answer = public.request.get(service.url + str(links.first.get_attribute("href")))
    assert answer.status == 200 and answer.body().startswith(b"%PDF")
    assert (
        public.request.get(f"{service.url}/releases/{cid}/national-reports/UZ-en.pdf").status == 404
    )
    shoot(public, "releases")

    # 10. Every step is in the audit log, under the officer's name.
    page.goto(cycle_url)
    audit = page.locator("#audit table tbody")
    for label in (
        "Deadline extended",
        "State excused",
        "Request sent again",
        "Return sent back for correction",
        "Return accepted by the Secretariat",
        "Cycle closed",
        "Published",
    ):
        expect(audit).to_contain_text(label)
    expect(audit.locator("tr", has_text=service.officer.name)).to_have_count(7)

    # 11. Every email reached the relay once: the five requests, the extension notice, the
    # request sent again, the correction request and the three receipts.
    service.app.state.portal.inline.close()  # the receipts' thread has finished
    received = mail_keys(service)
    assert set(received.values()) == {1}, received
    kinds = Counter(key.split(":", 1)[0] for key in received)
    assert kinds == {"request": 6, "extension": 1, "correction": 1, "receipt": 3}, received
    assert any(key.startswith(f"request:{cid}:TJ:resend:") for key in received)
