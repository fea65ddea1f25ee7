"""Shared fixtures: settings on a temporary var/, and the project database on SQLite and
PostgreSQL. PostgreSQL tests skip on a laptop without it, and fail in CI
(``MOU_REQUIRE_POSTGRES=1``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from mou.settings import Settings
from mou.store.database import engine_for, session_scope
from tests.accounts import SignedInClient, signed_in_client
from tests.imap_server import DovecotMissing, DovecotServer
from tests.smtp_server import SmtpServer

POSTGRES_ADMIN_URL = os.environ.get(
    "MOU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _required(variable: str) -> bool:
    return os.environ.get(variable, "") not in ("", "0", "false")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL server."""
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        message = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}"
        if _required("MOU_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_ADMIN_URL


def make_postgres_database(admin_url: str) -> str:
    """A new, empty database on the server; returns its URL."""
    name = f"mou_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(admin_url: str, url: str) -> None:
    engine_for(url).dispose()
    name = url.rsplit("/", 1)[1]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# The engines a database fixture is parametrised over; "postgres" is required in CI.
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def engine_database(request: pytest.FixtureRequest, root: Path) -> Iterator[str]:
    """An empty project database on the engine of ``request.param`` ("sqlite" in ``root``, or
    a new PostgreSQL database), gone afterwards: for fixtures parametrised over ENGINES."""
    if request.param == "sqlite":
        try:
            yield f"sqlite:///{root / 'mou.sqlite3'}"
        finally:
            engine_for.cache_clear()
        return
    admin_url = request.getfixturevalue("postgres_server")
    url = make_postgres_database(admin_url)
    try:
        yield url
    finally:
        drop_postgres_database(admin_url, url)


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty project database, once on SQLite and once on PostgreSQL."""
    with engine_database(request, tmp_path) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(var_dir=tmp_path / "var", database_url=database_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Embedded defaults in a temporary var/ (for tests where the engine does not matter)."""
    return Settings(var_dir=tmp_path / "var")


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    from mou.catalogue.bootstrap import prepare_database

    prepare_database(settings)
    with session_scope(settings) as session:
        yield session


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a port the OS chooses, keeping what it receives."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def quick_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with the smallest cost in this process: the service's own (64 MiB, 3 passes,
    about 0.15 s a hash) would make every sign-in of every test that slow. A test of the
    real parameters reads ``PRODUCTION_HASHER``; ``mou`` run as a subprocess uses them."""
    from argon2 import PasswordHasher

    from mou.accounts import users

    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def signed_in() -> Callable[..., SignedInClient]:
    """``signed_in(app, role="officer", name=None)``: a new account of that role in the app's
    database and a TestClient signed in as it (``.user``, ``.csrf()``, ``.post_form(path,
    data)``); see tests/accounts.py."""
    return signed_in_client


def relay(settings: Settings, server: SmtpServer, **extra: object) -> Settings:
    """The settings with the test SMTP server as relay."""
    return settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_timeout": 5, **extra}
    )


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    """A real IMAP server (Debian's Dovecot) on a free port, with its own configuration,
    users and mail under a temporary folder. Skips without dovecot on a laptop; fails in CI
    (``MOU_REQUIRE_IMAP=1``)."""
    try:
        server = DovecotServer()
        server.start()
    except DovecotMissing as exc:
        if _required("MOU_REQUIRE_IMAP"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


def imap_settings(settings: Settings, server: DovecotServer, **extra: object) -> Settings:
    """The settings with the test IMAP server as the Secretariat's mailbox."""
    return settings.model_copy(
        update={
            "imap_host": "127.0.0.1",
            "imap_port": server.port,
            "imap_user": server.account.user,
            "imap_password": server.account.password,
            "imap_security": "none",
            "imap_poll_seconds": 5.0,
            **extra,
        }
    )
