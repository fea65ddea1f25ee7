"""Hostile files: time and peak memory for each file of the forms corpus, and the worst.

The corpus is tests/test_hostile.py's CORPUS (the builders that need LibreOffice are left
out). For each file: the sandboxed parse (a fresh sandbox child per file, started and warmed
on an empty file first, so its VmHWM is that file's peak; /proc/<child>/status is sampled
every 2 ms while it parses, since a child that hits its memory limit exits), median of
several runs; and the whole decision as intake makes it (`record_submission` +
`ingest_submission`: parse, identity, validation, stored outcome), once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.read_validate import _cpu
from benchmarks.summary import Figure, record

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS-hostile.md"
TIME_TARGET = 2.0
MEMORY_TARGET_MIB = 300


def _hwm(pid: int) -> int:
    """VmHWM of a process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _sandboxed(data: bytes, limits: Any) -> tuple[float, int, int, str]:
    """(parse seconds, child's peak KiB, child's peak before the file KiB, outcome)."""
    from mou.workbook.extract import Problem
    from mou.workbook.sandbox import Sandbox

    sandbox = Sandbox(limits)
    sandbox.parse(b"")  # start the child and import everything before the clock
    assert sandbox._process is not None
    pid = sandbox._process.pid
    before = _hwm(pid)
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _hwm(pid))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = sandbox.parse(data)
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], _hwm(pid))
    sandbox.close()
    outcome = result.code if isinstance(result, Problem) else "extracted"
    return elapsed, peak[0], before, outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small", action="store_true", help="one run per file")
    args = parser.parse_args(argv)
    runs = 1 if args.small else args.runs
    os.chdir(ROOT)  # the corpus builders read forms/ relative to the project

    from mou.intake.decide import ingest_submission, sandbox_limits
    from mou.intake.record import record_submission
    from mou.settings import Settings
    from mou.store.database import session_scope
    from tests.test_hostile import CORPUS
    from tests.test_workbook import open_test_cycles

    load_start = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    skipped = []
    with tempfile.TemporaryDirectory() as tmp:
        env = open_test_cycles(Settings(var_dir=Path(tmp) / "var"))
        settings = env.settings
        limits = sandbox_limits(settings)
        for builder, expected, code, _ in CORPUS:
            if "libreoffice" in inspect.getsource(builder):
                skipped.append(builder.__name__)
                continue
            data = builder(env)
            measures = [_sandboxed(data, limits) for _ in range(runs)]
            start = time.perf_counter()
            with session_scope(settings) as session:
                submission_id = record_submission(
                    session, settings, data, filename=f"{builder.__name__}.xlsx", channel="bench"
                ).submission_id
            with session_scope(settings) as session:
                outcome = ingest_submission(session, settings, submission_id)
            whole = time.perf_counter() - start
            codes = sorted({i.code for i in outcome.issues})
            rows.append(
                {
                    "name": builder.__name__,
                    "size": len(data),
                    "parse": statistics.median(m[0] for m in measures),
                    "peak": max(m[1] for m in measures),
                    "idle": min(m[2] for m in measures),
                    "sandbox": measures[0][3],
                    "whole": whole,
                    "status": outcome.status,
                    "expected": expected,
                    "codes": codes,
                    "code": code,
                }
            )
            print(rows[-1])
    load_end = os.getloadavg()[0]
    text = _report(rows, skipped, runs, args, load_start, load_end)
    RESULTS.write_text(text, encoding="utf-8")
    slowest = max(rows, key=lambda r: max(r["parse"], r["whole"]))
    largest = max(rows, key=lambda r: r["peak"])
    worst_time = max(slowest["parse"], slowest["whole"])
    worst_mib = largest["peak"] / 1024
    record(
        "hostile",
        [
            Figure(
                f"hostile files, slowest of {len(rows)} ({slowest['name']}), whole decision",
                f"{worst_time:.2f} s",
                f"≤ {TIME_TARGET:.0f} s",
                "met" if worst_time <= TIME_TARGET else "not met",
            ),
            Figure(
                f"hostile files, largest sandbox peak ({largest['name']})",
                f"{worst_mib:.0f} MiB",
                f"≤ {MEMORY_TARGET_MIB} MB",
                "met" if worst_mib <= MEMORY_TARGET_MIB else "not met",
            ),
        ],
        "python -m benchmarks.hostile" + (" --small" if args.small else f" --runs {runs}"),
        RESULTS.name,
    )
    print(text)
    return 0


def _report(
    rows: list[dict[str, Any]],
    skipped: list[str],
    runs: int,
    args: argparse.Namespace,
    load_start: float,
    load_end: float,
) -> str:
    from importlib.metadata import version

    slowest = max(rows, key=lambda r: max(r["parse"], r["whole"]))
    largest = max(rows, key=lambda r: r["peak"])
    worst_time = max(slowest["parse"], slowest["whole"])
    worst_mib = largest["peak"] / 1024
    idle_mib = min(r["idle"] for r in rows) / 1024
    time_met, memory_met = worst_time <= TIME_TARGET, worst_mib <= MEMORY_TARGET_MIB
    table = "\n".join(
        f"| {r['name']} | {r['size'] / 1024:,.0f} KiB | {r['parse'] * 1000:,.0f} ms |"
        f" {r['peak'] / 1024:.0f} MiB | {r['whole'] * 1000:,.0f} ms | {r['sandbox']} |"
        f" {r['status']}{'' if r['status'] == r['expected'] else ' (unexpected)'} |"
        for r in sorted(rows, key=lambda r: -max(r["parse"], r["whole"]))
    )
    versions = ", ".join(f"{n} {version(n)}" for n in ("openpyxl", "sqlalchemy"))
    command = "--small" if args.small else f"--runs {runs}"
    return f"""# Hostile files benchmark

Every file of the forms corpus (tests/test_hostile.py `CORPUS`, {len(rows)} files; left out
because they need LibreOffice to build: {", ".join(skipped) or "none"}), slowest first.
Produced by `python -m benchmarks.hostile {command}`.

- **sandboxed parse**: median of {runs} run(s), each in a fresh sandbox child already started
  and warmed on an empty file (no process start in the figure).
- **child peak**: the sandbox child's VmHWM (resident high-water mark, /proc) over the parse,
  the interpreter and its imports included (an idle warmed child: {idle_mib:.0f} MiB).
- **whole decision**: `record_submission` + `ingest_submission` (keep the bytes, parse in the
  service's reused sandbox, identity, validation, decision stored), one run, embedded SQLite.

| file | size | sandboxed parse | child peak | whole decision | sandbox answer | status |
| --- | --- | --- | --- | --- | --- | --- |
{table}

Worst time: **{slowest["name"]}**, {worst_time:.2f} s (target ≤ {TIME_TARGET:.0f} s:
{"met" if time_met else "NOT met"}).
Worst memory: **{largest["name"]}**, {worst_mib:.0f} MiB peak in the sandbox child
(target ≤ {MEMORY_TARGET_MIB} MB: {"met" if memory_met else "NOT met"}).
The child runs under RLIMIT_AS = parse_memory_bytes (1 GiB of address space): above that a
file gets `parse_memory`, which bounds the worst case whatever the file.

- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC
- CPU: {_cpu()} ({os.cpu_count()} logical CPUs); {platform.system()} {platform.release()}
- Python {platform.python_version()}; {versions}
- Load average (1 min) at start {load_start:.2f}, at the end {load_end:.2f}
"""


if __name__ == "__main__":
    raise SystemExit(main())
