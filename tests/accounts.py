"""Named Secretariat accounts for tests: make one of a role, and a client of a portal app
signed in as it (``tests/conftest.py`` gives this as the ``signed_in`` fixture).

    def test_an_officer_extends(signed_in, settings):
        app = create_app(settings, ingest="thread")
        officer = signed_in(app, "officer")          # a new account, signed in
        page = officer.get("/dashboard")             # the cookie is the client's
        officer.post_form("/dashboard/cycles/1/extend", {"reason": "..."})  # + CSRF
        officer.user.name, officer.user.role         # who it is (audit rows name it)

``post_form`` takes the CSRF token from a dashboard page first (``csrf()``), as a browser
would. ``make_user`` alone makes an account without a client; ``bearer_headers(app, role)``
gives the API's ``Authorization`` header of a new account.
"""

from __future__ import annotations

import itertools
import re
import warnings
from dataclasses import dataclass
from typing import Any

import httpx

from mou.accounts.roles import Actor
from mou.accounts.users import Account, add_user
from mou.settings import Settings
from mou.store.database import session_scope

with warnings.catch_warnings():  # Starlette 1.x nudges towards httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "a-test-password-of-enough-length"
TEST_ADMIN = Actor("cli:tests", "admin")
_numbers = itertools.count(1)


@dataclass(frozen=True)
class TestUser:
    name: str
    role: str
    password: str


def make_user(
    settings: Settings, role: str = "officer", name: str | None = None, password: str = PASSWORD
) -> TestUser:
    """A new active account of ``role`` in the settings' (migrated) database."""
    name = name or f"{role}-{next(_numbers)}"
    with session_scope(settings) as session:
        account: Account = add_user(session, TEST_ADMIN, name, role, password)
    return TestUser(account.name, account.role, password)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def sign_in(client: TestClient | httpx.Client, name: str, password: str, **headers: str) -> Any:
    """Post the sign-in form as a browser would (its CSRF token first); the response."""
    page = client.get("/dashboard/login")
    return client.post(
        "/dashboard/login",
        data={"name": name, "password": password, "csrf_token": csrf_of(page.text)},
        headers=headers,
        follow_redirects=False,
    )


class SignedInClient(TestClient):
    """A TestClient signed in as ``user`` (its session cookie kept)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name
    user: TestUser

    def csrf(self, page: str = "/dashboard") -> str:
        """The CSRF token of this session's forms, read from a dashboard page."""
        response = self.get(page)
        assert response.status_code == 200, (page, response.status_code)
        return csrf_of(response.text)

    def post_form(self, path: str, data: dict[str, Any] | None = None, **options: Any) -> Any:
        """POST a dashboard form with this session's CSRF token (no redirect followed)."""
        options.setdefault("follow_redirects", False)
        return self.post(path, data={**(data or {}), "csrf_token": self.csrf()}, **options)


def signed_in_client(
    app: Any, role: str = "officer", name: str | None = None, **client_options: Any
) -> SignedInClient:
    """A new account of ``role`` in the app's database and a client signed in as it."""
    user = make_user(app.state.portal.settings, role, name)
    client = SignedInClient(app, **client_options)
    client.user = user
    response = sign_in(client, user.name, user.password)
    assert response.status_code == 303, (response.status_code, response.text[:300])
    return client


def bearer_headers(app: Any, role: str = "officer", name: str | None = None) -> dict[str, str]:
    """A new account of ``role`` and the ``Authorization`` header of an API token of it (as a
    script gets one from ``POST /api/session``)."""
    user = make_user(app.state.portal.settings, role, name)
    response = TestClient(app).post(
        "/api/session", json={"name": user.name, "password": user.password}
    )
    assert response.status_code == 200, response.text
    return {"authorization": f"Bearer {response.json()['token']}"}
