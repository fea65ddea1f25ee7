"""Named Secretariat accounts (issue 13, item 1), on SQLite and PostgreSQL: argon2 hashes,
sessions that sign-out, disabling and a new password really end, the throttle by client and by
name (in the database), roles on every dashboard route (readers view, officers act, admins
manage accounts), the accounts page, `mou user`, and the audit log of every change."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from mou.accounts import sessions, users
from mou.accounts.audit import logged_actions, record
from mou.accounts.roles import Actor, NotAllowed
from mou.catalogue.bootstrap import prepare_database
from mou.portal.server import create_app
from mou.secretariat.cycles import excuse_state
from mou.service.protocol import open_and_dispatch
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.accounts import (
    PASSWORD,
    TEST_ADMIN,
    SignedInClient,
    bearer_headers,
    csrf_of,
    make_user,
    sign_in,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MOU = str(Path(sys.executable).parent / "mou")
ATTEMPTS = 10


@pytest.fixture
def ready(settings: Settings) -> Settings:
    """A migrated database with the catalogue (SQLite, then PostgreSQL)."""
    prepare_database(settings)
    return settings


@pytest.fixture
def apps() -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(settings: Settings) -> Any:
        app = create_app(settings, ingest="thread")
        made.append(app)
        return app

    yield make
    for app in made:
        app.state.portal.inline.close()


def audit_actions(settings: Settings) -> list[tuple[str, str, dict[str, Any]]]:
    with session_scope(settings) as session:
        return [(e.actor, e.action, e.details) for e in logged_actions(session)]


# --- the core: hashes, authentication, sessions ---------------------------------------------


def test_passwords_are_stored_as_argon2id_hashes_and_verified(ready: Settings) -> None:
    # The service's own parameters (tests run with cheap ones, see conftest).
    assert users.PRODUCTION_HASHER.memory_cost == 65536
    assert users.PRODUCTION_HASHER.time_cost >= 2
    user = make_user(ready, "officer", "anna.petrova")
    with session_scope(ready) as session:
        stored = session.scalars(sa.select(m.User)).one()
        assert stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash
        assert users.authenticate(session, "anna.petrova", PASSWORD) is not None
        assert users.authenticate(session, " Anna.Petrova ", PASSWORD).name == user.name
        assert users.authenticate(session, "anna.petrova", PASSWORD + "x") is None
        assert users.authenticate(session, "anna.petrova", "") is None
        assert users.authenticate(session, "nobody", PASSWORD) is None
        assert users.authenticate(session, "anna.petrova", "x" * 5000) is None


def test_weak_passwords_bad_names_and_taken_names_are_refused(ready: Settings) -> None:
    make_user(ready, "officer", "boris")
    with session_scope(ready) as session:
        cases = {
            "short_password": ("carla", "officer", "too-short"),
            "name_in_password": ("carla", "officer", "carla-is-my-password"),
            "bad_name": ("Carla Smith!", "officer", PASSWORD),
            "bad_role": ("carla", "superuser", PASSWORD),
            "name_taken": ("BORIS", "reader", PASSWORD),
        }
        for key, (name, role, password) in cases.items():
            with pytest.raises(users.AccountRefused) as refused:
                users.add_user(session, TEST_ADMIN, name, role, password)
            assert refused.value.key == key
        with pytest.raises(NotAllowed):
            users.add_user(session, Actor("boris", "officer"), "carla", "officer", PASSWORD)


def test_a_session_ends_at_sign_out_expiry_idleness_disabling_and_a_new_password(
    ready: Settings,
) -> None:
    admin = make_user(ready, "admin", "root.admin")
    officer = make_user(ready, "officer", "olga")
    with session_scope(ready) as session:
        account = users.get_account(session, officer.name)
        now = m.utcnow()
        token = sessions.start_session(session, account.id, "192.0.2.1", now=now)
        stored = session.scalars(sa.select(m.UserSession)).one()
        assert stored.token_hash == sessions.token_hash(token) and token not in stored.token_hash
        assert sessions.resume(session, token, now).actor == Actor("olga", "officer")
        later = now + dt.timedelta(seconds=sessions.SESSION_SECONDS)
        assert sessions.resume(session, token, later) is None  # expired
        idle = now + dt.timedelta(seconds=sessions.IDLE_SECONDS + 1)
        assert sessions.resume(session, token, idle) is None  # unused too long
        assert sessions.resume(session, token + "x", now) is None
        assert sessions.end_session(session, token) is True
        assert sessions.resume(session, token, now) is None  # revoked: the row says so
        assert session.get(m.UserSession, stored.id).revoked_at is not None

        actor = Actor(admin.name, "admin")
        first = sessions.start_session(session, account.id)
        second = sessions.start_session(session, account.id)
        users.set_password(session, actor, officer.name, "a-brand-new-password-2")
        assert sessions.resume(session, first) is None and sessions.resume(session, second) is None
        assert users.authenticate(session, officer.name, officer.password) is None
        assert users.authenticate(session, officer.name, "a-brand-new-password-2") is not None

        third = sessions.start_session(session, account.id)
        users.disable_user(session, actor, officer.name)
        assert sessions.resume(session, third) is None
        assert users.authenticate(session, officer.name, "a-brand-new-password-2") is None
        users.disable_user(session, actor, officer.name)  # again: nothing more
        users.enable_user(session, actor, officer.name)
        assert users.authenticate(session, officer.name, "a-brand-new-password-2") is not None
        assert sessions.resume(session, third) is None  # enabling revives no session

    assert [(a, act) for a, act, _ in audit_actions(ready)] == [
        ("cli:tests", "user.add"),
        ("cli:tests", "user.add"),
        ("root.admin", "user.password"),
        ("root.admin", "user.disable"),
        ("root.admin", "user.enable"),
    ]
    details = audit_actions(ready)[2][2]
    assert details == {"user": "olga", "sessions": 2}


def test_the_last_admin_and_ones_own_account_cannot_be_disabled(ready: Settings) -> None:
    only = make_user(ready, "admin", "only.admin")
    with session_scope(ready) as session:
        with pytest.raises(users.AccountRefused) as refused:
            users.disable_user(session, TEST_ADMIN, only.name)
        assert refused.value.key == "last_admin"
        with pytest.raises(users.AccountRefused) as refused:
            users.disable_user(session, Actor(only.name, "admin"), only.name)
        assert refused.value.key == "disable_self"


# --- the command line -------------------------------------------------------------------------


def mou(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOU_", "PREFECT_API"))}
    env.update(MOU_VAR_DIR=str(settings.var_dir), MOU_DATABASE_URL=settings.database_url)
    result = subprocess.run(
        [MOU, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
    )
    assert "Traceback" not in result.stderr + result.stdout
    return result


def test_mou_user_add_list_passwd_disable(ready: Settings, apps: Callable[..., Any]) -> None:
    added = mou(
        ready,
        *("user", "add", "Anna", "--role", "admin", "--password-stdin"),
        *("--full-name", "Anna Petrova", "--json"),
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["name"] == "anna"
    assert PASSWORD not in added.stdout + added.stderr
    # Refusals exit 1 with one line: weak password, taken name, no password at all.
    weak = mou(
        ready, "user", "add", "boris", "--role", "officer", "--password-stdin", stdin="short\n"
    )
    assert weak.returncode == 1 and "at least 12 characters" in weak.stderr
    taken = mou(
        ready, "user", "add", "anna", "--role", "reader", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert taken.returncode == 1 and "exists already" in taken.stderr
    no_tty = mou(ready, "user", "add", "boris", "--role", "officer")
    assert no_tty.returncode == 1 and "--password-stdin" in no_tty.stderr
    # A password is never an argument.
    assert (
        mou(ready, "user", "add", "boris", "--role", "officer", "--password", "x").returncode == 2
    )
    assert mou(ready, "user", "add", "boris", "--role", "boss").returncode == 2

    assert (
        mou(
            ready, "user", "add", "boris", "--role", "officer", "--password-stdin", stdin=PASSWORD
        ).returncode
        == 0
    )
    listed = json.loads(mou(ready, "user", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["active"]) for u in listed] == [
        ("anna", "admin", True),
        ("boris", "officer", True),
    ]
    # The first admin made here signs in to the dashboard.
    client = TestClient(apps(ready))
    assert sign_in(client, "anna", PASSWORD).status_code == 303
    assert client.get("/dashboard/users").status_code == 200

    new = "another-password-for-b"
    assert mou(ready, "user", "passwd", "boris", "--password-stdin", stdin=new).returncode == 0
    assert mou(ready, "user", "passwd", "nobody", "--password-stdin", stdin=new).returncode == 1
    assert mou(ready, "user", "disable", "boris").returncode == 0
    assert mou(ready, "user", "disable", "anna").returncode == 1  # the last admin
    assert mou(ready, "user", "enable", "boris").returncode == 0
    text = mou(ready, "user", "list").stdout
    assert "anna" in text and "boris" in text

    log = audit_actions(ready)
    assert [action for _, action, _ in log] == [
        "user.add",
        "user.add",
        "user.password",
        "user.disable",
        "user.enable",
    ]
    assert {actor for actor, _, _ in log} == {log[0][0]} and log[0][0].startswith("cli")
    assert log[0][2] == {"user": "anna", "role": "admin"}


# --- the portal: sign-in, sign-out, cookies -----------------------------------------------------


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_revokes_it(
    ready: Settings, apps: Callable[..., Any], signed_in: Callable[..., SignedInClient]
) -> None:
    app = apps(ready)
    officer = signed_in(app, "officer")
    assert officer.get("/dashboard").status_code == 200
    token = officer.cookies.get("mou_session")
    with session_scope(ready) as session:
        row = session.scalars(sa.select(m.UserSession)).one()
        assert row.token_hash == sessions.token_hash(token)  # only the hash is kept

    fresh = TestClient(app)
    response = sign_in(fresh, officer.user.name, officer.user.password)
    cookie = response.headers["set-cookie"]
    assert "mou_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # served over http here
    over_https = TestClient(app, base_url="https://testserver")
    cookie = sign_in(over_https, officer.user.name, officer.user.password).headers["set-cookie"]
    assert "Secure" in cookie

    # Sign-out revokes the row: the cookie, copied elsewhere, opens nothing.
    out = officer.post_form("/dashboard/logout")
    assert out.status_code == 303 and out.headers["location"].startswith("/dashboard/login")
    copied = TestClient(app, cookies={"mou_session": token})
    assert copied.get("/dashboard", follow_redirects=False).status_code == 303
    # The other sessions of the same account go on.
    assert fresh.get("/dashboard").status_code == 200


def test_a_disabled_account_and_an_old_password_are_refused_on_the_dashboard(
    ready: Settings, apps: Callable[..., Any], signed_in: Callable[..., SignedInClient]
) -> None:
    app = apps(ready)
    admin = signed_in(app, "admin")
    officer = signed_in(app, "officer")
    reader = signed_in(app, "reader")
    assert officer.get("/dashboard").status_code == 200

    new = "the-officer-s-new-password"
    reset = admin.post_form(
        f"/dashboard/users/{officer.user.name}/password", {"password": new, "confirm": new}
    )
    assert reset.status_code == 303 and "done=user_password" in reset.headers["location"]
    assert officer.get("/dashboard", follow_redirects=False).status_code == 303  # signed out
    assert sign_in(TestClient(app), officer.user.name, officer.user.password).status_code == 401
    assert sign_in(TestClient(app), officer.user.name, new).status_code == 303

    assert admin.post_form(f"/dashboard/users/{reader.user.name}/disable").status_code == 303
    assert reader.get("/dashboard", follow_redirects=False).status_code == 303
    refused = sign_in(TestClient(app), reader.user.name, reader.user.password)
    assert refused.status_code == 401 and "not correct" in refused.text  # says no more


# --- the throttle: by client and by name, in the database ----------------------------------


def test_failed_sign_ins_are_throttled_by_client_and_by_name_and_survive_a_restart(
    ready: Settings, apps: Callable[..., Any]
) -> None:
    victim = make_user(ready, "officer", "victor")
    other = make_user(ready, "officer", "vera")

    def client(address: str, settings: Settings = ready) -> TestClient:
        return TestClient(apps(settings), client=(address, 50000))

    # One client guessing many names: stopped by its address.
    guesser = client("198.51.100.20")
    for n in range(ATTEMPTS):
        assert sign_in(guesser, f"name-{n}", "wrong-password").status_code == 401
    blocked = sign_in(guesser, other.name, other.password)
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
    assert 0 < int(blocked.headers["retry-after"]) <= 300

    # Many clients guessing one name: stopped by the name, whatever the address.
    for n in range(ATTEMPTS):
        assert sign_in(client(f"203.0.113.{n + 1}"), "Victor", "wrong-password").status_code == 401
    # A portal started afterwards (a restart, another process) knows it: rows in the database.
    assert sign_in(client("203.0.113.99"), victim.name, victim.password).status_code == 429
    api = client("203.0.113.98").post(
        "/api/session", json={"name": victim.name, "password": victim.password}
    )
    assert api.status_code == 429 and "retry-after" in api.headers
    # Another name from a fresh address is not held up.
    assert sign_in(client("203.0.113.97"), other.name, other.password).status_code == 303
    with session_scope(ready) as session:
        keys = set(session.scalars(sa.select(m.SignInFailure.client)))
    assert "@victor" in keys and "198.51.100.20" in keys


def test_a_burst_of_parallel_guesses_gets_no_more_than_the_allowed_attempts(
    ready: Settings, apps: Callable[..., Any]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    make_user(ready, "officer", "wanda")
    app = apps(ready)
    client = TestClient(app, client=("198.51.100.30", 50000))
    page = client.get("/dashboard/login")
    data = {"name": "wanda", "password": "wrong-password", "csrf_token": csrf_of(page.text)}

    def guess(_: int) -> int:
        return client.post("/dashboard/login", data=data, follow_redirects=False).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(guess, range(30)))
    assert set(statuses) == {401, 429}
    assert 1 <= statuses.count(401) <= ATTEMPTS


# --- roles on every route ---------------------------------------------------------------------


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every endpoint of the app with its full path. FastAPI 0.150 keeps an included router
    as one entry (``original_router``); older versions copied its routes in."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _routes(inner.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def _dashboard_routes(app: Any, method: str) -> list[tuple[str, APIRoute]]:
    return [
        (path, route)
        for path, route in _routes(app.routes)
        if path.startswith("/dashboard")
        and method in (route.methods or ())
        and path not in ("/dashboard/login", "/dashboard/logout")
    ]


def _needs_admin(route: APIRoute) -> bool:
    from mou.portal import signin

    def calls(dependant: Any) -> Iterator[Any]:
        for dependency in dependant.dependencies:
            yield dependency.call
            yield from calls(dependency)

    return signin.admin in set(calls(route.dependant))


def _concrete(path: str, cycle_id: int, name: str) -> str:
    # Every path parameter filled with something that exists: ids with the cycle's, names
    # with an account's.
    import re

    return re.sub(
        r"{(\w+)(:\w+)?}",
        lambda match: str(cycle_id) if match.group(1).endswith("id") else name,
        path,
    )


def test_readers_get_403_on_every_post_officers_act_and_only_admins_manage_accounts(
    ready: Settings, apps: Callable[..., Any], signed_in: Callable[..., SignedInClient]
) -> None:
    cycle_id = open_and_dispatch(
        ready, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31), states=["KZ"]
    ).cycle_id
    app = apps(ready)
    posts = _dashboard_routes(app, "POST")
    assert {"/dashboard/users", "/dashboard/users/{name}/disable"} <= {p for p, _ in posts}
    admin = signed_in(app, "admin")
    officer = signed_in(app, "officer")
    reader = signed_in(app, "reader")
    target = make_user(ready, "reader", "target.user")

    def not_allowed(response: Any) -> bool:
        return response.status_code == 403 and "Not allowed for your role" in response.text

    for template, route in posts:
        path = _concrete(template, cycle_id, target.name)
        response = reader.post_form(path, {"reason": "test", "password": "", "confirm": ""})
        assert not_allowed(response), (template, response.status_code)
        assert "reader" in response.text.lower() or "Reader" in response.text
        response = officer.post_form(path, {"reason": "test", "password": "", "confirm": ""})
        if _needs_admin(route):
            assert not_allowed(response), template
        else:
            assert not not_allowed(response), template
    # No form at all (a forged request from another site): refused as well, never done.
    for template, _ in posts:
        path = _concrete(template, cycle_id, target.name)
        assert reader.post(path, follow_redirects=False).status_code == 403

    # Every page can be viewed by a reader, but the admin-only ones.
    for template, route in _dashboard_routes(app, "GET"):
        path = _concrete(template, cycle_id, target.name)
        response = reader.get(path, follow_redirects=False)
        if _needs_admin(route):
            assert not_allowed(response), template
            assert admin.get(path).status_code == 200, template
        else:  # viewed (or a 404 for a file this test did not make), never refused
            assert response.status_code in (200, 404), (template, response.status_code)
    # The reader's own sign-out is not an action: it works.
    assert reader.post_form("/dashboard/logout").status_code == 303
    # The toolbar shows the accounts page to admins only.
    assert "/dashboard/users" in admin.get("/dashboard").text
    assert "/dashboard/users" not in officer.get("/dashboard").text


def test_the_api_takes_a_named_accounts_token_and_never_a_cookie_for_changes(
    ready: Settings, apps: Callable[..., Any], signed_in: Callable[..., SignedInClient]
) -> None:
    app = apps(ready)
    headers = bearer_headers(app, "reader")
    assert TestClient(app).get("/api/cycles", headers=headers).status_code == 200
    browser = signed_in(app, "officer")
    assert browser.get("/api/cycles").status_code == 200  # a GET with the session cookie
    # Anything else needs the header: a cookie rides along with cross-site requests.
    assert browser.delete("/api/session").status_code == 401
    assert browser.get("/dashboard").status_code == 200  # the browser's session goes on


def test_the_core_refuses_a_reader_whatever_the_entry_point(ready: Settings) -> None:
    # Actions check the actor themselves (the dashboard's dependency is a second lock).
    with session_scope(ready) as session, pytest.raises(NotAllowed):
        users.set_password(session, Actor("someone", "reader"), "x", PASSWORD)


# --- the accounts page --------------------------------------------------------------------------


def test_an_admin_adds_disables_and_resets_accounts_from_the_dashboard(
    ready: Settings, apps: Callable[..., Any], signed_in: Callable[..., SignedInClient]
) -> None:
    app = apps(ready)
    admin = signed_in(app, "admin", "maria.admin")
    form = {
        "name": "Nikolai.Ivanov",
        "full_name": "Николай Иванов",
        "email": "n.ivanov@example.org",
        "role": "officer",
        "password": "a-password-for-nikolai",
        "confirm": "a-password-for-nikolai",
    }
    differ = admin.post_form("/dashboard/users?lang=ru", {**form, "confirm": "something-else"})
    assert differ.status_code == 400 and "Пароли не совпадают" in differ.text
    assert "Nikolai.Ivanov" in differ.text  # what was typed is kept, the password is not
    assert "a-password-for-nikolai" not in differ.text
    short = admin.post_form("/dashboard/users?lang=fr", {**form, "password": "x", "confirm": "x"})
    assert short.status_code == 400 and "au moins 12 caractères" in short.text

    added = admin.post_form("/dashboard/users?lang=ru", form)
    assert added.status_code == 303
    page = admin.get(added.headers["location"])
    assert "Учетная запись nikolai.ivanov создана." in page.text
    assert "Николай Иванов" in page.text and "Сотрудник" in page.text
    assert sign_in(TestClient(app), "nikolai.ivanov", form["password"]).status_code == 303

    taken = admin.post_form("/dashboard/users", form)
    assert taken.status_code == 400 and "exists already" in taken.text
    own = admin.post_form("/dashboard/users/maria.admin/disable")
    assert own.status_code == 400 and "your own account" in own.text
    missing = admin.post_form("/dashboard/users/nobody/disable")
    assert missing.status_code == 400 and "There is no account nobody" in missing.text
    assert admin.post_form("/dashboard/users/nikolai.ivanov/disable").status_code == 303
    page = admin.get("/dashboard/users?lang=fr")
    assert "Désactivé le" in page.text and "Compte désactivé" in page.text
    assert admin.post_form("/dashboard/users/nikolai.ivanov/enable").status_code == 303
    # A forged ?done= shows nothing it was not told.
    forged = admin.get("/dashboard/users?done=user_added&user=<script>")
    assert "<script>" not in forged.text and "was created" not in forged.text

    log = audit_actions(ready)
    assert [(actor, action) for actor, action, _ in log][1:] == [
        ("maria.admin", "user.add"),
        ("maria.admin", "user.disable"),
        ("maria.admin", "user.enable"),
    ]
    assert log[1][2] == {"user": "nikolai.ivanov", "role": "officer"}


def test_the_cycle_page_shows_its_audit_log_in_the_page_language(
    ready: Settings, apps: Callable[..., Any], signed_in: Callable[..., SignedInClient]
) -> None:
    cycle_id = open_and_dispatch(
        ready, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31), states=["KZ", "UZ"]
    ).cycle_id
    with session_scope(ready) as session:
        kz = session.scalars(sa.select(m.RangeState).where(m.RangeState.code == "KZ")).one()
        record(
            session,
            "olga",
            "cycle.extend",
            cycle_id=cycle_id,
            state_id=kz.id,
            reason="Письмо министерства от 3 марта",
            details={"deadline": "2027-05-31"},
        )
        record(session, "olga", "user.add", details={"user": "x"})  # no cycle: not shown
        # A real action of the Secretariat's core (an excused state has its own standing).
        excuse_state(session, Actor("olga", "officer"), cycle_id, "UZ", "Перепись перенесена")
    reader = signed_in(apps(ready), "reader")
    page = reader.get(f"/dashboard/cycles/{cycle_id}?lang=ru").text
    assert "Журнал действий" in page and "Действия по этому государству" in page
    assert page.count("Письмо министерства от 3 марта") == 2  # the cycle's log and KZ's
    assert "2027-05-31" in page and "Создана учетная запись" not in page
    assert "Государство освобождено от представления отчета" in page and "Освобождено" in page
    empty = reader.get(f"/dashboard/cycles/{cycle_id}?lang=fr").text
    assert "Journal des actions" in empty and "Motif" in empty
