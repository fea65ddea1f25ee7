"""The submission portal and the secretariat dashboard over HTTP (FastAPI TestClient) on real
databases (SQLite and PostgreSQL): personal links, the upload through the common intake and
its outcome, the refusals (403/404/413/415, CSRF), headers, the dashboard login, OpenAPI."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mou.catalogue.bootstrap import prepare_database
from mou.cycle.links import (
    ExpiredLink,
    InvalidLink,
    link_expiry,
    portal_link,
    portal_token,
    request_email_paragraph,
    verify_portal_token,
)
from mou.i18n.formatting import Formatter
from mou.keyring import DEVELOPMENT_SECRET
from mou.portal.server import create_app, serve_portal_in_thread
from mou.service.protocol import open_and_dispatch, reports_folder
from mou.settings import Settings
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import engine_for, session_scope
from tests.accounts import PASSWORD, make_user, sign_in
from tests.conftest import ENGINES, engine_database
from tests.test_protocol import filled_return

with warnings.catch_warnings():  # Starlette 1.x nudges towards httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

DEADLINE = dt.date(2027, 3, 31)
HEADERS = {
    "content-security-policy": "default-src 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
PORTAL_FIELDS: dict[str, Any] = {}


@dataclass
class Env:
    settings: Settings
    cycle_id: int
    closed_cycle_id: int
    client: TestClient

    apps: list[Any]

    def path(self, state: str, cycle_id: int | None = None) -> str:
        """The path of a state's personal link (the portal's host does not matter here)."""
        url = portal_link(self.settings, cycle_id or self.cycle_id, state)
        return "/" + url.split("://", 1)[1].split("/", 1)[1]

    def client_for(self, settings: Settings | None = None, **options: Any) -> TestClient:
        """A client of a new app; its ingest pool is drained when the module ends."""
        app = create_app(settings or self.settings, **options)
        self.apps.append(app)
        return TestClient(app)

    def count(self, model: type, **where: Any) -> int:
        with session_scope(self.settings) as session:
            query = select(func.count()).select_from(model).filter_by(**where)
            return session.scalar(query) or 0


@pytest.fixture(scope="module", params=ENGINES)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One database per engine for the module: a Bukhara deer cycle for KZ and UZ (open), and
    an earlier cycle for KZ that is closed."""
    root = tmp_path_factory.mktemp(f"portal-{request.param}")
    with engine_database(request, root) as url:
        yield from _env(root, url)


def _env(root: Path, url: str) -> Iterator[Env]:
    settings = Settings(var_dir=root / "var", database_url=url).model_copy(update=PORTAL_FIELDS)
    apps: list[Any] = []
    try:
        prepare_database(settings)
        cycle_id = open_and_dispatch(
            settings, "bukhara-deer", "2025-2026", DEADLINE, states=["KZ", "UZ"]
        ).cycle_id
        closed = open_and_dispatch(
            settings,
            "bukhara-deer",
            "2023-2024",
            dt.date(2025, 3, 31),
            states=["KZ"],
            today=dt.date(2025, 1, 15),
        ).cycle_id
        with session_scope(settings) as session:
            cycle = session.get(m.ReportingCycle, closed)
            cycle.status, cycle.closed_at = "closed", m.utcnow()
        app = create_app(settings, ingest="thread")
        apps.append(app)
        yield Env(settings, cycle_id, closed, TestClient(app), apps)
    finally:
        for app in apps:  # background receipts finish before the database goes
            app.state.portal.inline.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def upload(
    env: Env,
    path: str,
    data: bytes,
    filename: str = "report.xlsx",
    client: TestClient | None = None,
    csrf: str | None = None,
) -> Any:
    client = client or env.client
    if csrf is None:
        csrf = csrf_of(client.get(path).text)
    return client.post(
        f"{path}/upload",
        data={"csrf_token": csrf},
        files={"workbook": (filename, data, "application/octet-stream")},
        follow_redirects=False,
    )


def decided(env: Env, path: str, submission_id: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = env.client.get(f"/api{path}/submissions/{submission_id}").json()
        return body if body["decided"] else None

    return wait_for(f"submission {submission_id} to be decided", check)


def submit(env: Env, state: str, data: bytes, filename: str = "report.xlsx") -> tuple[int, str]:
    """Upload through the state's link; (submission id, the outcome page's HTML)."""
    path = env.path(state)
    response = upload(env, path, data, filename)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    submission_id = int(re.search(r"/submissions/(\d+)", location).group(1))
    decided(env, path, submission_id)
    page = env.client.get(location)
    assert page.status_code == 200
    return submission_id, page.text


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


# --- links ----------------------------------------------------------------------------------


def test_token_is_signed_for_one_state_and_cycle_and_expires() -> None:
    secret = "a-secret-of-sufficient-length"
    expires = dt.date(2027, 6, 29)
    token = portal_token(secret, 7, "kz", expires)
    link = verify_portal_token(secret, token, today=dt.date(2027, 6, 29))
    assert (link.cycle_id, link.state, link.expires) == (7, "KZ", expires)

    cycle, state, date, kid, signature = token.split(".")
    forged = [
        f"{cycle}.UZ.{date}.{kid}.{signature}",  # another state, same signature
        f"8.{state}.{date}.{kid}.{signature}",  # another cycle
        f"{cycle}.{state}.20991231.{kid}.{signature}",  # a later date
        f"{cycle}.{state}.{date}.{kid}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{cycle}.{state}.{date}.{signature}",  # the key id left out: not a link of old
        f"{cycle}.{state}.{date}.00000000.{signature}",  # a key id of no known secret
        token + "x",
        "",
        "../../etc/passwd",
    ]
    for candidate in forged:
        with pytest.raises(InvalidLink):
            verify_portal_token(secret, candidate, today=dt.date(2027, 1, 1))
    with pytest.raises(InvalidLink):
        verify_portal_token("another-secret-of-enough-length", token, today=dt.date(2027, 1, 1))
    with pytest.raises(ExpiredLink):
        verify_portal_token(secret, token, today=dt.date(2027, 6, 30))


def test_portal_link_defaults_to_host_and_port_and_expires_after_grace(env: Env) -> None:
    link = portal_link(env.settings, env.cycle_id, "KZ")
    assert link.startswith("http://127.0.0.1:8000/r/")
    token = link.rsplit("/", 1)[1]
    verified = verify_portal_token(env.settings.secret, token, today=dt.date(2027, 1, 1))
    assert verified.expires == DEADLINE + dt.timedelta(days=env.settings.portal_link_grace_days)
    assert verified.expires == link_expiry(env.settings, DEADLINE)
    public = env.settings.model_copy(update={"portal_base_url": "https://reports.example.org/"})
    assert portal_link(public, env.cycle_id, "KZ", deadline=DEADLINE).startswith(
        "https://reports.example.org/r/"
    )
    paragraph = request_email_paragraph(
        env.settings, env.cycle_id, "KZ", "ru", deadline=DEADLINE, state_name="Казахстан"
    )
    expiry = Formatter("ru").date(link_expiry(env.settings, DEADLINE))  # 29 июня 2027 г.
    assert link in paragraph and expiry in paragraph and "Казахстан" in paragraph


# --- the upload page ----------------------------------------------------------------------


def test_upload_page_names_instrument_cycle_state_and_deadline_in_the_state_language(
    env: Env,
) -> None:
    path = env.path("KZ")
    russian = env.client.get(path)
    assert russian.status_code == 200
    assert '<html lang="ru">' in russian.text
    text = text_of(russian.text)
    for expected in ("Казахстан", "2025-2026", "31 марта 2027", "CMS/BD-MOU/2025-2026/KZ"):
        assert expected in text
    assert 'type="file"' in russian.text and 'for="workbook"' in russian.text
    english = text_of(env.client.get(f"{path}?lang=en").text)
    assert "Kazakhstan" in english and "31 March 2027" in english
    french = env.client.get(f"{path}?lang=fr")
    assert '<html lang="fr">' in french.text and "31 mars 2027" in text_of(french.text)
    # The language switch is plain links (works without JavaScript).
    for code in ("en", "ru", "fr"):
        assert f'href="{path}?lang={code}"' in russian.text
    assert "<script" not in russian.text


def test_template_download_is_the_states_workbook_as_attachment(env: Env) -> None:
    response = env.client.get(f"{env.path('KZ')}/template")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="bukhara-deer-2025-2026-KZ-ru.xlsx"')
    assert response.content.startswith(b"PK")
    english = env.client.get(f"{env.path('KZ')}/template?lang=en")
    assert "KZ-en.xlsx" in english.headers["content-disposition"]
    # The Bukhara deer MoU works in en/ru: a French page gets the request's language.
    french = env.client.get(f"{env.path('KZ')}/template?lang=fr")
    assert "KZ-ru.xlsx" in french.headers["content-disposition"]


def test_filled_return_is_recorded_by_the_intake_and_accepted(env: Env) -> None:
    data = filled_return(env.settings, env.cycle_id, "KZ")
    submission_id, page = submit(env, "KZ", data, "отчёт Казахстан.xlsx")
    assert "Ваш отчет принят" in page
    assert '<meta http-equiv="refresh"' not in page
    body = env.client.get(f"/api{env.path('KZ')}/submissions/{submission_id}").json()
    assert body["status"] == "accepted" and body["version"] >= 1 and body["errors"] == 0
    assert body["filename"] == "отчёт Казахстан.xlsx"
    with session_scope(env.settings) as session:
        submission = session.get(m.Submission, submission_id)
        assert submission.channel == "portal"
        assert submission.state.code == "KZ" and submission.cycle_id == env.cycle_id
        assert submission.expected_cycle_id == env.cycle_id
        stored = filestore.read_bytes(env.settings.files_dir, submission.file_sha256)
        assert stored == data  # the raw bytes are the system of record
        assert session.scalar(
            select(func.count()).select_from(m.Answer).filter_by(submission_id=submission_id)
        )
    # The upload page now lists it as the current version.
    listing = text_of(env.client.get(env.path("KZ")).text)
    assert "отчёт Казахстан.xlsx" in listing and "Принят" in listing


def test_broken_return_is_refused_with_each_error_and_its_cell(env: Env) -> None:
    data = filled_return(
        env.settings, env.cycle_id, "KZ", "en", national_total=-5, reporting_institution=None
    )
    submission_id, page = submit(env, "KZ", data, "kz-broken.xlsx")
    text = text_of(page)
    assert "could not be accepted" in text or "не может быть принят" in text
    assert "B23" in text and "B4" in text
    assert "3. Population status" in text and "1. General information" in text
    body = env.client.get(f"/api{env.path('KZ')}/submissions/{submission_id}").json()
    assert body["status"] == "rejected"
    cells = {(i["sheet"], i["cell"]) for i in body["issues"] if i["severity"] == "error"}
    assert {("3. Population status", "B23"), ("1. General information", "B4")} <= cells
    assert env.count(m.Answer, submission_id=submission_id) == 0


def test_kazakh_link_cannot_upload_or_see_for_uzbekistan(env: Env) -> None:
    uzbek = filled_return(env.settings, env.cycle_id, "UZ")
    # The Uzbek template through the Kazakh link: recorded, refused as wrong_state.
    wrong_id, page = submit(env, "KZ", uzbek, "uz.xlsx")
    body = env.client.get(f"/api{env.path('KZ')}/submissions/{wrong_id}").json()
    assert body["status"] == "rejected"
    assert [i["code"] for i in body["issues"]] == ["wrong_state"]
    assert "Узбекистан" in page and "Казахстан" in page  # names the template the officer holds
    with session_scope(env.settings) as session:
        wrong = session.get(m.Submission, wrong_id)
        assert wrong.state_id is None and wrong.request_id is None
        assert (
            wrong.expected_state_id
            == session.scalars(select(m.RangeState.id).filter_by(code="KZ")).one()
        )
    # Uzbekistan's own return through its own link is accepted...
    uz_data = filled_return(env.settings, env.cycle_id, "UZ", national_total=1801)
    uz_id, _ = submit(env, "UZ", uz_data, "uz-own.xlsx")
    assert env.client.get(f"/api{env.path('UZ')}/submissions/{uz_id}").json()["status"] == (
        "accepted"
    )
    # ...and invisible through the Kazakh link, exactly like a submission that does not exist.
    kz = env.path("KZ")
    for target in (uz_id, 999_999):
        page = env.client.get(f"{kz}/submissions/{target}")
        assert page.status_code == 404
        assert "Узбекистан" not in page.text and "Uzbekistan" not in page.text
        assert env.client.get(f"/api{kz}/submissions/{target}").status_code == 404
    listed = {s["id"] for s in env.client.get(f"/api{kz}/submissions").json()}
    assert uz_id not in listed and wrong_id in listed
    assert "uz-own.xlsx" not in env.client.get(kz).text


# --- refusals ------------------------------------------------------------------------------


def test_wrong_tampered_and_expired_links_get_403_or_404_and_leak_nothing(env: Env) -> None:
    secret = env.settings.secret
    good = env.path("KZ").rsplit("/", 1)[1]
    cycle, state, date, kid, signature = good.split(".")
    expires = link_expiry(env.settings, DEADLINE)
    cases = {
        "garbage": ("not-a-token", 404),
        "tampered signature": (f"{cycle}.{state}.{date}.{kid}.{signature[::-1]}", 404),
        "state swapped": (f"{cycle}.UZ.{date}.{kid}.{signature}", 404),
        "public development secret": (
            portal_token(DEVELOPMENT_SECRET, env.cycle_id, "KZ", expires),
            404,
        ),
        "unknown cycle": (portal_token(secret, 9999, "KZ", expires), 404),
        "state without a request": (portal_token(secret, env.cycle_id, "TJ", expires), 404),
        "other secret": (portal_token("x" * 32, env.cycle_id, "KZ", expires), 404),
        "expired": (portal_token(secret, env.cycle_id, "KZ", dt.date(2020, 1, 1)), 403),
        "closed cycle": (portal_token(secret, env.closed_cycle_id, "KZ", expires), 403),
    }
    for name, (token, status) in cases.items():
        for suffix in ("", "/template", "/submissions/1"):
            response = env.client.get(f"/r/{token}{suffix}")
            assert response.status_code == status, (name, suffix)
            for leaked in ("Uzbekistan", "Узбекистан", "Kazakhstan", "Казахстан", "2025-2026"):
                assert leaked not in response.text, (name, leaked)
            assert "Traceback" not in response.text
        assert env.client.get(f"/api/r/{token}").status_code == status, name
        posted = env.client.post(f"/r/{token}/upload", files={"workbook": ("a.xlsx", b"PK")})
        assert posted.status_code == status, name
    # The page explains in every language, since it cannot know the reader's.
    page = text_of(env.client.get("/r/not-a-token").text)
    assert "This link is not valid" in page and "Эта ссылка недействительна" in page
    assert "Ce lien n'est pas valide" in page


def test_oversized_uploads_get_413_and_nothing_is_recorded(env: Env) -> None:
    before = env.count(m.Submission)
    small = env.settings.model_copy(update={"max_upload_bytes": 20_000})
    client = env.client_for(small, ingest="thread")
    path = env.path("KZ")
    data = filled_return(env.settings, env.cycle_id, "KZ")  # about 27 KB
    assert len(data) > 20_000
    # 1. The file part alone is over the limit (the whole body is within the form overhead).
    response = upload(env, path, data, client=client)
    assert response.status_code == 413
    assert "too large" in response.text.lower() or "слишком большой" in response.text
    # 2. A declared Content-Length over the limit is refused before the body is read.
    response = client.post(
        f"{path}/upload",
        content=b"x" * 200_000,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 413
    # 3. A streamed body without a length is cut off as soon as it passes the limit.
    status, consumed = stream_upload(client.app, f"{path}/upload")
    assert status == 413
    assert consumed <= 20_000 + 64 * 1024 + 64 * 1024  # one chunk past the limit, not 50 MB
    assert env.count(m.Submission) == before


def stream_upload(
    app: Any, path: str, chunk: int = 64 * 1024, chunks: int = 800
) -> tuple[int, int]:
    """Call the ASGI app with a 50 MB chunked body; (status, bytes the app pulled)."""
    boundary = "portal-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="workbook"; '
        'filename="big.xlsx"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    pulled = 0
    sent = 0
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled, sent
        body = head if sent == 0 else b"PK" + b"\0" * (chunk - 2)
        sent += 1
        pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": sent < chunks}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path.split("?")[0],
        "raw_path": path.split("?")[0].encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(msg for msg in messages if msg["type"] == "http.response.start")
    return start["status"], pulled


def test_only_spreadsheets_are_taken(env: Env) -> None:
    before = env.count(m.Submission)
    path = env.path("KZ")
    refused = [
        ("report.pdf", b"%PDF-1.7\n..."),
        ("report.xlsx", b"%PDF-1.7\n disguised"),  # the name says xlsx, the bytes do not
        ("report.docx", b"PK\x03\x04 a word document"),
        ("report", b"PK\x03\x04 no extension"),
        ("report.csv", b"a,b,c\n1,2,3\n"),
    ]
    for filename, data in refused:
        response = upload(env, path, data, filename)
        assert response.status_code == 415, filename
        text = text_of(response.text)
        assert ".xlsx" in text and "LibreOffice" in text and "Excel" in text
    response = upload(env, path, b"", "empty.xlsx")
    assert response.status_code == 400
    assert env.count(m.Submission) == before
    # Spreadsheets in the wrong format go to the intake, which keeps them and explains.
    legacy = bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 4096
    submission_id, page = submit(env, "KZ", legacy, "../../../tmp/old-report.xls")
    body = env.client.get(f"/api{path}/submissions/{submission_id}").json()
    assert body["filename"] == "old-report.xls"  # a display name, never a path
    assert not Path("/tmp/old-report.xls").exists()
    assert body["status"] == "rejected"
    assert body["issues"][0]["code"] in ("legacy_xls", "encrypted", "corrupt")
    assert ".xlsx" in text_of(page)


def test_forms_without_a_valid_csrf_token_are_refused(env: Env) -> None:
    before = env.count(m.Submission)
    kz, uz = env.path("KZ"), env.path("UZ")
    data = filled_return(env.settings, env.cycle_id, "KZ", national_total=1234)
    kz_csrf = csrf_of(env.client.get(kz).text)
    uz_csrf = csrf_of(env.client.get(uz).text)
    # Missing, forged, or taken from another link's form.
    for token in ("", "forged.token", uz_csrf):
        response = upload(env, kz, data, csrf=token)
        assert response.status_code == 403, token
        assert "form has expired" in response.text or "Срок действия формы" in response.text
    # A genuine form value without the matching cookie (another browser) is refused too.
    stranger = TestClient(env.client.app)
    assert upload(env, kz, data, client=stranger, csrf=kz_csrf).status_code == 403
    assert env.count(m.Submission) == before
    # The sign-in form is protected as well.
    response = env.client.post("/dashboard/login", data={"name": "x", "password": "y" * 12})
    assert response.status_code == 403


def test_security_headers_on_pages_errors_files_and_api(env: Env) -> None:
    kz = env.path("KZ")
    responses = {
        "page": env.client.get(kz),
        "error": env.client.get("/r/nonsense"),
        "missing": env.client.get("/no/such/page"),
        "api": env.client.get(f"/api{kz}"),
        "template": env.client.get(f"{kz}/template"),
        "static": env.client.get("/static/portal.css"),
    }
    for name, response in responses.items():
        for header, value in HEADERS.items():
            assert value in response.headers.get(header, ""), (name, header)
        if name != "static":
            assert response.headers["cache-control"] == "no-store", name
    page = TestClient(env.client.app).get(kz)  # a browser without the cookie yet
    cookie = page.headers["set-cookie"]
    assert "mou_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "uvicorn" not in str(page.headers).lower()


def test_no_stack_trace_reaches_a_user(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from mou.portal import pages

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail: password=hunter2")

    monkeypatch.setattr(pages, "link_submissions", broken)
    response = env.client.get(env.path("KZ"))
    assert response.status_code == 500
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert "Something went wrong" in response.text
    assert response.headers["x-frame-options"] == "DENY"
    api = env.client.get(f"/api{env.path('KZ')}/submissions")
    assert api.status_code == 500 and api.json() == {"detail": "internal error"}


def test_with_a_prefect_api_the_deployment_trigger_ingests(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mou.service import events

    emitted: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(events, "api_configured", lambda: True)
    monkeypatch.setattr(
        events, "emit", lambda event, resource, **kw: emitted.append((event, kw)) or True
    )
    client = env.client_for()  # ingest="auto"
    data = filled_return(env.settings, env.cycle_id, "KZ", national_total=4321)
    response = upload(env, env.path("KZ"), data, client=client)
    assert response.status_code == 303
    submission_id = int(response.headers["location"].split("/submissions/")[1].split("?")[0])
    [(event, labels)] = emitted
    assert event == "mou.submission.received"
    assert labels["state"] == "KZ" and labels["cycle_id"] == env.cycle_id
    assert labels["payload"]["submission_id"] == submission_id
    assert labels["payload"]["channel"] == "portal"
    page = client.get(response.headers["location"])
    assert '<meta http-equiv="refresh" content="2">' in page.text  # until the trigger decides
    with session_scope(env.settings) as session:
        assert session.get(m.Submission, submission_id).status == "received"


# --- the dashboard ----------------------------------------------------------------------------


def test_without_accounts_the_sign_in_page_says_how_to_make_the_first_admin(
    tmp_path: Path,
) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    prepare_database(settings)
    app = create_app(settings, ingest="thread")
    try:
        client = TestClient(app)
        assert client.get("/dashboard", follow_redirects=False).status_code == 303
        page = client.get("/dashboard/login")
        assert page.status_code == 200
        assert "mou user add NAME --role admin" in page.text
        assert client.get("/api/cycles").status_code == 401
        refused = sign_in(client, "admin", PASSWORD)
        assert refused.status_code == 401
        assert "The account name or password is not correct." in refused.text
    finally:
        app.state.portal.inline.close()
        engine_for.cache_clear()


def test_dashboard_requires_login_and_shows_the_cycle(env: Env) -> None:
    # A submission so the cycle has a file to show, and a rendered PDF.
    data = filled_return(env.settings, env.cycle_id, "UZ", national_total=1900)
    submission_id, _ = submit(env, "UZ", data, "uz-dashboard.xlsx")
    broken = filled_return(env.settings, env.cycle_id, "KZ", national_total="много")
    submit(env, "KZ", broken, "kz-broken-dashboard.xlsx")
    with session_scope(env.settings) as session:
        folder = reports_folder(env.settings, session.get(m.ReportingCycle, env.cycle_id))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "progress-summary-en.pdf").write_bytes(b"%PDF-1.7 test")

    client = TestClient(env.client.app)
    cycle_page = f"/dashboard/cycles/{env.cycle_id}"
    for target in ("/dashboard", cycle_page, f"/dashboard/submissions/{submission_id}/file"):
        response = client.get(target, follow_redirects=False)
        assert response.status_code == 303 and "/dashboard/login" in response.headers["location"]
    assert client.get(f"/api/cycles/{env.cycle_id}/status").status_code == 401
    assert client.get("/api/cycles").status_code == 401

    reader = make_user(env.settings, "reader")
    wrong = sign_in(client, reader.name, "not-the-password")
    assert wrong.status_code == 401
    assert "The account name or password is not correct." in wrong.text
    signed_in = sign_in(client, reader.name.upper(), reader.password)  # names ignore case
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"]
    assert "mou_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie

    overview = client.get("/dashboard")
    assert overview.status_code == 200 and "2025-2026" in overview.text
    assert overview.headers["cache-control"] == "no-store"
    page = client.get(cycle_page)
    text = text_of(page.text)
    assert "Kazakhstan" in text and "Uzbekistan" in text and "uz-dashboard.xlsx" in text
    assert "B23" in text  # the validation issues of the refused Kazakh returns
    assert "progress-summary-en.pdf" in text
    assert portal_link(env.settings, env.cycle_id, "UZ") in text

    raw = client.get(f"/dashboard/submissions/{submission_id}/file")
    assert raw.status_code == 200 and raw.content == data
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"].startswith('attachment; filename="uz-dashboard.xlsx"')
    pdf = client.get(f"{cycle_page}/reports/progress-summary-en.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-disposition"].startswith("attachment")
    for name in ("..%2F..%2Fmou.sqlite3", "missing.pdf", "progress-summary-en.PDF"):
        assert client.get(f"{cycle_page}/reports/{name}").status_code == 404

    status = client.get(f"/api/cycles/{env.cycle_id}/status").json()
    by_state = {s["state"]: s for s in status["states"]}
    assert by_state["UZ"]["outcome"] == "accepted" and by_state["KZ"]["submissions"] >= 1
    # A script: a token for the account's name and password, then the bearer header.
    script = TestClient(env.client.app)
    session = script.post("/api/session", json={"name": reader.name, "password": "wrong"})
    assert session.status_code == 401
    session = script.post("/api/session", json={"name": reader.name, "password": PASSWORD})
    assert session.status_code == 200 and session.json()["role"] == "reader"
    headers = {"authorization": f"Bearer {session.json()['token']}"}
    bearer = script.get(f"/api/cycles/{env.cycle_id}/status", headers=headers)
    assert bearer.status_code == 200 and bearer.json()["cycle"] == env.cycle_id
    assert script.delete("/api/session", headers=headers).status_code == 204
    assert script.get("/api/cycles", headers=headers).status_code == 401  # revoked

    # Sign out (a CSRF-protected POST): the session's row is revoked, so the same cookie,
    # kept by someone who copied it, no longer opens the dashboard.
    cookie = client.cookies.get("mou_session")
    logout = client.post(
        "/dashboard/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert logout.status_code == 303 and "mou_session=" in logout.headers["set-cookie"]
    copied = TestClient(env.client.app, cookies={"mou_session": cookie})
    assert copied.get("/dashboard", follow_redirects=False).status_code == 303
    assert copied.get(f"/api/cycles/{env.cycle_id}/status").status_code == 401


def test_openapi_describes_the_json_endpoints_only(env: Env) -> None:
    spec = env.client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/api/r/{token}",
        "/api/r/{token}/submissions",
        "/api/r/{token}/submissions/{submission_id}",
        "/api/cycles",
        "/api/cycles/{cycle_id}/status",
    } <= paths
    assert not any(p.startswith(("/r/", "/dashboard")) for p in paths)
    schemes = spec["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyCookie"} <= set(schemes)
    assert env.client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_serve_portal_in_thread_answers_and_stops(env: Env) -> None:
    settings = env.settings.model_copy(update={"portal_port": 0})
    server = serve_portal_in_thread(settings)
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
            assert response.status == 200
            assert response.headers["x-content-type-options"] == "nosniff"
        with urllib.request.urlopen(f"{server.url}{env.path('KZ')}", timeout=10) as response:
            assert "Казахстан" in response.read().decode()
    finally:
        server()
    assert not server.thread.is_alive()


def test_portal_texts_exist_in_every_language(env: Env) -> None:
    import yaml

    source = env.settings.forms_dir / "_portal.yaml"
    texts = yaml.safe_load(source.read_text(encoding="utf-8"))["portal"]
    for key, entry in texts.items():
        assert set(entry) == {"en", "ru", "fr"}, key
        placeholders = {frozenset(re.findall(r"{(\w+)}", entry[lang])) for lang in entry}
        assert len(placeholders) == 1, key
