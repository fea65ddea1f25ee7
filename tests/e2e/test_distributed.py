"""Distributed mode: Prefect server and project database on PostgreSQL, deployments from
prefect.yaml on a `process` work pool, two workers ingesting a burst of returns at once.
No submission, answer row or email may be duplicated or lost."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mou.catalogue.bootstrap import prepare_database
from mou.service.protocol import open_and_dispatch, receive_file
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.conftest import drop_postgres_database, make_postgres_database, relay
from tests.e2e.test_service import free_port, wait_for
from tests.smtp_server import SmtpServer
from tests.test_protocol import filled_return

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Cluster:
    settings: Settings
    smtp: SmtpServer
    api: str
    workers: list[subprocess.Popen]
    logs: list[Path]


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(args, env=env, cwd=ROOT, check=True, capture_output=True, timeout=180)


@pytest.fixture(scope="module")
def cluster(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    project_db = make_postgres_database(postgres_server)
    prefect_db = make_postgres_database(postgres_server)
    smtp = SmtpServer()
    smtp.start()
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    settings = relay(Settings(var_dir=root / "var", database_url=project_db), smtp)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MOU_"))}
    prefect_env = {
        **base,
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_db.replace(
            "postgresql+psycopg", "postgresql+asyncpg"
        ),
    }
    worker_env = {
        **prefect_env,
        "PREFECT_API_URL": api,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "MOU_PROJECT_ROOT": str(ROOT),
        "MOU_DATABASE_URL": project_db,
        "MOU_VAR_DIR": str(settings.var_dir),
        "MOU_SMTP_HOST": "127.0.0.1",
        "MOU_SMTP_PORT": str(smtp.port),
    }
    processes: list[subprocess.Popen] = []
    logs: list[Path] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = root / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=out)
        processes.append(process)
        logs.append(log)
        return process

    try:
        server = start(
            "server", [str(BIN / "prefect"), "server", "start", "--port", str(port)], prefect_env
        )
        from mou.service.prefect_server import wait_healthy

        wait_healthy(api, 120, server)
        _run([str(BIN / "prefect"), "work-pool", "create", "mou", "--type", "process"], worker_env)
        _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], worker_env)
        prepare_database(settings)
        workers = [
            start(
                f"worker-{n}",
                # Two runs at a time each, so that neither worker can take the whole burst at
                # one poll: both must share it (and the README tells operators to set a limit).
                [
                    *(str(BIN / "prefect"), "worker", "start", "--pool", "mou"),
                    *("--name", f"worker-{n}", "--limit", "2"),
                ],
                worker_env,
            )
            for n in (1, 2)
        ]
        yield Cluster(settings, smtp, api, workers, logs[1:])
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        smtp.stop()
        drop_postgres_database(postgres_server, project_db)
        drop_postgres_database(postgres_server, prefect_db)


def test_two_workers_ingest_a_burst_without_duplicates(cluster: Cluster) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    settings = cluster.settings
    cycle = open_and_dispatch(settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31)).cycle_id
    returns = [
        (state, filled_return(settings, cycle, state, "en", national_total=1000 + n))
        for n in range(2)
        for state in ("AF", "KZ", "TJ", "TM", "UZ")
    ]
    started = time.monotonic()
    with temporary_settings(updates={PREFECT_API_URL: cluster.api}):
        ids = [
            receive_file(
                settings, data, filename=f"{state}.xlsx", sender=f"{state.lower()}@example.org"
            )[0]
            for state, data in returns
        ]
        # The same bytes again, as a second email would bring them: recognised, not recorded.
        again = {receive_file(settings, data, filename="again.xlsx")[0] for _, data in returns}
    assert again == set(ids)

    def decided() -> bool:
        with session_scope(settings) as session:
            waiting = session.scalar(
                select(func.count()).select_from(m.Submission).filter_by(status="received")
            )
        return waiting == 0

    wait_for("every submission decided", decided, 300)
    senders = {f"{state.lower()}@example.org" for state, _ in returns}

    def receipts() -> list:
        return [r for r in cluster.smtp.received if set(r.rcpt_tos) & senders]

    wait_for("ten receipts", lambda: len(receipts()) >= 10, 120)
    elapsed = time.monotonic() - started

    with session_scope(settings) as session:
        submissions = session.scalars(select(m.Submission).order_by(m.Submission.id)).all()
        assert [s.id for s in submissions] == sorted(ids)
        assert all(s.status == "accepted" for s in submissions)
        for state in ("AF", "KZ", "TJ", "TM", "UZ"):
            mine = [s for s in submissions if s.state.code == state]
            assert sorted(s.version for s in mine) == [1, 2]
            assert [s.id for s in mine if s.superseded_by_id is None] == [max(s.id for s in mine)]
        keys = session.execute(
            select(
                m.Answer.submission_id, m.Answer.field_key, m.Answer.row_key, m.Answer.column_key
            )
        ).all()
        assert len(keys) == len(set(keys))
        outbox = session.scalars(select(m.OutboxMessage.key)).all()
        assert len([k for k in outbox if k.startswith("receipt:")]) == 10
    counts = Counter(r.message_id for r in cluster.smtp.received)
    assert max(counts.values()) == 1, "an email arrived twice"
    assert len(receipts()) == 10
    # Both workers took runs from the pool and saw them through. A worker's last run (a
    # consolidation started by the last acceptance) may still be going: wait for it.
    for log in cluster.logs:
        wait_for(
            f"a completed run in {log.name}",
            lambda log=log: b"Finished in state Completed" in log.read_bytes(),
            120,
        )
    print(f"burst of 10 returns ingested by two workers in {elapsed:.1f} s")
