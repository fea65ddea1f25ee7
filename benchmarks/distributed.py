"""Distributed: two warm `mou worker` processes on PostgreSQL draining a burst of returns,
side by side with the single-process bulk intake on the same database server and cores.

One run, in order, on one machine:

1. **Single process.** benchmarks.intake's bulk path (2 processes, `record_submission` then
   `ingest_submission` per file, no receipts, no events) over the N files, on a PostgreSQL
   database created for it: returns/s and CPU-seconds per return (the processes with their
   sandbox children, and the database server).
2. **Distributed.** A Prefect server on PostgreSQL, the project database on PostgreSQL, two
   `mou worker --limit 2` (as the README starts them) and an SMTP sink (aiosmtpd) as relay. A
   receiver in its own process records the N files with `receive_file`, as a portal or mail
   reader does: each row committed, then one `mou.submission.received` event and a wake-up.
   Timed from the first row recorded to the last return decided (received_at and decided_at
   from the project database, one clock), then to the last receipt sent. CPU-seconds per
   return: the workers with their sandbox children, the Prefect server, the PostgreSQL
   server and the receiver, from /proc.
3. **Killed worker.** The same again on a fresh project database; a third of the way
   through, the worker holding a claim is killed (-9). Time to finish, and the checks.
4. **Idle.** The two warm workers with nothing to do for `--idle` seconds: CPU per hour.

Checks of each distributed run: one row per file, every return decided once
(`ingest_attempts` = 1), versions 1..n per state in the order received (a return whose claim
was lost to the kill may take none, if a later one was accepted first), one current return
per state, one receipt per submission in the outbox, every email at the sink once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import procstat
from benchmarks.intake import _create_pg, _drop_pg, _generate, _intake, _postgres_cpu
from benchmarks.summary import Figure, machine, record

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS-distributed.md"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
BIN = Path(sys.executable).parent
SECRET = "benchmark-distributed-" + "s" * 32  # one signing secret for every process of the run
LIMIT = 2  # decision drains per worker, as the README starts them
RECEIVER = """
import sys, time
from pathlib import Path
from mou.service.protocol import receive_file
from mou.service.tasks import flush_wakeups
from mou.settings import Settings
settings = Settings()
for name in sys.argv[1:]:
    path = Path(name)
    receive_file(settings, path.read_bytes(), filename=path.name,
                 sender=path.stem.split("-")[0] + "@example.org")
flush_wakeups()
"""


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _wait(what: str, check: Any, timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Cluster:
    tmp: Path
    api: str
    server: subprocess.Popen
    sink: Sink
    smtp_port: int
    prefect_env: dict[str, str]
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def env(self, project_db: str, var: Path) -> dict[str, str]:
        return {
            **self.prefect_env,
            "PREFECT_API_URL": self.api,
            "MOU_DATABASE_URL": f"{PG_SERVER}/{project_db}",
            "MOU_VAR_DIR": str(var),
            "MOU_SMTP_HOST": "127.0.0.1",
            "MOU_SMTP_PORT": str(self.smtp_port),
            "MOU_SECRET": SECRET,  # the files' signed identity was made with it
        }

    def start_workers(self, env: dict[str, str], tag: str) -> None:
        self.workers = []
        for n in (1, 2):
            log = self.tmp / f"worker-{tag}-{n}.log"
            with log.open("wb") as out:
                self.workers.append(
                    subprocess.Popen(
                        [str(BIN / "mou"), "worker", "--limit", str(LIMIT)],
                        env=env,
                        cwd=ROOT,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            self.logs.append(log)
        for log in self.logs[-2:]:
            _wait(f"{log.name} subscribed", lambda log=log: b"Subscribing" in log.read_bytes(), 120)

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def _cpu(cluster: Cluster, settings: Any, receiver: float = 0.0) -> dict[str, float]:
    table = procstat.table()
    children = procstat.children(table)
    workers = sum(
        procstat.tree_cpu(w.pid, table, children) for w in cluster.workers if w.pid in table
    )
    return {
        "workers (with their sandbox children)": workers,
        "Prefect server": procstat.tree_cpu(cluster.server.pid, table, children),
        "PostgreSQL (whole server)": _postgres_cpu(settings),
        "receiver": receiver,
        "machine": procstat.machine_busy(),
    }


def _settings(tmp: Path, name: str) -> Any:
    from mou.settings import Settings

    return Settings(var_dir=tmp / name / "var", database_url=f"{PG_SERVER}/{name}", secret=SECRET)


def _prepare(tmp: Path, name: str) -> Any:
    from mou.catalogue.bootstrap import prepare_database
    from mou.service.protocol import open_and_dispatch

    _create_pg(name)
    settings = _settings(tmp, name)
    prepare_database(settings)
    cycle = open_and_dispatch(settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31))
    assert cycle.cycle_id == 1  # the files' signed identity names cycle 1
    return settings


def _rows(settings: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from mou.store import models as m
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        return [
            {
                "id": s.id,
                "state": s.state.code if s.state else None,
                "status": s.status,
                "version": s.version,
                "superseded": s.superseded_by_id,
                "attempts": s.ingest_attempts,
                "received": s.received_at,
                "decided": s.decided_at,
            }
            for s in session.scalars(select(m.Submission).order_by(m.Submission.id))
        ]


def _receipts(settings: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from mou.store import models as m
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        return [
            {"key": o.key, "sent": o.sent_at}
            for o in session.scalars(
                select(m.OutboxMessage).where(m.OutboxMessage.kind == "receipt")
            )
        ]


def _undecided(settings: Any) -> int:
    return sum(1 for r in _rows(settings) if r["status"] == "received")


def _claimer(settings: Any, workers: list[subprocess.Popen]) -> subprocess.Popen | None:
    from sqlalchemy import select

    from mou.store import models as m
    from mou.store.database import session_scope

    by_pid = {str(w.pid): w for w in workers}
    with session_scope(settings) as session:
        for claimed in session.scalars(
            select(m.Submission.decision_claimed_by).where(m.Submission.status == "received")
        ):
            pid = (claimed or "").rpartition(":")[2]
            if pid in by_pid:
                return by_pid[pid]
    return None


def _distributed(
    cluster: Cluster, tmp: Path, name: str, paths: list[Path], kill: bool
) -> dict[str, Any]:
    settings = _prepare(tmp, name)
    env = cluster.env(name, settings.var_dir)
    try:
        cluster.start_workers(env, name)
        time.sleep(2)  # the workers' first look, at start, is over
        before = _cpu(cluster, settings)
        started = time.monotonic()
        receiver = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, *map(str, paths)], env=env, cwd=ROOT
        )
        killed_at = None
        if kill:
            _wait(
                "a third decided", lambda: _undecided(settings) <= len(paths) * 2 // 3 or None, 600
            )
            victim = _wait("a claim held", lambda: _claimer(settings, cluster.workers), 120, 0.01)
            victim.kill()
            victim.wait()
            killed_at = time.monotonic() - started
        # The receiver's CPU: reaped once it exits (it has recorded all by then).
        reaped = os.times()
        receiver.wait(timeout=600)
        after_reaped = os.times()
        receiver_cpu = (after_reaped.children_user + after_reaped.children_system) - (
            reaped.children_user + reaped.children_system
        )
        _wait(
            "every return decided",
            lambda: len(_rows(settings)) == len(paths) and _undecided(settings) == 0,
            900,
            0.2,
        )
        decided_wall = time.monotonic() - started
        at_decided = _cpu(cluster, settings, receiver_cpu)
        _wait(
            "every receipt sent",
            lambda: (
                (r := _receipts(settings)) and len(r) == len(paths) and all(x["sent"] for x in r)
            ),
            900,
            0.2,
        )
        answered_wall = time.monotonic() - started
        at_answered = _cpu(cluster, settings, receiver_cpu)
        rows = _rows(settings)
        receipts = _receipts(settings)
        first = min(r["received"] for r in rows)
        last = max(r["decided"] for r in rows)
        latency = [(r["decided"] - r["received"]).total_seconds() for r in rows]
        counting = [r for r in rows if r["superseded"] is None and r["version"] is not None]
        result = {
            "with_pdf": len(counting),
            "decided_span": (last - first).total_seconds(),
            "record_span": (max(r["received"] for r in rows) - first).total_seconds(),
            "last_receipt": (max(x["sent"] for x in receipts) - first).total_seconds(),
            "p50": statistics.median(latency),
            "p95": _percentile(latency, 0.95),
            "max": max(latency),
            "decided_wall": decided_wall,
            "answered_wall": answered_wall,
            "killed_at": killed_at,
            "cpu_decided": {k: at_decided[k] - before[k] for k in before},
            "cpu_answered": {k: at_answered[k] - before[k] for k in before},
            "checks": _checks(rows, receipts, paths, cluster.sink, kill),
        }
        if not kill:
            result["idle"] = _idle(cluster, settings)
        return result
    finally:
        cluster.stop_workers()
        _drop_pg(name)


def _idle(cluster: Cluster, settings: Any, seconds: float = 60.0) -> dict[str, float]:
    time.sleep(20)  # the last renders and the look after the burst
    table = procstat.table()
    children = procstat.children(table)
    start = sum(procstat.tree_cpu(w.pid, table, children) for w in cluster.workers)
    time.sleep(seconds)
    table = procstat.table()
    children = procstat.children(table)
    end = sum(procstat.tree_cpu(w.pid, table, children) for w in cluster.workers)
    return {"seconds": seconds, "cpu": end - start, "per_hour": (end - start) * 3600 / seconds}


def _checks(rows, receipts, paths, sink: Sink, killed: bool) -> list[tuple[str, bool, str]]:
    checks = []
    checks.append(
        (
            "one row per file, all decided",
            len(rows) == len(paths) and all(r["status"] in ("accepted", "rejected") for r in rows),
            f"{len(rows)} rows",
        )
    )
    attempts = Counter(r["attempts"] for r in rows)
    checks.append(
        (
            "each return decided once (ingest_attempts = 1)",
            set(attempts) == {1},
            str(dict(attempts)),
        )
    )
    by_state: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_state.setdefault(r["state"], []).append(r)
    ok, unnumbered = True, 0
    for mine in by_state.values():
        numbered = [r for r in mine if r["version"] is not None]
        ok &= [r["version"] for r in numbered] == list(range(1, len(numbered) + 1))
        current = [r["id"] for r in mine if r["superseded"] is None and r["version"] is not None]
        ok &= bool(numbered) and current == [numbered[-1]["id"]]
        # The rule (intake/rules.py:version_for): a return takes no number only if a later
        # received one of its state was accepted before it was decided.
        for r in mine:
            if r["version"] is None:
                unnumbered += 1
                ok &= any(o["id"] > r["id"] and o["decided"] < r["decided"] for o in numbered)
    checks.append(
        (
            "versions 1..n per state in the order received, no duplicate; one current return "
            "per state",
            ok,
            f"{len(by_state)} states; {unnumbered} returns decided after a later one of their "
            "state had been accepted, so without a number, as the rule says",
        )
    )
    keys = Counter(x["key"] for x in receipts)
    checks.append(
        (
            "one receipt per submission, all sent",
            len(keys) == len(rows)
            and set(keys.values()) == {1}
            and all(x["sent"] for x in receipts),
            f"{len(receipts)} receipts",
        )
    )
    with sink.lock:
        counts = Counter(sink.message_ids)
    checks.append(
        (
            "no email twice at the SMTP sink",
            max(counts.values()) == 1,
            f"{sum(counts.values())} emails, {len(counts)} Message-IDs",
        )
    )
    return checks


def _bulk(tmp: Path, paths: list[Path]) -> dict[str, Any]:
    name = f"mou_bench_bulk_{os.getpid()}"
    settings = _prepare(tmp, name)
    try:
        result = _intake(settings, paths)
        return {
            "elapsed": result["elapsed"],
            "cpu": result["cpu"]["workers"] + result["cpu"]["PostgreSQL"],
            "statuses": result["statuses"],
        }
    finally:
        _drop_pg(name)


def _start_cluster(tmp: Path, prefect_db: str) -> Cluster:
    from mou.service.prefect_server import wait_healthy

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MOU_"))}
    prefect_env = {
        **base,
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefect_db}"
        ),
    }
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = (tmp / "server.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--port", str(port)],
        env=prefect_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_healthy(api, 120, server)
    sink = Sink()
    return Cluster(tmp, api, server, sink, sink.start(), prefect_env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args(argv)
    os.environ["MOU_SECRET"] = SECRET  # the single-process path's spawned workers read it
    load_start = os.getloadavg()
    prefect_db = f"mou_bench_prefect_{os.getpid()}"
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        seed = _prepare(tmp, f"mou_bench_seed_{os.getpid()}")
        paths = _generate(seed, 1, args.count, tmp / "returns")
        _drop_pg(f"mou_bench_seed_{os.getpid()}")
        print("single process ...", flush=True)
        bulk = _bulk(tmp, paths)
        _create_pg(prefect_db)
        cluster = _start_cluster(tmp, prefect_db)
        try:
            print("distributed ...", flush=True)
            burst = _distributed(cluster, tmp, f"mou_bench_burst_{os.getpid()}", paths, kill=False)
            print("distributed, one worker killed ...", flush=True)
            killed = _distributed(cluster, tmp, f"mou_bench_kill_{os.getpid()}", paths, kill=True)
        finally:
            cluster.stop_workers()
            cluster.server.terminate()
            cluster.server.wait(timeout=60)
            cluster.sink.stop()
            _drop_pg(prefect_db)
    load_end = os.getloadavg()
    _report(args, bulk, burst, killed, load_start, load_end)
    passed = all(ok for run in (burst, killed) for _, ok, _ in run["checks"])
    return 0 if passed else 1


def _per_return(cpu: dict[str, float], count: int) -> float:
    return sum(v for k, v in cpu.items() if k != "machine") / count


def _report(args, bulk, burst, killed, load_start, load_end) -> None:
    count = args.count
    bulk_rate = count / bulk["elapsed"]
    rate = count / burst["decided_span"]
    ratio = rate / bulk_rate
    bulk_cpu = bulk["cpu"] / count
    cpu = _per_return(burst["cpu_decided"], count)
    idle = burst["idle"]
    figures = [
        Figure(
            f"distributed: {count} returns, 2 `mou worker` on PostgreSQL, decided/s vs the "
            "single-process bulk intake in the same run",
            f"{ratio:.2f}× ({rate:.1f} returns/s; single process {bulk_rate:.1f}/s)",
            "≥ 0.5×",
            "met" if ratio >= 0.5 else "not met",
        ),
        Figure(
            "distributed: recorded → decided, p50 / p95",
            f"{burst['p50']:.2f} s / {burst['p95']:.2f} s",
            "p95 ≤ 15 s",
            "met" if burst["p95"] <= 15 else "not met",
        ),
        Figure(
            "distributed: CPU-seconds per return until decided vs the single process",
            f"{cpu / bulk_cpu:.2f}× ({cpu * 1000:.0f} ms vs {bulk_cpu * 1000:.0f} ms)",
            "",
            "measured",
        ),
        Figure(
            "distributed: one worker killed (-9) a third of the way through",
            f"all {count} decided and answered once; decided in {killed['decided_span']:.1f} s "
            f"(without the kill {burst['decided_span']:.1f} s)",
            "nothing lost or duplicated",
            "met" if all(ok for _, ok, _ in killed["checks"]) else "not met",
        ),
        Figure(
            "distributed: duplicates (rows, decisions, versions, receipts, emails)",
            "none: every check passed"
            if all(ok for run in (burst, killed) for _, ok, _ in run["checks"])
            else "a check failed",
            "no duplicates",
            "met"
            if all(ok for run in (burst, killed) for _, ok, _ in run["checks"])
            else "not met",
        ),
        Figure(
            "distributed: two idle warm workers",
            f"{idle['per_hour']:.0f} CPU-seconds per hour "
            f"({idle['cpu']:.2f} s in {idle['seconds']:.0f} s)",
            "",
            "measured",
        ),
    ]
    command = f"python -m benchmarks.distributed --count {count}"
    record("distributed", figures, command, RESULTS.name)
    RESULTS.write_text(
        _markdown(args, bulk, burst, killed, figures, load_start, load_end), encoding="utf-8"
    )


def _cpu_table(cpu: dict[str, float], count: int) -> str:
    lines = ["| who | CPU | per return |", "| --- | --- | --- |"]
    for key, value in cpu.items():
        if key == "machine":
            continue
        lines.append(f"| {key} | {value:.1f} s | {value / count * 1000:.0f} ms |")
    total = sum(v for k, v in cpu.items() if k != "machine")
    lines.append(
        f"| **all of the above** | **{total:.1f} s** | **{total / count * 1000:.0f} ms** |"
    )
    lines.append(
        f"| the whole machine (every process, for comparison) | {cpu['machine']:.1f} s | |"
    )
    return "\n".join(lines)


def _markdown(args, bulk, burst, killed, figures, load_start, load_end) -> str:
    count = args.count
    rows = "\n".join(
        f"| {f.measure} | {f.result} | {f.target or '—'} | {f.status} |" for f in figures
    )

    def checks(run):
        return "\n".join(
            f"| {name} | {'yes' if ok else '**no**'} | {detail} |"
            for name, ok, detail in run["checks"]
        )

    def timing(run):
        return "\n".join(
            [
                "| figure | value |",
                "| --- | --- |",
                "| returns recorded by the receiver (first → last row) | "
                f"{run['record_span']:.1f} s |",
                f"| **first recorded → last decided** | **{run['decided_span']:.1f} s** "
                f"({count / run['decided_span']:.1f} returns/s) |",
                f"| recorded → decided, p50 / p95 / max | {run['p50']:.2f} s / "
                f"{run['p95']:.2f} s / {run['max']:.2f} s |",
                f"| first recorded → last receipt sent | {run['last_receipt']:.1f} s |",
            ]
            + (
                [f"| worker killed at | {run['killed_at']:.1f} s after the receiver started |"]
                if run.get("killed_at")
                else []
            )
        )

    return f"""# Distributed benchmark: warm `mou worker` processes on PostgreSQL

Produced by `python -m benchmarks.distributed --count {count}` (about 5 minutes). {count} distinct
filled Bukhara deer returns (the 5 range states' templates filled by `mou.demo.synthetic`,
round robin, so each state sends {count // 5} versions and each supersedes the last; median
28 KiB), the same files in every part of the run. PostgreSQL
(127.0.0.1, same machine) holds every database, each created for its part and dropped after.

1. **Single process**: benchmarks.intake's bulk path, 2 processes (`record_submission` +
   `ingest_submission` per file; no receipts, no events).
2. **Distributed**: a Prefect server on PostgreSQL, two `mou worker --limit {LIMIT}` (warm
   Prefect task workers, as the README starts them), an SMTP sink (aiosmtpd) as relay; a
   receiver process records the files with `receive_file` (row committed, then the
   `mou.submission.received` event and a wake-up `Task.delay()`).
3. **Killed worker**: the same on a fresh project database; a third of the way through, the
   worker holding a claim is killed (-9).
4. **Idle**: the two warm workers, nothing to do.

## Headline

| measure | result | target | status |
| --- | --- | --- | --- |
{rows}

Single process: {count} returns in {bulk["elapsed"]:.1f} s
({count / bulk["elapsed"]:.1f} returns/s), {bulk["cpu"]:.1f} CPU-seconds (its processes with
their sandbox children, and PostgreSQL);
{bulk["statuses"]}.

## Distributed burst

{timing(burst)}

CPU from the first row recorded until the last return was decided (the receipts and the
render go on after it):

{_cpu_table(burst["cpu_decided"], count)}

Until the last receipt was sent. A receipt is written once its return is decided, by the
receipts slot after the drain: an accepted return that still counts gets its summary PDF (the
single-process path renders none); one that a later file of its state superseded meanwhile
gets the short receipt that names the later file. In this burst (each state sending
{count // 5} versions within seconds) {burst["with_pdf"]} receipts carried a PDF:

{_cpu_table(burst["cpu_answered"], count)}

| check | passed | detail |
| --- | --- | --- |
{checks(burst)}

## One worker killed (-9) a third of the way through

{timing(killed)}

The killed worker's claim runs out after 50 s (`LEASE` in mou/service/intake_work.py); the
surviving worker's look for lost work (every 5 s) wakes a drain that decides it. The time to
finish is that wait; nothing else stops.

| check | passed | detail |
| --- | --- | --- |
{checks(killed)}

## Idle

Two warm workers with nothing to do: {burst["idle"]["cpu"]:.2f} CPU-seconds in
{burst["idle"]["seconds"]:.0f} s, **{burst["idle"]["per_hour"]:.0f} CPU-seconds per hour** (their
websocket subscriptions and the look for lost work every 5 s; the Prefect server and its
scheduled deployments are not counted).

## Machine and load

- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC
- {machine()}
- Load average (1, 5, 15 min) at the start {" / ".join(f"{v:.2f}" for v in load_start)}, at the end
  {" / ".join(f"{v:.2f}" for v in load_end)}. 2 cores, shared by every process of the run.
"""


if __name__ == "__main__":
    sys.exit(main())
