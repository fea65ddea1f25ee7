"""Engine, sessions and migrations for the project database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mou.errors import Refused
from mou.settings import Settings


def _normalise_url(url: str) -> str:
    # Users write postgresql://; the installed driver is psycopg 3.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per database URL for the life of the process."""
    url = _normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})

    @event.listens_for(engine, "connect")
    def _utc_session(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Sessions in UTC whatever the server's or the client's (PGTZ) zone, so dates such
        # as "received on" and "on time" agree between SQL and Python on both databases.
        # Committed, or the pool's rollback would undo it.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()

    return engine


def get_engine(settings: Settings) -> Engine:
    if settings.effective_database_url.startswith("sqlite:///"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    return engine_for(settings.effective_database_url)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    factory = sessionmaker(get_engine(settings), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def fit(model: type[Any], column: str, value: str | None) -> str | None:
    """``value`` cut to the column's length, marked with an ellipsis.

    SQLite stores any length and PostgreSQL refuses one too long: cut before the insert, both
    keep the same text (text from a hostile file, such as a sheet name, can be any length).
    """
    length = getattr(model.__table__.c[column].type, "length", None)
    if value is None or length is None or len(value) <= length:
        return value
    return value[: length - 1] + "…"


def begin_sqlite_transaction(session: Session, immediate: bool = False) -> None:
    """Start the transaction now on SQLite (nothing elsewhere).

    pysqlite begins transactions only before data changes, so a savepoint opened first would
    start the transaction itself, and its RELEASE would commit it behind the caller's back.
    ``immediate`` also takes the database's write lock now (waiting for it up to the busy
    timeout), for reads that a write of the same transaction depends on; a transaction that
    has already written holds it.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    if not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def insert_unless_present(
    session: Session, model: type[Any], key: str
) -> postgresql.Insert | sqlite.Insert:
    """``INSERT … ON CONFLICT (key) DO NOTHING`` for either database.

    A row with that key, committed or being written by another transaction (PostgreSQL waits
    for it), is left as it is: no error, no savepoint, no read before the write.
    """
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model).on_conflict_do_nothing(index_elements=[key])


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(settings.migrations_dir))
    config.attributes["engine"] = get_engine(settings)
    return config


def upgrade(settings: Settings) -> None:
    """Apply all migrations; a database that cannot be reached is a refusal, not a crash."""
    try:
        command.upgrade(alembic_config(settings), "head")
    except OperationalError as exc:
        raise Refused(
            f"cannot reach the database {display_url(settings.effective_database_url)}: "
            f"{str(exc.orig).strip().splitlines()[0]}. Check MOU_DATABASE_URL and that the "
            "server is running."
        ) from exc


def database_problem(exc: BaseException, settings: Settings) -> str | None:
    """What to tell a person about a database error, in one line, or None if it is not one.

    A database not set up yet, one that cannot be reached and a URL that is not one each say
    what to do; anything else is not for a person to mend.
    """
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, ProgrammingError

    url = display_url(settings.effective_database_url)
    if isinstance(exc, ArgumentError | NoSuchModuleError):
        return (
            f"MOU_DATABASE_URL is not a database URL ({url}): use sqlite:///PATH or "
            "postgresql://USER@HOST/DB"
        )
    if not isinstance(exc, DBAPIError):
        return None
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    missing_table = "no such table" in detail or (
        isinstance(exc, ProgrammingError) and "does not exist" in detail
    )
    if missing_table:
        return (
            f"the database {url} is not set up, or is older than this version: run `mou db upgrade`"
        )
    if isinstance(exc, OperationalError):
        return (
            f"cannot reach the database {url}: {detail}. Check MOU_DATABASE_URL and that the "
            "server is running."
        )
    return None


def display_url(url: str) -> str:
    """The database URL as it may be shown or logged: the password masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"
