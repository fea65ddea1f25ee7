"""The one table: each benchmark records its headline figures, `write_table` gathers them.

Every benchmark module writes its own RESULTS-<name>.md (method, details, machine) and calls
`record` with its figures; `python -m benchmarks` runs them all and writes RESULTS.md from
the figures of the runs (benchmarks/results/<name>.json, kept in the repo with the tables).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = HERE / "results"
TABLE = HERE / "RESULTS.md"
# Order of the list (issue 7), then anything else.
ORDER = [
    "read_validate",
    "intake",
    "latency",
    "mailbox",
    "report_render",
    "hostile",
    "distributed",
]
LIBRARIES = ("openpyxl", "sqlalchemy", "psycopg", "prefect", "weasyprint", "jinja2")


@dataclass(frozen=True)
class Figure:
    measure: str  # what was measured, e.g. "bulk intake, SQLite, 2 workers"
    result: str  # the figure, e.g. "1.12× (54 returns/s)"
    target: str  # e.g. "≤ 1.5×", or "" when the issue sets none
    status: str  # "met" | "not met" | "measured"


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def machine() -> dict[str, str]:
    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "cpu": f"{cpu()} ({os.cpu_count()} logical CPUs)",
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": ", ".join(f"{name} {installed(name)}" for name in LIBRARIES),
    }


def record(benchmark: str, figures: list[Figure], command: str, details: str) -> Path:
    """Keep one benchmark's headline figures with the date, machine and load they ran under."""
    FIGURES.mkdir(exist_ok=True)
    path = FIGURES / f"{benchmark}.json"
    entry = {
        "benchmark": benchmark,
        "command": command,
        "details": details,
        "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine": machine(),
        "figures": [asdict(f) for f in figures],
    }
    path.write_text(json.dumps(entry, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _entries() -> list[dict]:
    entries = [json.loads(p.read_text(encoding="utf-8")) for p in FIGURES.glob("*.json")]
    rank = {name: index for index, name in enumerate(ORDER)}
    return sorted(entries, key=lambda e: (rank.get(e["benchmark"], len(ORDER)), e["benchmark"]))


def write_table() -> Path:
    """RESULTS.md: every recorded figure with its target, and where each came from."""
    entries = _entries()
    here = machine()
    rows, sources = [], []
    for entry in entries:
        for figure in entry["figures"]:
            status = {"met": "**met**", "not met": "**not met**"}.get(
                figure["status"], figure["status"]
            )
            rows.append(
                f"| {figure['measure']} | {figure['result']} | {figure['target'] or '—'} |"
                f" {status} | [{entry['benchmark']}]({entry['details']}) |"
            )
        there = entry["machine"]
        other = (
            ""
            if there == here
            else f"; **another machine**: {there['cpu']}, {there['system']}, Python"
            f" {there['python']}, {there['libraries']}"
        )
        sources.append(
            f"- `{entry['command']}`: {entry['date']}, load average {entry['load_average_1min']}"
            f"{other}"
        )
    text = f"""# Benchmark results

Produced by `make bench` (`python -m benchmarks`), which runs every benchmark below; each
writes its own RESULTS file with the method and the details, and its headline figures here.
Measurements, not timed tests: the machine may be shared, so each run records its load.

| measure | result | target | status | details |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Machine: {here["cpu"]}; {here["system"]}; Python {here["python"]};
{here["libraries"]}.

Runs (1-minute load average at the end of each; 2 means both cores were busy already):

{chr(10).join(sources)}
"""
    TABLE.write_text(text, encoding="utf-8")
    return TABLE
