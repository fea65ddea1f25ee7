"""The portal in a real browser: headless Debian chromium (driven by Playwright) against the
real app served by uvicorn on a port the OS chooses. A ministry opens its request's link,
uploads a filled return and sees it accepted, uploads a broken one and sees each error with
its cell, switches the page to Russian; the secretariat signs in and sees the cycle.

Chromium missing: skip on a laptop, fail when ``MOU_REQUIRE_BROWSER=1`` (CI). Set
``MOU_SCREENSHOT_DIR=docs`` to write docs/portal-upload.png and docs/portal-dashboard.png.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mou.catalogue.bootstrap import prepare_database
from mou.cycle.links import portal_link
from mou.portal.server import PortalServer, serve_portal_in_thread
from mou.service.protocol import open_and_dispatch
from mou.settings import Settings
from mou.store.database import engine_for
from tests.accounts import PASSWORD, make_user
from tests.test_protocol import filled_return

pytestmark = pytest.mark.timeout(300)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OFFICER = "olga.officer"
ADMIN = "amir.admin"
DECISION_MS = 60_000  # ingest runs in a child process with its own limits: allow for a slow CI


def _missing(message: str) -> None:
    if os.environ.get("MOU_REQUIRE_BROWSER", "") not in ("", "0", "false"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Portal:
    settings: Settings
    server: PortalServer
    cycle_id: int

    def link(self, state: str) -> str:
        path = portal_link(self.settings, self.cycle_id, state).split("/r/", 1)[1]
        return f"{self.server.url}/r/{path}"


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    root = tmp_path_factory.mktemp("portal-browser")
    settings = Settings(var_dir=root / "var", portal_port=0)
    prepare_database(settings)
    make_user(settings, "officer", OFFICER)
    make_user(settings, "admin", ADMIN)
    cycle_id = open_and_dispatch(
        settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31), states=["KZ", "UZ"]
    ).cycle_id
    # Ingest here, whatever Prefect profile the machine has (the trigger path has its own test).
    server = serve_portal_in_thread(settings, ingest="thread")
    try:
        yield Portal(settings, server, cycle_id)
    finally:
        server()
        server.server.config.app.state.portal.inline.close()
        engine_for.cache_clear()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1180, "height": 900}, locale="en-GB")
    page = context.new_page()
    problems: list[str] = []
    # The refused sign-in and the reader's refused page, on purpose.
    expected = ("the server responded with a status of 401", "status of 403")
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not any(e in msg.text for e in expected)
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()
    # No blocked stylesheet (CSP), no missing asset, no script error on any page visited.
    assert problems == []


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("MOU_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_ministry_uploads_sees_outcome_and_errors_and_reads_it_in_russian(
    portal: Portal, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    good = tmp_path / "Kazakhstan report.xlsx"
    good.write_bytes(filled_return(portal.settings, portal.cycle_id, "KZ", "en"))
    broken = tmp_path / "Kazakhstan report corrected.xlsx"
    broken.write_bytes(
        filled_return(
            portal.settings,
            portal.cycle_id,
            "KZ",
            "en",
            national_total="many",
            reporting_institution=None,
        )
    )

    # The link from the request email opens in the state's language (Russian for Kazakhstan);
    # the officer reads it in English.
    page.goto(portal.link("KZ"))
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator("h1")).to_contain_text("Казахстан")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("National report of Kazakhstan")
    expect(page.locator(".facts")).to_contain_text("31 March 2027")

    # The template can be downloaded again.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the template (.xlsx)").click()
    assert download.value.suggested_filename == "bukhara-deer-2025-2026-KZ-en.xlsx"

    # 1. A filled return is accepted.
    page.get_by_label("Completed workbook", exact=True).set_input_files(good)
    page.get_by_role("button", name="Send the report").click()
    outcome = page.locator(".outcome h1")
    expect(outcome).to_have_text("Your report was accepted", timeout=DECISION_MS)
    expect(page.locator(".outcome")).to_contain_text("version 1")
    expect(page.locator("table.data").last).to_contain_text("Kazakhstan report.xlsx")
    screenshot(page, "portal-upload.png")

    # 2. A broken one is refused, each error with its sheet and cell.
    page.get_by_role("link", name="Send a new version").click()
    page.get_by_label("Completed workbook", exact=True).set_input_files(broken)
    page.get_by_role("button", name="Send the report").click()
    expect(outcome).to_have_text("Your report could not be accepted", timeout=DECISION_MS)
    errors = page.locator(".issues-errors table tbody tr")
    expect(errors).to_have_count(2)
    expect(errors.filter(has_text="B23")).to_contain_text("3. Population status")
    expect(errors.filter(has_text="B23")).to_contain_text("many")
    expect(errors.filter(has_text="B4")).to_contain_text("1. General information")
    # Both versions are listed; the accepted one still counts.
    versions = page.locator("#versions-heading + .table-scroll tbody tr")
    expect(versions).to_have_count(2)
    expect(versions.filter(has_text="Kazakhstan report.xlsx")).to_contain_text("Accepted")

    # 3. The same page in Russian.
    page.get_by_role("link", name="Русский").click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(outcome).to_have_text("Ваш отчет не может быть принят")
    expect(page.locator(".issues-errors h2")).to_have_text("Требуется исправить (2)")
    expect(page.locator(".issues-errors thead")).to_contain_text("Ячейка")
    expect(page.get_by_role("link", name="Отправить исправленный файл")).to_be_visible()


def test_secretariat_signs_in_and_sees_the_cycle(portal: Portal, page: Any) -> None:
    from playwright.sync_api import expect

    # The Uzbek ministry's return, so that both states show something.
    uz = filled_return(portal.settings, portal.cycle_id, "UZ", "ru")
    page.goto(portal.link("UZ"))
    page.get_by_label("Заполненная рабочая книга", exact=True).set_input_files(
        {"name": "Узбекистан отчет.xlsx", "mimeType": "application/octet-stream", "buffer": uz}
    )
    page.get_by_role("button", name="Отправить отчет").click()
    expect(page.locator(".outcome h1")).to_have_text("Ваш отчет принят", timeout=DECISION_MS)

    page.goto(f"{portal.server.url}/dashboard")
    expect(page.locator("h1")).to_have_text("Secretariat sign-in")
    page.get_by_label("Account name").fill(OFFICER)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The account name or password is not correct.")
    expect(page.get_by_label("Account name")).to_have_value(OFFICER)  # kept, not the password
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Reporting cycles")
    expect(page.locator(".signed-in-as")).to_have_text(f"{OFFICER} · Officer")
    expect(page.get_by_role("link", name="Accounts")).to_have_count(0)  # admins only
    page.get_by_role("link", name="Bukhara Deer MoU").click()
    expect(page.locator("h1")).to_contain_text("2025-2026")
    states = page.locator("#states-heading + .table-scroll tbody tr")
    expect(states.filter(has_text="Uzbekistan")).to_contain_text("Accepted")
    expect(page.locator("#state-UZ")).to_contain_text("Узбекистан отчет.xlsx")
    with page.expect_download() as download:
        page.locator("#state-UZ").get_by_role("link", name="Узбекистан отчет.xlsx").click()
    assert download.value.suggested_filename == "Узбекистан отчет.xlsx"
    # The validation issues of a refused return, with their cells (a <details>: no script).
    page.locator("#state-KZ summary").first.click()
    expect(page.locator("#state-KZ .issue-list").first).to_contain_text("B23")
    expect(page.locator("#state-UZ")).to_contain_text(f"{portal.server.url}/r/1.UZ.")
    screenshot(page, "portal-dashboard.png")
    expect(page.locator("#audit")).to_contain_text("No action has been recorded yet.")
    cookie = next(c for c in page.context.cookies() if c["name"] == "mou_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("h1")).to_have_text("Secretariat sign-in")
    # Signed out for good: the old cookie, put back, opens nothing.
    page.context.add_cookies([cookie])
    page.goto(f"{portal.server.url}/dashboard")
    expect(page.locator("h1")).to_have_text("Secretariat sign-in")


def test_an_admin_adds_a_reader_who_can_look_but_not_act(
    portal: Portal, browser: Any, page: Any
) -> None:
    from playwright.sync_api import expect

    for lang in ("en", "ru", "fr"):  # the sign-in page in each language
        page.goto(f"{portal.server.url}/dashboard/login?lang={lang}")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        screenshot(page, f"portal-sign-in-{lang}.png")
    page.goto(f"{portal.server.url}/dashboard/login?lang=ru")
    page.get_by_label("Имя учетной записи").fill(ADMIN)
    page.get_by_label("Пароль").fill(PASSWORD)
    page.get_by_role("button", name="Войти").click()
    expect(page.locator("h1")).to_have_text("Отчетные циклы")
    page.get_by_role("link", name="Учетные записи").click()
    expect(page.locator("h1")).to_have_text("Учетные записи")
    add = page.locator("#add-heading + form")
    add.get_by_label("Имя учетной записи").fill("rita.reader")
    add.get_by_label("Полное имя (необязательно)").fill("Рита Читаева")
    add.get_by_label("Роль", exact=True).select_option("reader")
    add.get_by_label("Пароль", exact=True).fill("a-password-for-rita")
    add.get_by_label("Повторите пароль").fill("a-password-for-rita")
    add.get_by_role("button", name="Добавить учетную запись").click()
    expect(page.get_by_role("status")).to_have_text("Учетная запись rita.reader создана.")
    expect(page.locator("#user-rita\\.reader")).to_contain_text("Наблюдатель")
    expect(page.locator("#history-heading + .table-scroll")).to_contain_text(
        "Создана учетная запись"
    )
    for lang in ("en", "ru", "fr"):
        page.goto(f"{portal.server.url}/dashboard/users?lang={lang}")
        screenshot(page, f"portal-users-{lang}.png")

    # The reader, in a browser of their own, sees the cycles but may not manage accounts.
    context = browser.new_context(viewport={"width": 1180, "height": 900}, locale="fr-FR")
    reader = context.new_page()
    try:
        reader.goto(f"{portal.server.url}/dashboard/login?lang=fr")
        reader.get_by_label("Nom du compte").fill("rita.reader")
        reader.get_by_label("Mot de passe").fill("a-password-for-rita")
        reader.get_by_role("button", name="Se connecter").click()
        expect(reader.locator("h1")).to_have_text("Cycles de rapport")
        expect(reader.locator(".signed-in-as")).to_have_text("rita.reader · Lecteur")
        response = reader.goto(f"{portal.server.url}/dashboard/users?lang=fr")
        assert response is not None and response.status == 403
        expect(reader.locator("h1")).to_have_text("Non autorisé pour votre rôle")
        screenshot(reader, "portal-not-allowed-fr.png")
    finally:
        context.close()
