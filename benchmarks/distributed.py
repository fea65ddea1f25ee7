"""Distributed: two process workers on PostgreSQL draining a burst of received returns.

Why one file of some 1,400 lines: it is a measurement harness, one experiment read from top to
bottom, and each of its parts serves only that experiment: the cluster (`Cluster`, `Sampler`,
`RunProcess`: the Prefect server and the workers, sampled from /proc), the SMTP sink, helpers
for the Prefect API, PostgreSQL and the import and CPU profiles, the returns (`_generate`), the
run (environments, `_drain`, `_collect`, `_check`) and the report (`_figures`, `_report`:
RESULTS-distributed.md). Split into modules, they would pass the `Run` record and the helpers
back and forth with no other user.

A Prefect server on PostgreSQL (a database created for the run and dropped after, on a free
port, analytics off), the project database on PostgreSQL (likewise), the deployments of
prefect.yaml deployed to a `process` work pool with `prefect deploy --all`, two
`prefect worker start --pool mou` processes, and an SMTP sink (aiosmtpd) as the relay.
Then N distinct filled returns (Bukhara deer and CAMI, the states' templates filled by
`mou.demo.synthetic`, several versions per state, every tenth one spoilt by typical errors) are
recorded and announced with `mou.service.protocol.receive_file`, as the inbox, the mail reader and
the portal do: one `mou.submission.received` event each. The clock runs until every
submission is decided, then until every receipt reached the SMTP sink and no flow run is in
flight. Checked: one decision per submission, versions 1..n per (cycle, state), one current
return per (cycle, state), one receipt per submission and no email twice, one ingest flow run
per submission, no flow run failed or crashed. Where the time goes: the flow runs' state
history from the Prefect API, and CPU seconds per process tree read from /proc.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import procstat
from benchmarks.read_validate import _cpu
from benchmarks.summary import Figure, record

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS-distributed.md"
LOGS = Path(tempfile.gettempdir()) / "mou-distributed-logs"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
BIN = Path(sys.executable).parent
POOL = "mou"
CYCLES = (("bukhara-deer", "2025-2026"), ("cami", "2024-2026"))
IN_FLIGHT = {"PENDING", "RUNNING", "CANCELLING"}


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


@dataclass
class RunProcess:
    """One flow run's process, child of a worker: the workspace supervisor, then (exec, same
    pid) `python -m prefect.engine`."""

    worker: str
    first: float
    last: float = 0.0
    flow_run_id: str = ""
    supervisor_cpu: float = 0.0  # subtree CPU at the last sample before the exec
    cpu: float = 0.0  # subtree CPU at the last sample
    rss: int = 0  # largest resident memory of the subtree seen, bytes


class Sampler(threading.Thread):
    """Every `step` s: the workers' flow-run processes (CPU per process and per phase) and how
    many run at once."""

    def __init__(self, workers: dict[str, int], step: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.step = step
        self.runs: dict[tuple[int, int], RunProcess] = {}
        self.concurrency: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.step):
            self.sample()

    def sample(self) -> None:
        now = time.monotonic()
        table = procstat.table()
        children = procstat.children(table)
        alive = 0
        for name, worker_pid in self.workers.items():
            for pid in children.get(worker_pid, []):
                proc = table[pid]
                cmdline = _read(f"/proc/{pid}/cmdline")
                if b"prefect" not in cmdline:
                    continue
                alive += 1
                seen = self.runs.setdefault((pid, proc.start), RunProcess(name, now))
                seen.last = now
                seen.cpu = procstat.tree_cpu(pid, table, children)
                seen.rss = max(
                    seen.rss, sum(procstat.rss(p) for p in procstat.subtree(pid, children))
                )
                if b"_workspace_supervisor" in cmdline:
                    seen.supervisor_cpu = seen.cpu
                elif not seen.flow_run_id:
                    environ = _read(f"/proc/{pid}/environ").split(b"\0")
                    for item in environ:
                        if item.startswith(b"PREFECT__FLOW_RUN_ID="):
                            seen.flow_run_id = item.split(b"=", 1)[1].decode()
        self.concurrency.append((now, alive))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class Cluster:
    """The Prefect server and the workers, each in its own session, logs in LOGS."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}
        self.sampler: Sampler | None = None

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        with (self.logs / f"{name}.log").open("wb") as out:
            process = subprocess.Popen(
                args,
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def check(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode}")

    def stop(self) -> None:
        """Workers first, then the server: SIGTERM to each session, SIGKILL after 30 s; then
        any descendant left (flow-run processes run in sessions of their own)."""
        table = procstat.table()
        children = procstat.children(table)
        left = {
            (pid, table[pid].start)
            for process in self.processes.values()
            for pid in procstat.subtree(process.pid, children)
            if pid in table and pid != process.pid
        }
        for _name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=10)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [(p, s) for p, s in left if (proc := procstat.read(p)) and proc.start == s]
            for pid, _ in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while alive and time.monotonic() < deadline:
                time.sleep(0.2)
                alive = [(p, s) for p, s in alive if (proc := procstat.read(p)) and proc.start == s]


# --- SMTP sink ------------------------------------------------------------------------------


class Sink:
    """An SMTP relay that accepts everything and counts Message-IDs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.message_ids: Counter[str] = Counter()
        self.controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email.parser import BytesHeaderParser

        headers = BytesHeaderParser().parsebytes(bytes(envelope.content))
        with self.lock:
            self.message_ids[str(headers["Message-ID"]).strip()] += 1
        return "250 Message accepted for delivery"

    def start(self) -> int:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=_free_port())
        self.controller.start()
        return self.controller.port

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.message_ids)


# --- helpers --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _api(api: str, path: str, body: Any = None, method: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        api + path,
        data=data,
        method=method or ("GET" if body is None else "POST"),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read()
    return json.loads(text) if text else None


def _wait(what: str, check: Callable[[], Any], timeout: float, cluster: Cluster, step=0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check()
        result = check()
        if result:
            return result
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _pg(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as connection:
        connection.execute(statement)


def _flow_runs(api: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    while True:
        page = _api(
            api,
            "/flow_runs/filter",
            {"limit": 200, "offset": len(runs), "sort": "EXPECTED_START_TIME_ASC"},
        )
        runs.extend(page)
        if len(page) < 200:
            return runs


def _in_flight(api: str) -> list[dict[str, Any]]:
    """Runs pending or running, or scheduled to start within 10 s (a trigger's run waits 5 s)."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    return [
        run
        for run in _flow_runs(api)
        if run["state_type"] in IN_FLIGHT
        or (
            run["state_type"] == "SCHEDULED"
            and (_when(run.get("next_scheduled_start_time") or run["expected_start_time"]) or soon)
            <= soon
        )
    ]


def _cpu_snapshot(cluster: Cluster) -> dict[str, float]:
    table = procstat.table()
    children = procstat.children(table)
    snapshot: dict[str, float] = {"wall": time.monotonic(), "machine": procstat.machine_busy()}
    server = cluster.processes["server"].pid
    snapshot["Prefect server"] = procstat.tree_cpu(server, table, children)
    snapshot["workers"] = 0.0
    snapshot["flow-run processes"] = 0.0
    for name, process in cluster.processes.items():
        if name.startswith("worker") and process.pid in table:
            snapshot["workers"] += table[process.pid].own
            snapshot["flow-run processes"] += (
                procstat.tree_cpu(process.pid, table, children) - table[process.pid].own
            )
    postmaster = procstat.postmaster(table)
    snapshot["PostgreSQL (whole server)"] = (
        procstat.tree_cpu(postmaster, table, children) if postmaster else 0.0
    )
    times = os.times()
    snapshot["this benchmark process"] = times.user + times.system
    return snapshot


def _import_cost(env: dict[str, str]) -> dict[str, float]:
    """CPU seconds of a fresh interpreter importing what each flow-run process imports."""
    import resource

    code = {
        "python -m prefect.runner._workspace_supervisor (imports)": (
            "import prefect.runner._workspace_supervisor"
        ),
        "python -m prefect.engine (imports + the ingest flow's module)": (
            "import sys; sys.path.insert(0, '.'); import prefect.engine, flows.ingest_submission"
        ),
    }
    costs = {}
    for label, source in code.items():
        spent = []
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(
                [sys.executable, "-c", source], env=env, cwd=ROOT, check=True, timeout=120
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            spent.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        costs[label] = min(spent)
    return costs


PROFILE = r"""
import json, os, resource, sys, time

def clock():
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime, time.perf_counter()

out, last = {}, clock()

def mark(name):
    global last
    now = clock()
    out[name] = [now[0] - last[0], now[1] - last[1]]
    last = clock()

import prefect.engine
sys.path.insert(0, os.environ["MOU_PROJECT_ROOT"])
from flows.ingest_submission import ingest_submission_flow
from mou.store.database import session_scope
from mou.intake.decide import ingest_submission
from mou.intake.record import record_submission
from mou.intake.decide import sandbox_limits
from mou.mail.delivery import deliver_pending
from mou.intake.receipts import enqueue_receipt
from mou.settings import get_settings
from mou.workbook.sandbox import default_sandbox
settings = get_settings()
mode, path = sys.argv[1:3]
with session_scope(settings) as session:
    data = open(path, "rb").read()
    submission_id = record_submission(session, settings, data, filename=path).submission_id
last = clock()
if mode == "flow":
    ingest_submission_flow(submission_id)
    default_sandbox(sandbox_limits(settings)).close()  # reaped: its CPU counts
    mark("flow")
else:
    with session_scope(settings) as session:
        ingest_submission(session, settings, submission_id)
    default_sandbox(sandbox_limits(settings)).close()
    mark("read (sandbox child started), validate, decide")
    with session_scope(settings) as session:
        enqueue_receipt(session, settings, submission_id)
    mark("receipt enqueued (summary PDF rendered)")
    deliver_pending(settings)
    mark("receipt sent (SMTP)")
print(json.dumps(out))
"""


def _profile(env: dict[str, str], spare: list[str]) -> dict[str, list[float]]:
    """Where one ingest run's CPU goes: two fresh processes with the workers' environment, one
    doing the steps of `process_submission` itself, one calling the flow (Prefect's engine in
    the process, as in a flow run's engine process)."""
    if len(spare) < 2:
        return {}
    out: dict[str, list[float]] = {}
    for mode, path in zip(("steps", "flow"), spare, strict=False):
        done = subprocess.run(
            [sys.executable, "-c", PROFILE, mode, path],
            env={**env, "PREFECT_LOGGING_LEVEL": "WARNING"},
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=300,
        )
        out.update(json.loads(done.stdout.decode().strip().splitlines()[-1]))
    steps = [v for k, v in out.items() if k != "flow"]
    if "flow" in out and steps:
        flow = out.pop("flow")
        out["Prefect's engine around them (the flow run, in-process, less the steps)"] = [
            flow[0] - sum(v[0] for v in steps),
            flow[1] - sum(v[1] for v in steps),
        ]
    return out


# --- the returns ----------------------------------------------------------------------------


@dataclass
class Return:
    instrument: str
    cycle_id: int
    state: str
    data: bytes
    sender: str | None
    filename: str
    spoilt: bool


def _generate(settings: Any, cycles: dict[str, int], count: int, errors_every: int) -> list:
    """`count` distinct returns, round robin over every (cycle, state), so each state sends
    several versions; every `errors_every`-th return carries two typical errors."""
    from sqlalchemy import select

    from mou.demo.synthetic import synthetic_return
    from mou.store import models as m
    from mou.store.database import session_scope

    pairs = []
    with session_scope(settings) as session:
        for instrument, cycle_id in cycles.items():
            for request in session.scalars(
                select(m.ReportRequest).filter_by(cycle_id=cycle_id).order_by(m.ReportRequest.id)
            ):
                authorities = {
                    a.kind: a.email
                    for a in request.state.authorities
                    if a.species_code is None and a.disabled_at is None
                }
                sender = authorities.get("focal_point") or authorities.get("focal_ministry")
                pairs.append((instrument, cycle_id, request.state.code, sender))
    returns = []
    for number in range(count):
        instrument, cycle_id, state, sender = pairs[number % len(pairs)]
        version = number // len(pairs) + 1
        spoilt = errors_every > 0 and number % errors_every == errors_every - 1
        made = synthetic_return(
            settings,
            cycle_id,
            state,
            random.Random(f"distributed:{instrument}:{state}:{version}"),
            errors=2 if spoilt else 0,
        )
        returns.append(
            Return(
                instrument,
                cycle_id,
                state,
                made.data,
                sender,
                f"{instrument}-{state}-v{version}.xlsx",
                spoilt,
            )
        )
    if len({r.data for r in returns}) != len(returns):
        raise RuntimeError("two generated returns have the same bytes")
    return returns


# --- the run --------------------------------------------------------------------------------


@dataclass
class Run:
    count: int
    limit: int
    query_seconds: float
    engine_command: bool
    setup: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    import_cost: dict[str, float] = field(default_factory=dict)
    profile: dict[str, list[float]] = field(default_factory=dict)
    error: str = ""


def _environments(tmp: Path, prefect_db: str, project_db: str, smtp_port: int, api: str):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MOU_"))}
    server_env = {
        **base,
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}"
        ),
    }
    worker_env = {
        **base,
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_PROMPT": "false",
        "MOU_PROJECT_ROOT": str(ROOT),
        "MOU_DATABASE_URL": f"{PG_SERVER}/{project_db}",
        "MOU_VAR_DIR": str(tmp / "var"),
        "MOU_SMTP_HOST": "127.0.0.1",
        "MOU_SMTP_PORT": str(smtp_port),
    }
    return server_env, worker_env


def _cli(args: list[str], env: dict[str, str], log: Path) -> float:
    started = time.perf_counter()
    with log.open("ab") as out:
        subprocess.run(
            [str(BIN / "prefect"), *args],
            env=env,
            cwd=ROOT,
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    return time.perf_counter() - started


def _run(tmp: Path, run: Run, timeout: float, errors_every: int) -> None:
    from mou.catalogue.bootstrap import prepare_database
    from mou.service.protocol import open_and_dispatch
    from mou.settings import Settings
    from mou.store.database import engine_for

    tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    prefect_db, project_db = f"mou_bench_prefect_{tag}", f"mou_bench_project_{tag}"
    created: list[str] = []
    sink = Sink()
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in LOGS.glob("*.log"):
        old.unlink()
    try:
        for name in (prefect_db, project_db):
            _pg(f'CREATE DATABASE "{name}"')
            created.append(name)
        smtp_port = sink.start()
        port = _free_port()
        api = f"http://127.0.0.1:{port}/api"
        server_env, worker_env = _environments(tmp, prefect_db, project_db, smtp_port, api)
        settings = Settings(
            var_dir=tmp / "var",
            database_url=f"{PG_SERVER}/{project_db}",
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
        )
        started = time.perf_counter()
        prepare_database(settings)
        cycles = {}
        for instrument, period in CYCLES:
            deadline = dt.date.today() + dt.timedelta(days=120)
            cycles[instrument] = open_and_dispatch(settings, instrument, period, deadline).cycle_id
        run.setup["project database, cycles opened, requests sent"] = time.perf_counter() - started
        started = time.perf_counter()
        returns = _generate(settings, cycles, run.count + 2, errors_every)
        returns, spare = returns[: run.count], returns[run.count :]
        for number, item in enumerate(spare):
            (tmp / f"spare-{number}.xlsx").write_bytes(item.data)
        run.setup[f"{run.count} returns generated"] = time.perf_counter() - started
        run.figures["size"] = statistics.median(len(r.data) for r in returns)
        run.import_cost = _import_cost(worker_env)

        cluster = Cluster(LOGS)
        try:
            _drain(run, cluster, port, server_env, worker_env, settings, returns, timeout)
        finally:
            try:
                if cluster.sampler is not None:
                    cluster.sampler.stop()
            finally:
                cluster.stop()
    finally:
        run.figures["sink"] = sink.counts()
        with contextlib.suppress(Exception):
            sink.stop()
        with contextlib.suppress(Exception):
            engine_for(f"{PG_SERVER}/{project_db}").dispose()
        for name in created:
            try:
                _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # say so, and go on dropping the other
                print(f"could not drop database {name}: {exc}", file=sys.stderr)


def _drain(
    run: Run,
    cluster: Cluster,
    port: int,
    server_env: dict[str, str],
    worker_env: dict[str, str],
    settings: Any,
    returns: list[Return],
    timeout: float,
) -> None:
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from sqlalchemy import func, select

    from mou.service.prefect_server import wait_healthy
    from mou.service.protocol import receive_file
    from mou.store import models as m
    from mou.store.database import session_scope

    api = f"http://127.0.0.1:{port}/api"
    started = time.perf_counter()
    server = cluster.start(
        "server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        server_env,
    )
    wait_healthy(api, 180, server)
    run.setup["Prefect server on PostgreSQL healthy"] = time.perf_counter() - started
    cli_log = LOGS / "cli.log"
    run.setup["work pool created"] = _cli(
        ["work-pool", "create", POOL, "--type", "process"], worker_env, cli_log
    )
    if run.engine_command:
        pool = _api(api, f"/work_pools/{POOL}")
        template = pool["base_job_template"]
        template["variables"]["properties"]["command"]["default"] = (
            f"{sys.executable} -m prefect.engine"
        )
        _api(api, f"/work_pools/{POOL}", {"base_job_template": template}, method="PATCH")
    run.setup["prefect deploy --all"] = _cli(
        ["--no-prompt", "deploy", "--all"], worker_env, cli_log
    )
    started = time.perf_counter()
    limit = ["--limit", str(run.limit)] if run.limit else []
    workers = {}
    env = {**worker_env, "PREFECT_WORKER_QUERY_SECONDS": str(run.query_seconds)}
    for n in (1, 2):
        name = f"worker-{n}"
        args = ["worker", "start", "--pool", POOL, "--name", name, *limit]
        workers[name] = cluster.start(name, [str(BIN / "prefect"), *args], env).pid

    def online() -> bool:
        found = _api(api, f"/work_pools/{POOL}/workers/filter", {})
        return sum(1 for w in found if w.get("status") == "ONLINE") >= 2

    _wait("two workers online", online, 120, cluster)
    _wait(
        "the deployments' triggers",
        lambda: len(_api(api, "/automations/filter", {})) >= 2,
        60,
        cluster,
    )
    # The schedules' first runs (sweep, deliver-outbox) come with the deployments: let them
    # finish so the burst meets a quiet cluster.
    _wait("no flow run in flight", lambda: not _in_flight(api), 300, cluster, step=1)
    run.setup["two workers online, first scheduled runs done"] = time.perf_counter() - started

    sampler = Sampler(workers)
    cluster.sampler = sampler
    sampler.start()
    load_before = os.getloadavg()
    cpu_before = _cpu_snapshot(cluster)
    t0 = time.monotonic()
    wall0 = dt.datetime.now(dt.UTC)
    ids: list[int] = []
    with temporary_settings(updates={PREFECT_API_URL: api}):
        for item in returns:
            submission_id, new = receive_file(
                settings, item.data, filename=item.filename, sender=item.sender, channel="email"
            )
            if not new:
                raise RuntimeError(f"{item.filename} was recorded before")
            ids.append(submission_id)
        burst = time.monotonic() - t0
        EventsWorker.drain_all(timeout=60)
    run.figures["burst"] = burst
    progress: list[tuple[float, int]] = []

    def decided() -> bool:
        with session_scope(settings) as session:
            waiting = session.scalar(
                select(func.count()).select_from(m.Submission).filter_by(status="received")
            )
        progress.append((time.monotonic() - t0, len(ids) - (waiting or 0)))
        return waiting == 0

    _wait(f"{len(ids)} submissions decided", decided, timeout, cluster, step=0.5)
    run.figures["decided_seen"] = time.monotonic() - t0

    def receipts_sent() -> bool:
        with session_scope(settings) as session:
            sent = session.scalar(
                select(func.count())
                .select_from(m.OutboxMessage)
                .filter_by(kind="receipt", status="sent")
            )
        return (sent or 0) >= len(ids)

    _wait("every receipt sent", receipts_sent, 300, cluster, step=0.5)
    run.figures["receipts_seen"] = time.monotonic() - t0
    _wait("no flow run in flight", lambda: not _in_flight(api), 600, cluster, step=1)
    run.figures["quiet"] = time.monotonic() - t0
    cpu_after = _cpu_snapshot(cluster)
    load_after = os.getloadavg()
    sampler.stop()
    run.cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
    run.figures.update(
        t0=t0,
        wall0=wall0,
        ids=ids,
        progress=progress,
        load_before=load_before,
        load_after=load_after,
    )
    _collect(run, api, settings, returns, ids, sampler)
    spare = sorted(str(p) for p in settings.var_dir.parent.glob("spare-*.xlsx"))
    run.profile = _profile(worker_env, spare)


def _collect(
    run: Run, api: str, settings: Any, returns: list[Return], ids: list[int], sampler: Sampler
) -> None:
    """Everything the report needs, from the project database and the Prefect API."""
    from sqlalchemy import func, select

    from mou.store import models as m
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        subs = session.scalars(select(m.Submission).order_by(m.Submission.id)).all()
        rows = [
            {
                "id": s.id,
                "status": s.status,
                "cycle": s.cycle_id,
                "state": s.state_id,
                "version": s.version,
                "superseded_by": s.superseded_by_id,
                "received": _utc(s.received_at),
                "decided": _utc(s.decided_at),
                "attempts": s.ingest_attempts,
            }
            for s in subs
        ]
        answers = dict(
            session.execute(
                select(m.Answer.submission_id, func.count()).group_by(m.Answer.submission_id)
            ).all()
        )
        issues = session.execute(
            select(
                m.ValidationIssue.submission_id,
                m.ValidationIssue.severity,
                m.ValidationIssue.code,
                m.ValidationIssue.field_key,
                m.ValidationIssue.sheet,
                m.ValidationIssue.cell,
            )
        ).all()
        outbox = session.execute(
            select(
                m.OutboxMessage.key,
                m.OutboxMessage.kind,
                m.OutboxMessage.submission_id,
                m.OutboxMessage.status,
                m.OutboxMessage.message_id,
                m.OutboxMessage.sent_at,
            )
        ).all()
    deployments = {d["id"]: d["name"] for d in _api(api, "/deployments/filter", {"limit": 200})}
    runs = _flow_runs(api)
    for flow_run in runs:
        flow_run["deployment"] = deployments.get(flow_run.get("deployment_id"), "-")
    ingest = [r for r in runs if r["deployment"] == "ingest-submission"]
    for flow_run in ingest:
        history = _api(api, f"/flow_run_states/?flow_run_id={flow_run['id']}")
        flow_run["history"] = {
            state["type"]: _when(state["timestamp"])
            for state in sorted(history, key=lambda s: s["timestamp"], reverse=True)
        }
    run.figures.update(rows=rows, runs=runs, outbox=outbox, sampler=sampler)
    _check(run, returns, ids, rows, answers, issues, outbox, runs)


def _check(run, returns, ids, rows, answers, issues, outbox, runs) -> None:
    checks = run.checks
    by_id = {r["id"]: r for r in rows}
    expected = {
        i: ("rejected" if r.spoilt else "accepted") for i, r in zip(ids, returns, strict=True)
    }
    checks.append(
        (
            "one submission row per return, all decided",
            sorted(by_id) == sorted(ids) and all(r["decided"] for r in rows),
            f"{len(rows)} rows for {len(ids)} returns",
        )
    )
    wrong = [i for i in ids if by_id.get(i, {}).get("status") != expected[i]]
    statuses = Counter(r["status"] for r in rows)
    checks.append(
        (
            "decisions as expected (spoilt returns rejected, the others accepted)",
            not wrong,
            ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
            + (f"; unexpected: {wrong[:10]}" if wrong else ""),
        )
    )
    attempts = Counter(r["attempts"] for r in rows)
    checks.append(
        (
            "exactly one decision per submission (ingest_attempts = 1)",
            set(attempts) == {1},
            ", ".join(f"{k}: {v}" for k, v in sorted(attempts.items())),
        )
    )
    versions: dict[tuple, list[int]] = defaultdict(list)
    for r in rows:
        versions[(r["cycle"], r["state"])].append(r["version"])
    sent_per_pair = Counter((r.cycle_id, r.state) for r in returns)
    gaps = [k for k, v in versions.items() if sorted(v) != list(range(1, len(v) + 1))]
    checks.append(
        (
            "versions per (cycle, state) are 1..n, no gap, no duplicate",
            not gaps and len(versions) == len(sent_per_pair),
            f"{len(versions)} (cycle, state) pairs,"
            f" {min(map(len, versions.values()), default=0)}"
            f"–{max(map(len, versions.values()), default=0)} versions each",
        )
    )
    bad = []
    for key in versions:
        accepted = [
            r for r in rows if (r["cycle"], r["state"]) == key and r["status"] == "accepted"
        ]
        current = [r["id"] for r in accepted if r["superseded_by"] is None]
        if accepted and current != [max(r["id"] for r in accepted)]:
            bad.append(key)
        if any(r["superseded_by"] is not None and r["superseded_by"] <= r["id"] for r in accepted):
            bad.append(key)
    checks.append(
        (
            "one current return per (cycle, state): the latest received accepted one",
            not bad,
            f"{sum(1 for r in rows if r['superseded_by'])} superseded",
        )
    )
    missing = [r["id"] for r in rows if r["status"] == "accepted" and not answers.get(r["id"])]
    stray = [i for i in answers if by_id.get(i, {}).get("status") != "accepted"]
    doubled = [k for k, n in Counter(issues).items() if n > 1]
    checks.append(
        (
            "answers stored for accepted returns only; no validation issue twice",
            not missing and not stray and not doubled,
            f"{sum(answers.values())} answers, {len(issues)} issues",
        )
    )
    receipts = [o for o in outbox if o.kind == "receipt"]
    keys = Counter(o.key for o in receipts)
    checks.append(
        (
            "one receipt per submission in the outbox (unique keys), all sent",
            sorted(o.submission_id for o in receipts) == sorted(ids)
            and max(keys.values(), default=0) == 1
            and {o.key for o in receipts} == {f"receipt:{i}" for i in ids}
            and all(o.status == "sent" for o in receipts),
            f"{len(receipts)} receipts: "
            + ", ".join(f"{k} {v}" for k, v in Counter(o.status for o in receipts).items()),
        )
    )
    run.figures["receipt_ids"] = {o.message_id for o in receipts}
    ingest = [r for r in runs if r["deployment"] == "ingest-submission"]
    per_submission = Counter(int(r["parameters"].get("submission_id")) for r in ingest)
    checks.append(
        (
            "one ingest-submission flow run per received event",
            set(per_submission) == set(ids) and set(per_submission.values()) == {1},
            f"{len(ingest)} ingest runs for {len(ids)} submissions",
        )
    )
    bad_states = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
    checks.append(
        (
            "no flow run failed or crashed",
            not bad_states,
            ", ".join(f"{r['deployment']} {r['state_name']}" for r in bad_states[:10]) or "none",
        )
    )


def _sink_checks(run: Run) -> None:
    sink: Counter[str] = run.figures.get("sink") or Counter()
    receipt_ids = run.figures.get("receipt_ids", set())
    run.checks.append(
        (
            "every receipt reached the SMTP relay exactly once; no email twice",
            bool(receipt_ids)
            and all(sink.get(i) == 1 for i in receipt_ids)
            and max(sink.values(), default=0) == 1,
            f"{sum(sink.values())} emails received, {len(sink)} distinct Message-IDs",
        )
    )


# --- report ---------------------------------------------------------------------------------


def _seconds(values: list[float]) -> str:
    if not values:
        return "- | - | - |"
    return (
        f"{statistics.median(values):.2f} s | {_percentile(values, 0.95):.2f} s |"
        f" {max(values):.2f} s |"
    )


def _figures(run: Run) -> dict[str, Any]:
    """The derived figures of one run."""
    f = run.figures
    out: dict[str, Any] = {}
    rows = f.get("rows", [])
    runs = f.get("runs", [])
    ids = set(f.get("ids", []))
    mine = [r for r in rows if r["id"] in ids and r["decided"]]
    first = min((r["received"] for r in mine), default=None)
    last = max((r["decided"] for r in mine), default=None)
    out["drain"] = (last - first).total_seconds() if first and last else float("nan")
    out["throughput"] = run.count / out["drain"] if out["drain"] else float("nan")
    out["per_return"] = [(r["decided"] - r["received"]).total_seconds() for r in mine]
    decided = sorted((r["decided"] - first).total_seconds() for r in mine) if first else []
    out["decided_times"] = decided
    n = len(decided)
    lo, hi = (decided[n // 10], decided[(9 * n) // 10 - 1]) if n >= 10 else (0.0, 0.0)
    out["steady"] = ((9 * n) // 10 - n // 10 - 1) / (hi - lo) if hi > lo else float("nan")
    receipts = [_utc(o.sent_at) for o in f.get("outbox", []) if o.kind == "receipt" and o.sent_at]
    out["receipts_done"] = (max(receipts) - first).total_seconds() if receipts and first else None

    # Where each ingest run's time went (state history from the API).
    by_sub = {
        int(r["parameters"]["submission_id"]): r
        for r in runs
        if r["deployment"] == "ingest-submission"
    }
    parts: dict[str, list[float]] = {label: [] for label in PARTS}
    by_sweep = 0
    for r in mine:
        flow_run = by_sub.get(r["id"])
        if not flow_run:
            by_sweep += 1
            continue
        history = flow_run.get("history", {})
        created = _when(flow_run["created"])
        pending, running = history.get("PENDING"), history.get("RUNNING")
        end = _when(flow_run.get("end_time"))
        if created:
            parts[PARTS[0]].append((created - r["received"]).total_seconds())
        if created and pending:
            parts[PARTS[1]].append((pending - created).total_seconds())
        if pending and running:
            parts[PARTS[2]].append((running - pending).total_seconds())
        if running and r["decided"] < running:
            by_sweep += 1
            continue
        if running:
            parts[PARTS[3]].append((r["decided"] - running).total_seconds())
        if end:
            parts[PARTS[4]].append((end - r["decided"]).total_seconds())
    out["parts"], out["by_sweep"] = parts, by_sweep
    created = [_when(r["created"]) for r in by_sub.values() if r.get("created")]
    span = (max(created) - first).total_seconds() if created and first else 0.0
    out["trigger_rate"] = len(created) / span if span > 0 else float("nan")
    out["sweep_runs"] = sum(
        1
        for r in runs
        if r["deployment"] == "sweep"
        and first
        and last
        and (start := _when(r.get("start_time"))) is not None
        and first <= start <= last
    )

    sampler: Sampler | None = f.get("sampler")
    out["per_process"], out["split"], out["concurrency"] = {}, "", ""
    if sampler is not None:
        deployment_of = {r["id"]: r["deployment"] for r in runs}
        per: dict[str, list[RunProcess]] = defaultdict(list)
        workers: Counter[str] = Counter()
        for seen in sampler.runs.values():
            name = deployment_of.get(seen.flow_run_id, "?")
            per[name].append(seen)
            if name == "ingest-submission":
                workers[seen.worker] += 1
        out["per_process"] = dict(per)
        out["split"] = ", ".join(f"{k} {v}" for k, v in sorted(workers.items()))
        until = f.get("t0", 0.0) + f.get("decided_seen", float("inf"))
        during = [c for t, c in sampler.concurrency if t <= until]
        if during:
            out["concurrency"] = (
                f"mean {statistics.mean(during):.1f}, max {max(during)}"
                f" (sampled every {sampler.step} s)"
            )
    ingest = out["per_process"].get("ingest-submission", [])
    out["ingest_cpu"] = statistics.median(s.cpu for s in ingest) if ingest else float("nan")
    out["supervisor_cpu"] = (
        statistics.median(s.supervisor_cpu for s in ingest) if ingest else float("nan")
    )
    out["rss_p50"] = statistics.median(s.rss for s in ingest) if ingest else 0

    cpu = run.cpu
    out["capacity"] = cpu.get("wall", 0.0) * (os.cpu_count() or 1)
    cluster = sum(cpu.get(k, 0.0) for k in CLUSTER)
    out["cluster_per_return"] = cluster / run.count if cpu else float("nan")
    out["share"] = 100 * cluster / out["capacity"] if out["capacity"] else float("nan")
    out["ceiling"] = (os.cpu_count() or 1) / out["cluster_per_return"] if cpu else float("nan")
    return out


PARTS = (
    "recorded → ingest flow run created (event → automation → run)",
    "created → Pending (waiting for a free worker slot, then its poll)",
    "Pending → Running (process start(s), imports, pull step, flow loaded)",
    "Running → submission decided (read, validate, decide)",
    "decided → run ended (receipt with its PDF, SMTP, outcome event, engine exit)",
)
CLUSTER = ("flow-run processes", "workers", "Prefect server", "PostgreSQL (whole server)")
STEP_DECIDE = "read (sandbox child started), validate, decide"
STEP_RECEIPT = "receipt enqueued (summary PDF rendered)"
STEP_SMTP = "receipt sent (SMTP)"
STEP_PREFECT = "Prefect's engine around them (the flow run, in-process, less the steps)"
IMPORT_SUPERVISOR = "python -m prefect.runner._workspace_supervisor (imports)"
IMPORT_ENGINE = "python -m prefect.engine (imports + the ingest flow's module)"


def _configuration(run: Run) -> str:
    limit = f"`--limit {run.limit}` per worker" if run.limit else "no limit"
    command = (
        "pool job command `python -m prefect.engine` (no supervisor)"
        if run.engine_command
        else "pool job command as created (workspace supervisor, then the engine)"
    )
    return f"{limit}, poll {run.query_seconds:g} s, {command}"


def _report(runs: list[Run], load_start: tuple, load_end: tuple, args: argparse.Namespace) -> str:
    from importlib.metadata import version

    run = runs[0]
    f = run.figures
    g = _figures(run)
    per_return = g["per_return"]
    breakdown = "\n".join(f"| {label} | {_seconds(v)}" for label, v in g["parts"].items())
    states: dict[str, Counter[str]] = defaultdict(Counter)
    for flow_run in f.get("runs", []):
        states[flow_run["deployment"]][flow_run["state_name"]] += 1
    state_rows = "\n".join(
        f"| {name} | {sum(c.values())} | {', '.join(f'{k} {v}' for k, v in sorted(c.items()))} |"
        for name, c in sorted(states.items())
    )
    process_rows = "\n".join(
        f"| {name} | {len(items)} |"
        f" {statistics.median(s.supervisor_cpu for s in items):.2f} s |"
        f" {statistics.median(s.cpu - s.supervisor_cpu for s in items):.2f} s |"
        f" {statistics.median(s.cpu for s in items):.2f} s |"
        f" {sum(s.cpu for s in items):.0f} s |"
        f" {statistics.median(s.rss for s in items) / 2**20:.0f} /"
        f" {max(s.rss for s in items) / 2**20:.0f} MiB |"
        for name, items in sorted(g["per_process"].items())
    )
    cpu, capacity = run.cpu, g["capacity"]
    ours = [*CLUSTER, "this benchmark process"]
    rest = cpu.get("machine", 0.0) - sum(cpu.get(k, 0.0) for k in ours)
    cpu_rows = ""
    if capacity:
        cpu_rows = "\n".join(
            f"| {k} | {cpu.get(k, 0.0):.0f} s | {cpu.get(k, 0.0) / run.count:.2f} s |"
            f" {100 * cpu.get(k, 0.0) / capacity:.0f} % |"
            for k in ours
        )
        cpu_rows += (
            f"\n| everything else on the machine (other work) | {rest:.0f} s | |"
            f" {100 * rest / capacity:.0f} % |"
            f"\n| **machine, all cores** | **{cpu.get('machine', 0.0):.0f} s** | |"
            f" **{100 * cpu.get('machine', 0.0) / capacity:.0f} %** |"
        )
    imports = "\n".join(f"| {k} | {v:.2f} s |" for k, v in run.import_cost.items())
    profile = "\n".join(f"| {k} | {c:.2f} s | {w:.2f} s |" for k, (c, w) in run.profile.items())
    checks = "\n".join(
        f"| {name} | {'yes' if ok else '**NO**'} | {detail} |" for name, ok, detail in run.checks
    )
    all_ok = bool(run.checks) and all(ok for _, ok, _ in run.checks) and not run.error
    decided_times = g["decided_times"]
    n = len(decided_times)
    marks = sorted({max(1, n * k // 10) for k in range(1, 11)}) if n else []
    progress = " | ".join(f"{k}: {decided_times[k - 1]:.0f} s" for k in marks)
    setup = ", ".join(f"{k} {v:.0f} s" for k, v in run.setup.items())
    versions = ", ".join(
        f"{name} {version(name)}"
        for name in ("prefect", "sqlalchemy", "psycopg", "asyncpg", "openpyxl")
    )
    command = " ".join(["python -m benchmarks.distributed", *(args.argv or [])])
    sink: Counter[str] = f.get("sink") or Counter()
    compare = ""
    if len(runs) > 1:
        lines = []
        for other in runs:
            h = _figures(other)
            job = "`python -m prefect.engine`" if other.engine_command else "as created"
            lines.append(
                f"| {job} | {h['drain']:.0f} s | {h['throughput']:.2f}/s |"
                f" {_percentile(h['per_return'], 0.5):.0f} s |"
                f" {h['ingest_cpu']:.2f} s | {h['cluster_per_return']:.2f} s |"
                f" {h['share']:.0f} % | {h['ceiling']:.2f}/s |"
                f" {'yes' if other.checks and all(c[1] for c in other.checks) else '**NO**'} |"
            )
        compare = (
            "\nThe same burst, each configuration on a fresh cluster and fresh databases:\n\n"
            "| pool job command | drain | throughput | recorded → decided p50 |"
            " ingest process CPU p50 | cluster CPU per return | cluster's share of the"
            " machine | ceiling on 2 idle cores | checks |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(lines) + "\n"
        )
    errors = "".join(f"\n**A run failed: {r.error}**\n" for r in runs if r.error)
    return f"""# Distributed benchmark: two process workers on PostgreSQL

{run.count} distinct filled returns (Bukhara deer 2025-2026 and CAMI 2024-2026: the templates
each range state received, filled by `mou.demo.synthetic`, round robin over the 19 (cycle, state)
pairs so every state sends several versions and each new one supersedes the last; every
{args.errors_every}th one spoilt by two typical errors, so rejected; median
{f.get("size", 0) / 1024:.0f} KiB) recorded and announced at once with
`mou.service.protocol.receive_file` (as the inbox, the mail reader and the portal do: the row is
committed, then one `mou.submission.received` event), then drained by the deployments of
prefect.yaml (`prefect deploy --all`) on a `process` work pool served by two
`prefect worker start --pool mou`. Prefect server and project database on PostgreSQL
{_pg_version()} (127.0.0.1, same machine, two databases created for the run and dropped
after); receipts to an SMTP sink (aiosmtpd). Produced by `{command}`.

Workers: {_configuration(run)}. The poll of 1 s is what `mou.service.prefect_server` and
tests/e2e/test_distributed.py give their workers (Prefect's default is 10 s); the limit keeps
a burst from starting a process per run at once (see below).
{errors}
| figure | value |
| --- | --- |
| returns recorded and announced (the burst) | {f.get("burst", float("nan")):.1f} s |
| **first recorded → last decided (drain wall time)** | **{g["drain"]:.1f} s** |
| **throughput** | **{g["throughput"]:.2f} returns/s** ({3600 * g["throughput"]:.0f}/h) |
| steady rate (between the 10th and the 90th percentile decision) | {g["steady"]:.2f} returns/s |
| first recorded → last receipt sent | {
        f"{g['receipts_done']:.1f} s" if g["receipts_done"] else "-"
    } |
| **per return, recorded → decided: p50 / p95 / max** | **{_percentile(per_return, 0.5):.1f} s** / {
        _percentile(per_return, 0.95):.1f} s / {max(per_return, default=float("nan")):.1f} s |
| flow-run processes at once | {g["concurrency"] or "-"} |
| ingest runs per worker | {g["split"] or "-"} |
| decided by something other than its own ingest run (the sweep) | {g["by_sweep"]} |
{compare}
Decisions over time (k-th decision: seconds after the first return was recorded):
{progress}

Correctness: {"**all checks passed**" if all_ok else "**FAILED**"}.

| check | passed | detail |
| --- | --- | --- |
{checks}
| every email (the 19 requests and the receipts) received by the SMTP sink once | {
        "yes" if max(sink.values(), default=0) == 1 else "**NO**"
    } | {sum(sink.values())} emails, {len(sink)} Message-IDs |

Flow runs in the Prefect API at the end, by deployment and state (Scheduled: the schedules'
future runs; Cancelled: consolidate-cycle runs refused by its concurrency limit of 1 with
CANCEL_NEW while another one ran, as intended):

| deployment | runs | states |
| --- | --- | --- |
{state_rows}

## Where the time goes

Each ingest run, from its state history in the Prefect API (p50, p95, max over the returns;
the submission's received_at / decided_at from the project database, same clock):

| step | p50 | p95 | max |
| --- | --- | --- | --- |
{breakdown}

CPU seconds from the first return recorded until the cluster was quiet again
({cpu.get("wall", 0.0):.0f} s wall, {os.cpu_count()} cores = {capacity:.0f} CPU-seconds), per
process tree (utime + stime from /proc, reaped children included):

| who | CPU | per return | share of the machine |
| --- | --- | --- | --- |
{cpu_rows}

Per flow-run process (sampled every 0.25 s from /proc, so the last fraction of a second of
each process is missed). With the pool's job template as created, the process a worker starts
is the workspace supervisor (`python -m prefect.runner._workspace_supervisor`: imports Prefect,
reads the flow run and deployment, runs the pull step), which then execs
`python -m prefect.engine` in the same pid (imports Prefect again and the flow's module, runs
the flow, whose sandbox child is a third interpreter). Peak RSS: the process and its sandbox
child together, largest sample.

| deployment | runs | supervisor CPU p50 | engine CPU p50 | CPU p50 | CPU sum | peak RSS p50, max |
| --- | --- | --- | --- | --- | --- | --- |
{process_rows}

A fresh interpreter importing the same, on this machine during the run's setup (best of three,
CPU seconds):

| import | CPU |
| --- | --- |
{imports}

One ingest run's own work, after the drain, in fresh processes with the workers' environment
(after the imports; every cache cold, as in a flow run's process; CPU of the process and of
the children it reaped, the sandbox child included):

| step | CPU | wall |
| --- | --- | --- |
{profile}

{_bound_text(runs, g)}

## Setup (not counted)

{setup}. Server, worker and CLI logs of the last run are left in {LOGS}.

- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC
- CPU: {_cpu()} ({os.cpu_count()} logical CPUs); {platform.system()} {platform.release()}
- Python {platform.python_version()}; {versions}
- Load average (1, 5, 15 min) at start {_load(load_start)}, before the burst {
        _load(f.get("load_before"))
    }, after the drain {_load(f.get("load_after"))}, at the end {_load(load_end)}.
  The machine has 2 cores and was shared with other work during the run: the figures are
  what this run got, not what an idle machine would give. The CPU table's "everything else"
  row says how much went to other work; "ceiling on 2 idle cores" is 2 / (cluster CPU per
  return).
"""


def _bound_text(runs: list[Run], g: dict[str, Any]) -> str:
    run = runs[0]
    cpu, profile, imports = run.cpu, run.profile, run.import_cost
    per = {k: cpu.get(k, 0.0) / run.count for k in CLUSTER}
    starts = imports.get(IMPORT_SUPERVISOR, 0.0) + imports.get(IMPORT_ENGINE, 0.0)
    work = sum(profile.get(k, [0.0])[0] for k in (STEP_DECIDE, STEP_RECEIPT, STEP_SMTP))
    wait = g["parts"][PARTS[1]]
    backend = per["Prefect server"] + per["PostgreSQL (whole server)"]
    variant = next((r for r in runs if r.engine_command and not run.engine_command), None)
    measured = ""
    if variant is not None:
        h = _figures(variant)
        measured = (
            f" Measured above: {h['ingest_cpu']:.2f} CPU-seconds per ingest process instead"
            f" of {g['ingest_cpu']:.2f} (the engine now does the supervisor's reading of the"
            f" deployment and pull step itself), {h['cluster_per_return']:.2f} instead of"
            f" {g['cluster_per_return']:.2f} per return for the cluster: a ceiling of"
            f" {h['ceiling']:.2f}/s instead of {g['ceiling']:.2f}/s. Its drain took"
            f" {h['drain']:.0f} s against {g['drain']:.0f} s because other work left the cluster"
            f" {h['share']:.0f} % of the machine instead of {g['share']:.0f} %: on this shared"
            " machine, compare CPU per return, not wall time."
        )
    return f"""**What bounds throughput: CPU, most of it spent starting Python processes.** Each
return cost {g["cluster_per_return"]:.2f} CPU-seconds across the cluster:
{per["flow-run processes"]:.2f} s in flow-run processes (its ingest run, plus its share of the
consolidate and deliver runs), {per["Prefect server"]:.2f} s in the Prefect server,
{per["PostgreSQL (whole server)"]:.2f} s in PostgreSQL, {per["workers"]:.2f} s in the workers.
At that cost 2 idle cores drain at most {g["ceiling"]:.2f} returns/s; this run's cluster got
{g["share"]:.0f} % of the machine (other work had the rest) and drained
{g["throughput"]:.2f}/s. Of a median ingest process's {g["ingest_cpu"]:.2f} CPU-seconds, about
{starts:.1f} s is two interpreters starting and importing Prefect (the supervisor
{imports.get(IMPORT_SUPERVISOR, 0.0):.2f} s, the engine with the flow's modules
{imports.get(IMPORT_ENGINE, 0.0):.2f} s; the sandbox child is a third, lighter one), while the
return's own work (read, validate, decide, the receipt with its summary PDF, SMTP) is
{work:.2f} s, and Prefect's engine around the flow {profile.get(STEP_PREFECT, [0.0])[0]:.2f} s.

Not the bound:
- the worker poll ({run.query_seconds:g} s): runs wait in Scheduled for a free slot (created →
  Pending p50 {_percentile(wait, 0.5):.0f} s) because every slot is busy on a saturated CPU;
- the trigger: the server turned the burst's events into flow runs at
  {g["trigger_rate"]:.1f} runs/s (recorded → run created p50
  {_percentile(g["parts"][PARTS[0]], 0.5):.1f} s, max {max(g["parts"][PARTS[0]], default=0):.0f}
  s), far ahead of the workers; for a single return it is under a second (benchmarks/
  RESULTS-latency.md);
- the Prefect server and PostgreSQL: {backend:.2f} CPU-seconds per return together, busy but
  not saturated;
- the slots: more per worker would share the same CPU among more processes (a longer Pending
  → Running), not add any. No limit at all, as prefect.yaml's header starts the workers, would
  start a process for every run of the burst at once (each about
  {g["rss_p50"] / 2**20:.0f} MiB resident with its sandbox child here).

{_sweep_text(g)}

What would raise it, most first:

1. **Pay the process start once per burst, not once per return.** An ingest run that, after
   its own submission, goes on deciding the other waiting ones (oldest first, as the sweep
   does, until none is left), with the ingest-submission deployment given a concurrency limit
   and CANCEL_NEW as consolidate-cycle has, so the surplus runs of a burst are cancelled by
   the server before any process starts (the Cancelled consolidate-cycle runs above cost no
   process). The conditional update in `mou.intake.decide._decide` already makes two deciders safe;
   the sweep covers a return whose run was cancelled just as the last drainer finished. Per
   return the cost would fall towards its own work ({work:.2f} CPU-seconds here; see
   benchmarks/RESULTS-intake.md for the read, validate and decide path without Prefect).
2. **One process per flow run instead of two**: a job command of `python -m prefect.engine`
   (the pool's base job template, or `job_variables: {{command: ...}}` per deployment in
   prefect.yaml) skips the workspace supervisor, whose interpreter and imports cost about
   {g["supervisor_cpu"]:.2f} CPU-seconds per run.{measured}
3. **More cores or machines**: workers scale out (two workers never decided a return twice,
   above), and the server and PostgreSQL have room.
"""


def _sweep_text(g: dict[str, Any]) -> str:
    if g["sweep_runs"] == 0:
        return (
            "The sweep did not take part: its scheduled runs queue in the pool behind the"
            " burst's ingest runs, scheduled earlier, so none started during the drain"
            f" ({g['by_sweep']} returns decided by anything but their own ingest run)."
        )
    return (
        f"{g['sweep_runs']} sweep runs started during the drain; {g['by_sweep']} returns were"
        " decided by something other than their own ingest run (the sweep)."
    )


def _load(values: tuple | None) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "-"


def _pg_version() -> str:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=5) as connection:
            row = connection.execute("show server_version").fetchone()
            return str(row[0]).split()[0] if row else "?"
    except Exception:
        return "?"


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument(
        "--limit", type=int, default=4, help="flow runs at once per worker (0: no limit)"
    )
    parser.add_argument("--query-seconds", type=float, default=1.0)
    parser.add_argument("--errors-every", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=3600, help="for the drain, seconds")
    parser.add_argument(
        "--engine-command",
        action="store_true",
        help="set the pool's job command to `python -m prefect.engine` (no supervisor)",
    )
    parser.add_argument(
        "--compare-engine-command",
        action="store_true",
        help="then the same burst again with the job command `python -m prefect.engine`",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    runs = [Run(args.count, args.limit, args.query_seconds, args.engine_command)]
    if args.compare_engine_command and not args.engine_command:
        runs.append(Run(args.count, args.limit, args.query_seconds, True))
    # `timeout` or a kill sends SIGTERM: unwind through the finally blocks (processes, databases).
    signal.signal(signal.SIGTERM, _terminated)
    load_start = os.getloadavg()
    for run in runs:
        try:
            with tempfile.TemporaryDirectory(prefix="mou-distributed-") as tmp:
                _run(Path(tmp), run, args.timeout, args.errors_every)
            _sink_checks(run)
        except Exception as exc:
            run.error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
    load_end = os.getloadavg()
    text = _report(runs, load_start, load_end, args)
    args.results.write_text(text, encoding="utf-8")
    print(text)
    ok = all(not r.error and r.checks and all(c[1] for c in r.checks) for r in runs)
    first = runs[0]
    if not first.error:
        g = _figures(first)
        per_return = g["per_return"]
        passed = bool(first.checks) and all(c[1] for c in first.checks)
        record(
            "distributed",
            [
                Figure(
                    f"distributed: 2 process workers on PostgreSQL draining {first.count}"
                    " received events",
                    f"{g['throughput']:.2f} returns/s ({g['drain']:.0f} s; recorded → decided"
                    f" p50 {statistics.median(per_return):.0f} s)",
                    "",
                    "measured",
                ),
                Figure(
                    "distributed: duplicates (rows, decisions, versions, receipts, emails)",
                    "none: every check passed" if passed else "CHECKS FAILED",
                    "no duplicates",
                    "met" if passed else "not met",
                ),
            ],
            "python -m benchmarks.distributed " + " ".join(args.argv),
            args.results.name,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
