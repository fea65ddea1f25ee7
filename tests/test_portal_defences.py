"""The portal's defences against guessing and holding it up (issue 12, "Nobody gets in without
the secret", and issue 13's named accounts): unknown bearer tokens are throttled on the API as
wrong passwords are on the sign-in form, the throttle counts the real client
(``X-Forwarded-For`` only from configured proxies), it lives in the project database (a restart
or a second portal process does not forget it), no shared token signs anyone in, HSTS over
https, and a request body that arrives too slowly is cut off with 408. (The throttle by account
name, and a burst of parallel wrong passwords, are in test_accounts.py.)

Real databases (SQLite and PostgreSQL) and, where the server matters, uvicorn on a free port.
Names the fix introduces are imported inside the tests, so each test fails on its own before it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from mou.catalogue.bootstrap import prepare_database
from mou.cycle.links import portal_link
from mou.portal.server import PortalServer, create_app, serve_portal_in_thread
from mou.service.protocol import open_and_dispatch
from mou.settings import Settings
from mou.store.database import session_scope, upgrade
from tests.accounts import PASSWORD, make_user, sign_in
from tests.conftest import ENGINES, engine_database
from tests.test_portal import DEADLINE, PORTAL_FIELDS

with warnings.catch_warnings():  # Starlette 1.x nudges towards httpx2; httpx works the same
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ATTEMPTS = 10  # failed sign-ins a client has in the window
WINDOW = 300  # seconds
HSTS = "max-age=31536000"
WRONG = "not-the-password-nor-a-token"
OFFICER = "officer.one"


@pytest.fixture
def secured(settings: Settings) -> Settings:
    """An empty migrated database of the test's own (SQLite, then PostgreSQL) with one officer
    account (``OFFICER``): failures counted by one test never block another."""
    upgrade(settings)
    make_user(settings, "officer", OFFICER)
    return settings


@pytest.fixture
def portals() -> Iterator[Callable[..., TestClient]]:
    """Makes a client of a new portal app (as another process or a restart would); their ingest
    pools are closed at the end."""
    apps: list[Any] = []

    def make(settings: Settings, client: str = "testclient", **options: Any) -> TestClient:
        app = create_app(settings, ingest="thread")
        apps.append(app)
        return TestClient(app, client=(client, 50000), **options)

    yield make
    for app in apps:
        app.state.portal.inline.close()


@pytest.fixture
def served() -> Iterator[Callable[[Settings], PortalServer]]:
    """Starts the portal with uvicorn in a thread on a free port, as `mou serve` does."""
    servers: list[PortalServer] = []

    def start(settings: Settings) -> PortalServer:
        server = serve_portal_in_thread(settings.model_copy(update={"portal_port": 0}))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server()


def bearer(client: TestClient, token: str) -> httpx.Response:
    return client.get("/api/cycles", headers={"authorization": f"Bearer {token}"})


def token_of(client: TestClient | httpx.Client) -> str:
    """A bearer token of the officer, as a script gets one."""
    response = client.post("/api/session", json={"name": OFFICER, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def guess(client: TestClient | httpx.Client, n: int, **headers: str) -> httpx.Response:
    """A wrong password for a name of its own: only the client's count grows."""
    return sign_in(client, f"guess-{n}", WRONG, **headers)


def failures_stored(settings: Settings) -> int:
    from mou.store import models as m

    with session_scope(settings) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(m.SignInFailure)) or 0


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The throttle's clock, ``seconds`` from now."""
    from mou.portal import security

    moment = security.utcnow() + dt.timedelta(seconds=seconds)
    monkeypatch.setattr(security, "utcnow", lambda: moment)


# --- 1. unknown bearer tokens are throttled like the sign-in form ----------------------------


def test_wrong_api_tokens_are_throttled_and_the_right_one_waits_for_the_window(
    secured: Settings, portals: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    right = token_of(portals(secured, "198.51.100.9"))
    guesser = portals(secured, "198.51.100.1")
    for _ in range(ATTEMPTS):
        assert bearer(guesser, WRONG).status_code == 401
    blocked = bearer(guesser, WRONG)
    assert blocked.status_code == 429
    assert blocked.json() == {"detail": "too many failed attempts; try again later"}
    assert 0 < int(blocked.headers["retry-after"]) <= WINDOW
    # The right token is refused too while the block lasts: the guesser cannot test a guess.
    refused = bearer(guesser, right)
    assert refused.status_code == 429 and "retry-after" in refused.headers
    # One throttle for every way in: the sign-in form and /api/session are closed to it.
    assert sign_in(guesser, OFFICER, PASSWORD).status_code == 429
    session = guesser.post("/api/session", json={"name": OFFICER, "password": PASSWORD})
    assert session.status_code == 429
    # Another client is not held up by the guesser.
    assert bearer(portals(secured, "198.51.100.2"), right).status_code == 200

    later(monkeypatch, WINDOW + 1)
    assert bearer(guesser, right).status_code == 200


def test_the_sign_in_form_answers_429_with_retry_after(
    secured: Settings, portals: Callable[..., TestClient]
) -> None:
    client = portals(secured, "198.51.100.3")
    for n in range(ATTEMPTS):
        assert guess(client, n).status_code == 401
    blocked = sign_in(client, OFFICER, PASSWORD)
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
    assert 0 < int(blocked.headers["retry-after"]) <= WINDOW


# --- 2. X-Forwarded-For only from a configured proxy -----------------------------------------


def test_a_local_client_cannot_dodge_the_throttle_with_x_forwarded_for(
    secured: Settings, served: Callable[[Settings], PortalServer]
) -> None:
    server = served(secured)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(ATTEMPTS):
            response = guess(client, n, **{"x-forwarded-for": f"203.0.113.{n + 1}"})
            assert response.status_code == 401
        response = guess(client, 99, **{"x-forwarded-for": "203.0.113.99"})
        assert response.status_code == 429  # counted for the peer, 127.0.0.1
        # Nor does X-Forwarded-Proto make a plain connection https.
        plain = client.get("/healthz", headers={"x-forwarded-proto": "https"})
        assert "strict-transport-security" not in plain.headers


def test_behind_a_trusted_proxy_the_client_is_the_right_most_address_it_did_not_add(
    secured: Settings, served: Callable[[Settings], PortalServer]
) -> None:
    server = served(secured.model_copy(update={"portal_trusted_proxies": ("127.0.0.1",)}))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(ATTEMPTS):
            # What the client wrote itself is left of what the proxy appended: not believed.
            spoofed = {"x-forwarded-for": f"192.0.2.{n + 1}, 203.0.113.9"}
            assert guess(client, n, **spoofed).status_code == 401
        assert guess(client, 20, **{"x-forwarded-for": "203.0.113.9"}).status_code == 429
        # Another client behind the same proxy is not blocked, nor is the proxy itself.
        assert guess(client, 21, **{"x-forwarded-for": "203.0.113.10"}).status_code == 401
        assert guess(client, 22).status_code == 401
        # The proxy terminates TLS: its X-Forwarded-Proto is believed.
        https = client.get("/healthz", headers={"x-forwarded-proto": "https"})
        assert https.headers["strict-transport-security"] == HSTS


def test_the_client_of_a_request_through_proxies() -> None:
    from mou.portal.security import TrustedProxies

    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "2001:db8:1::/48"])
    assert proxies.client("198.51.100.4", "203.0.113.1") == "198.51.100.4"  # not a proxy
    assert proxies.client("127.0.0.1", None) == "127.0.0.1"
    assert proxies.client("127.0.0.1", "") == "127.0.0.1"
    assert proxies.client("127.0.0.1", "203.0.113.1") == "203.0.113.1"
    assert proxies.client("127.0.0.1", "6.6.6.6, 203.0.113.1, 10.1.2.3") == "203.0.113.1"
    assert proxies.client("10.0.0.5", "10.0.0.7, 10.0.0.6") == "10.0.0.7"  # only proxies
    assert proxies.client("::ffff:127.0.0.1", "203.0.113.1") == "203.0.113.1"  # dual stack
    assert proxies.client("2001:db8:1::5", "[2001:db8:2::1]:443") == "2001:db8:2::1"
    assert proxies.client("127.0.0.1", "203.0.113.1:4711") == "203.0.113.1"
    assert TrustedProxies([]).client("127.0.0.1", "203.0.113.1") == "127.0.0.1"


def test_trusted_proxies_are_read_from_the_environment_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(var_dir=tmp_path).portal_trusted_proxies == ()
    monkeypatch.setenv("MOU_PORTAL_TRUSTED_PROXIES", '["127.0.0.1", "10.0.0.0/8", "::1"]')
    assert Settings(var_dir=tmp_path).portal_trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")
    monkeypatch.setenv("MOU_PORTAL_TRUSTED_PROXIES", '["proxy.example.org"]')
    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings(var_dir=tmp_path)


def test_uvicorn_does_not_rewrite_the_client_itself(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    configs: list[Any] = []
    real = uvicorn.Config

    def spy(*args: Any, **kwargs: Any) -> Any:
        config = real(*args, **kwargs)
        configs.append(config)
        return config

    monkeypatch.setattr(uvicorn, "Config", spy)
    server = serve_portal_in_thread(sqlite_settings.model_copy(update={"portal_port": 0}))
    server()
    assert configs and configs[0].proxy_headers is False


# --- 3. the throttle is in the project database ----------------------------------------------


def test_failures_survive_a_restart_and_are_shared_by_portal_processes(
    secured: Settings, portals: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    right = token_of(portals(secured, "192.0.2.6"))
    first = portals(secured, "192.0.2.7")
    for _ in range(ATTEMPTS):
        assert bearer(first, WRONG).status_code == 401
    # A portal started afterwards (a restart, or another process on the same database).
    second = portals(secured, "192.0.2.7")
    assert sign_in(second, OFFICER, PASSWORD).status_code == 429
    assert bearer(second, right).status_code == 429
    assert failures_stored(secured) == ATTEMPTS  # a refused attempt adds none
    assert bearer(portals(secured, "192.0.2.8"), right).status_code == 200

    # Pruned as they age: the next failure, of anyone, removes those older than the window.
    later(monkeypatch, WINDOW + 1)
    assert bearer(portals(secured, "192.0.2.9"), WRONG).status_code == 401
    assert failures_stored(secured) == 1


def test_ipv6_clients_are_counted_by_their_64_bit_network(
    secured: Settings, portals: Callable[..., TestClient]
) -> None:
    # One IPv6 host has a whole /64 to choose addresses from.
    for n in range(ATTEMPTS):
        assert bearer(portals(secured, f"2001:db8:7:7::{n + 1:x}"), WRONG).status_code == 401
    right = token_of(portals(secured, "2001:db8:7:9::1"))
    assert bearer(portals(secured, "2001:db8:7:7::abcd"), right).status_code == 429
    assert bearer(portals(secured, "2001:db8:7:8::1"), right).status_code == 200


# --- 4. no shared secret signs anyone in -------------------------------------------------------


def test_the_old_shared_token_setting_signs_no_one_in(
    secured: Settings, portals: Callable[..., TestClient]
) -> None:
    # MOU_SECRETARIAT_TOKEN is gone: set, it is ignored (`mou` still runs), and its value
    # opens neither the dashboard nor the API. Only a named account's session does.
    token = "the-old-shared-secretariat-token"
    env = {
        **os.environ,
        "MOU_SECRETARIAT_TOKEN": token,
        "MOU_VAR_DIR": str(secured.var_dir),
        "MOU_DATABASE_URL": secured.database_url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "mou", "user", "list", "--json"], env=env, capture_output=True
    )
    assert result.returncode == 0, result.stderr
    assert [u["name"] for u in json.loads(result.stdout)] == [OFFICER]
    client = portals(secured, "198.51.100.40")
    assert bearer(client, token).status_code == 401
    assert sign_in(client, "secretariat", token).status_code == 401
    page = client.get("/dashboard/login").text
    assert 'name="token"' not in page and 'name="password"' in page


# --- 5. HSTS over https only ---------------------------------------------------------------


def test_hsts_is_sent_over_https_and_never_over_plain_http(
    sqlite_settings: Settings, portals: Callable[..., TestClient]
) -> None:
    https = portals(sqlite_settings, base_url="https://testserver")
    for path in ("/healthz", "/", "/no/such/page", "/static/portal.css"):
        assert https.get(path).headers["strict-transport-security"] == HSTS, path
    plain = portals(sqlite_settings)
    for path in ("/healthz", "/", "/no/such/page"):
        assert "strict-transport-security" not in plain.get(path).headers, path
    published = sqlite_settings.model_copy(
        update={"portal_base_url": "https://reports.example.org"}
    )
    assert portals(published).get("/healthz").headers["strict-transport-security"] == HSTS


# --- 6. request bodies have a read timeout -------------------------------------------------


@dataclass
class Linked:
    settings: Settings
    cycle_id: int

    def path(self, state: str) -> str:
        """The path of a state's personal link."""
        url = portal_link(self.settings, self.cycle_id, state)
        return "/" + url.split("://", 1)[1].split("/", 1)[1]


@pytest.fixture(scope="module", params=ENGINES)
def linked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Linked]:
    """A database with an open Bukhara deer cycle for KZ, whose link takes uploads."""
    root = tmp_path_factory.mktemp(f"defences-{request.param}")
    with engine_database(request, root) as url:
        settings = Settings(var_dir=root / "var", database_url=url)
        settings = settings.model_copy(update=PORTAL_FIELDS)
        prepare_database(settings)
        cycle_id = open_and_dispatch(
            settings, "bukhara-deer", "2025-2026", DEADLINE, states=["KZ"]
        ).cycle_id
        yield Linked(settings, cycle_id)


def send_slowly(
    server: PortalServer, path: str, *, every: float | None, give_up: float = 8.0
) -> tuple[float, bytes]:
    """POST a multipart body announced as 50 kB over a real socket; send its first bytes, then
    one byte each ``every`` seconds (None: nothing more). Returns the seconds until the server
    answered and what it sent before closing the connection ("" if it never did)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        "Content-Type: multipart/form-data; boundary=slow\r\nContent-Length: 50000\r\n\r\n"
        "--slow\r\n"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=give_up) as sock:
        sock.sendall(head)
        start = time.monotonic()
        while time.monotonic() - start < give_up:
            readable, _, _ = select.select([sock], [], [], every or 0.1)
            if readable:
                break
            if every is not None:
                try:
                    sock.sendall(b"x")
                except OSError:
                    break
        else:
            return give_up, b""
        answered = time.monotonic() - start
        received = b""
        while chunk := sock.recv(65536):  # until the server closes: the worker is free again
            received += chunk
        return answered, received


def test_an_upload_that_stops_arriving_is_cut_off_with_408(
    linked: Linked, served: Callable[[Settings], PortalServer]
) -> None:
    settings = linked.settings.model_copy(
        update={"portal_body_timeout_seconds": 0.5, "portal_body_total_seconds": 5.0}
    )
    server = served(settings)
    answered, response = send_slowly(server, f"{linked.path('KZ')}/upload", every=None)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), response[:200]
    assert b"connection: close" in head.lower()
    assert 0.4 < answered < 3.0
    assert "Файл передавался слишком долго".encode() in body  # the link's language
    with httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.get("/healthz").status_code == 200  # the portal is still serving


def test_an_upload_that_trickles_in_is_cut_off_after_the_total_allowed(
    linked: Linked, served: Callable[[Settings], PortalServer]
) -> None:
    # One byte every 0.2 s never pauses long enough for the gap limit: the total one applies.
    settings = linked.settings.model_copy(
        update={"portal_body_timeout_seconds": 1.0, "portal_body_total_seconds": 1.5}
    )
    server = served(settings)
    answered, response = send_slowly(server, f"{linked.path('KZ')}/upload", every=0.2)
    assert response.startswith(b"HTTP/1.1 408"), response[:200]
    assert 1.3 < answered < 4.0


def test_body_timeouts_are_settings_with_defaults(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    assert settings.portal_body_timeout_seconds == 30.0
    assert settings.portal_body_total_seconds == 300.0
    with pytest.raises(ValidationError):
        Settings(var_dir=tmp_path, portal_body_timeout_seconds=0)


def test_the_migration_builds_the_throttle_table_the_model_describes(settings: Settings) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mou.store.database import alembic_config, get_engine
    from mou.store.models import Base

    upgrade(settings)
    engine = get_engine(settings)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    command.downgrade(alembic_config(settings), "0001")
    assert "sign_in_failures" not in sa.inspect(engine).get_table_names()
    upgrade(settings)
    assert "sign_in_failures" in sa.inspect(engine).get_table_names()
