"""Distributed mode as the README starts it: Prefect server and project database on
PostgreSQL, the scheduled deployments of prefect.yaml on a `process` work pool, and two warm
intake workers (`mou worker --limit 2`). A receiver in another process records a burst of
returns; one worker is killed (-9) a third of the way through. Every return is decided once,
versions follow the order received, each sender gets one receipt, no email arrives twice."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mou.catalogue.bootstrap import prepare_database
from mou.service.protocol import open_and_dispatch
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
    start: Any
    env: dict[str, str]


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
        # The warm intake workers, as the README starts them (the pool's process worker runs
        # only the schedules, none of which this test waits for: not started, to spare CPU).
        workers = [
            start(f"worker-{n}", [str(BIN / "mou"), "worker", "--limit", "2"], worker_env)
            for n in (1, 2)
        ]
        yield Cluster(settings, smtp, api, workers, logs[1:], start, worker_env)
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


RECEIVER = """
import os, sys, time
from pathlib import Path
from mou.service.protocol import receive_file
from mou.service.tasks import flush_wakeups
from mou.settings import Settings
settings = Settings()
for name in sys.argv[1:]:
    path = Path(name)
    sid, _ = receive_file(settings, path.read_bytes(), filename=path.name,
                          sender=path.stem.split("-")[0].lower() + "@example.org")
    print(sid, flush=True)
    time.sleep(float(os.environ.get("PAUSE", "0")))  # a burst that lasts a few seconds
flush_wakeups()
"""


def _start_receiving(cluster: Cluster, paths: list[Path], pause: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RECEIVER, *map(str, paths)],
        env={**cluster.env, "PAUSE": str(pause)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _receive(cluster: Cluster, paths: list[Path]) -> list[int]:
    """Record returns from another process, as a portal or mail reader would (it wakes the
    workers once each row is committed)."""
    done = subprocess.run(
        [sys.executable, "-c", RECEIVER, *map(str, paths)],
        env=cluster.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return [int(line) for line in done.stdout.split()]


def _count(settings: Settings, **where: Any) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(m.Submission).filter_by(**where))


def test_two_warm_workers_drain_a_burst_with_one_killed(cluster: Cluster, tmp_path: Path) -> None:
    settings = cluster.settings
    cycle = open_and_dispatch(settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31)).cycle_id
    states = ("AF", "KZ", "TJ", "TM", "UZ")
    paths = []
    for n in range(6):
        for state in states:
            path = tmp_path / f"{state}-{n}.xlsx"
            path.write_bytes(filled_return(settings, cycle, state, "en", national_total=1000 + n))
            paths.append(path)
    started = time.monotonic()
    # A burst over a few seconds; a third of the way through, the worker deciding a return
    # dies (-9): its claim is left behind.
    receiver = _start_receiving(cluster, paths, pause=0.1)
    wait_for("a third decided", lambda: _count(settings, status="accepted") >= 10, 180)
    by_pid = {str(w.pid): w for w in cluster.workers}

    def claimed() -> tuple[int, subprocess.Popen] | None:
        with session_scope(settings) as session:
            for submission in session.scalars(select(m.Submission).filter_by(status="received")):
                pid = (submission.decision_claimed_by or "").rpartition(":")[2]
                if pid in by_pid:
                    return submission.id, by_pid[pid]
        return None

    while True:  # stopped, then sure it still holds the claim, then killed
        held, victim = wait_for("a return being decided", claimed, 60, step=0.02)
        victim.send_signal(signal.SIGSTOP)
        with session_scope(settings) as session:
            if session.get(m.Submission, held).status == "received":
                break
        victim.send_signal(signal.SIGCONT)  # it finished that one meanwhile: another
    victim.kill()
    victim.wait()
    out, _ = receiver.communicate(timeout=180)
    assert receiver.returncode == 0
    ids = [int(line) for line in out.split()]
    assert len(ids) == len(paths) == len(set(ids))
    survivor = next(w for w in cluster.workers if w is not victim)
    wait_for("every return decided", lambda: _count(settings, status="received") == 0, 240)
    # The same bytes again, as a second email would bring them: recognised, not recorded.
    assert set(_receive(cluster, paths[:5])) == set(ids[:5])
    senders = {f"{state.lower()}@example.org" for state in states}

    def receipts() -> list:
        return [r for r in cluster.smtp.received if set(r.rcpt_tos) & senders]

    wait_for("a receipt for each return", lambda: len(receipts()) >= len(ids), 240)
    elapsed = time.monotonic() - started

    with session_scope(settings) as session:
        submissions = session.scalars(select(m.Submission).order_by(m.Submission.id)).all()
        assert [s.id for s in submissions] == sorted(ids)
        assert [(s.status, s.ingest_attempts) for s in submissions] == [("accepted", 1)] * len(ids)
        for state in states:
            mine = sorted((s for s in submissions if s.state.code == state), key=lambda s: s.id)
            # Numbered in the order received. A return the killed worker was deciding is
            # decided after its claim runs out: if a later one of its state was accepted
            # meanwhile, it takes no number and does not count (intake/rules.py:version_for).
            numbered = [s.version for s in mine if s.version is not None]
            assert numbered == list(range(1, len(numbered) + 1)), "versions in order received"
            assert len(numbered) >= len(mine) - 2  # the killed worker held two claims at most
            assert [s.id for s in mine if s.superseded_by_id is None] == [mine[-1].id]
        keys = session.execute(
            select(
                m.Answer.submission_id, m.Answer.field_key, m.Answer.row_key, m.Answer.column_key
            )
        ).all()
        assert len(keys) == len(set(keys))
        outbox = session.scalars(select(m.OutboxMessage.key)).all()
        assert len([k for k in outbox if k.startswith("receipt:")]) == len(ids)
    counts = Counter(r.message_id for r in cluster.smtp.received)
    assert max(counts.values()) == 1, "an email arrived twice"
    assert len(receipts()) == len(ids)
    # The progress summaries are rendered by a worker after the burst, once up to date.
    folder = settings.var_dir / "reports" / "bukhara-deer-2025-2026"
    wait_for(
        "the progress summaries",
        lambda: (
            (folder / "rendered.json").exists()
            and sorted(json.loads((folder / "rendered.json").read_text()).get("en", []))
            == sorted(s.id for s in submissions if s.superseded_by_id is None)
        ),
        240,
    )
    # No flow run per return: the work went through background task runs of the drains.
    runs = _api(cluster.api, "/flow_runs/filter", {"limit": 200})
    assert not [r for r in runs if "submission_id" in (r.get("parameters") or {})]
    tasks = _api(cluster.api, "/task_runs/filter", {"limit": 200})
    assert any(t["name"].startswith("decide-waiting-returns") for t in tasks)
    assert survivor.poll() is None, "the surviving worker stopped"
    with session_scope(settings) as session:
        finished = session.get(m.Submission, held)
        assert finished.status == "accepted"
        assert finished.decision_claimed_by.endswith(f":{survivor.pid}")

    print(f"burst of {len(ids)} returns, one worker killed, all answered in {elapsed:.1f} s")


def _api(api: str, path: str, body: dict) -> Any:
    import urllib.request

    request = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
