"""What the service shows of its configuration, and how it talks to PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from mou.service.serve import banner
from mou.settings import Settings
from mou.store.database import engine_for
from tests.conftest import drop_postgres_database, make_postgres_database


def test_the_start_banner_never_shows_the_database_password(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path, database_url="postgresql://mou:s3cr3t-Passw0rd@db.example.org/mou"
    )
    shown = "\n".join(banner(settings, "http://127.0.0.1:4200/api"))
    assert "s3cr3t-Passw0rd" not in shown
    assert "postgresql://mou:***@db.example.org/mou" in shown
    assert settings.secret not in shown


@pytest.mark.postgres
def test_postgresql_sessions_run_in_utc_whatever_the_client_zone(
    postgres_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq takes the session's zone from PGTZ: a worker in Dushanbe must still write UTC.
    monkeypatch.setenv("PGTZ", "Asia/Dushanbe")
    url = make_postgres_database(postgres_server)
    try:
        with engine_for(url).connect() as connection:
            assert connection.execute(text("SHOW TimeZone")).scalar_one() == "UTC"
            midnight = connection.execute(
                text("SELECT CAST(TIMESTAMPTZ '2027-03-31 23:30:00+00' AS date)")
            ).scalar_one()
        assert midnight == dt.date(2027, 3, 31)  # not 1 April, as in Dushanbe
    finally:
        drop_postgres_database(postgres_server, url)


def test_the_embedded_prefect_server_gets_none_of_the_services_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mou.service import prefect_server

    monkeypatch.setenv("MOU_SECRET", "a-configured-secret-value-123")
    monkeypatch.setenv("MOU_SMTP_PASSWORD", "relay-password")
    monkeypatch.setenv("MOU_DATABASE_URL", "postgresql://mou:db-password@db/mou")
    started: dict[str, dict[str, str]] = {}

    class Started(Exception):
        pass

    def popen(args, env, **kwargs):
        started["env"] = env
        raise Started

    monkeypatch.setattr(prefect_server.subprocess, "Popen", popen)
    with pytest.raises(Started), prefect_server.embedded_prefect_server(tmp_path, "127.0.0.1", 1):
        pass
    env = started["env"]
    assert not [name for name in env if name.startswith("MOU_")]
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert "db-password" not in " ".join(env.values())


def test_settings_never_show_a_secret(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path,
        secret="the-signing-secret-0001",
        previous_secrets=("the-old-signing-secret-1",),
        smtp_password="the-relay-password",
        database_url="postgresql://mou:the-database-password@db.example.org/mou",
    )
    shown = repr(settings) + str(settings)
    for secret in (
        "the-signing-secret-0001",
        "the-old-signing-secret-1",
        "the-relay-password",
        "the-database-password",
    ):
        assert secret not in shown
    with pytest.raises(ValidationError) as refused:
        Settings(var_dir=tmp_path, previous_secrets=("a-valid-old-secret-of-length", "short"))
    assert "a-valid-old-secret-of-length" not in str(refused.value)


def test_an_installed_service_keeps_its_files_per_user_not_where_it_is_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mou import resources

    monkeypatch.setattr(resources, "installed", lambda: True)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir("/")
    monkeypatch.delenv("MOU_VAR_DIR", raising=False)
    assert (
        Settings(secret="a-configured-secret-1234").var_dir == tmp_path / "data" / "mou-reporting"
    )
    monkeypatch.setattr(resources, "installed", lambda: False)
    checkout = Path(__file__).resolve().parent.parent
    assert Settings(secret="a-configured-secret-1234").var_dir == checkout / "var"
