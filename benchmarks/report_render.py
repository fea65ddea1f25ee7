"""Benchmark: rendering the consolidated CAMI progress summary (14 states × 121 activities,
charts, annexes) — not a timed test.

Run from the project root:

    .venv/bin/python -m benchmarks.report_render [--runs 7] [--other-runs 3] [--no-write]

It builds a throwaway SQLite database with 14 accepted CAMI returns (tests/builders.py),
then measures, interleaved so that a busy machine slows all alike, after one warm-up each:

- the whole render (consolidated data → Jinja2 HTML → PDF bytes, ``render_progress_summary``),
- of which the Jinja2 HTML (charts included),
- WeasyPrint alone on the same final HTML: ``HTML(...).write_pdf(pdf_variant="pdf/ua-1")``
  with the report's asset fetcher, as WeasyPrint runs by default (collector on, no file
  identifier), which is what ``html_to_pdf`` improves on,

each as the median of ``--runs`` runs, wall and CPU time, with the 1-minute load average
seen at each run; the Russian and French renders as the median of ``--other-runs``. It
writes the figures, with date, CPU and versions, between the markers of
benchmarks/RESULTS-reports.md (the rest of that file, the before/after record and the
profile, is kept), and the headline figures to benchmarks/results/report_render.json.

Timings on a shared 2-core machine vary with its load; for a load-independent comparison,
count instructions with valgrind (benchmarks/RESULTS-reports.md says how).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS-reports.md"
START = "<!-- report_render: start (written by benchmarks/report_render.py) -->"
END = "<!-- report_render: end -->"
TARGET_SECONDS = 5.0
TARGET_RATIO = 1.2
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.summary import Figure, record  # noqa: E402


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Timings:
    """Wall time, CPU time and load average of each run of each measure."""

    def __init__(self) -> None:
        self.runs: dict[str, list[tuple[float, float, float]]] = {}

    def measure(self, key: str, function: Callable[[], Any]) -> Any:
        gc.collect()  # so no run pays for the garbage of the one before
        load = _load()
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        self.runs.setdefault(key, []).append(
            (time.perf_counter() - wall, time.process_time() - cpu, load)
        )
        return result

    def wall(self, key: str) -> float:
        return statistics.median(run[0] for run in self.runs[key])

    def cpu(self, key: str) -> float:
        return statistics.median(run[1] for run in self.runs[key])

    def load(self, key: str) -> str:
        loads = [run[2] for run in self.runs[key]]
        return f"{min(loads):.1f}–{max(loads):.1f}"


def _pages(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each English measure")
    parser.add_argument("--other-runs", type=int, default=3, help="runs in ru and in fr")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    load_start = _load()
    # WeasyPrint warns on every render that HarfBuzz-subset is missing; once is enough.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)

    from weasyprint import HTML

    from mou.catalogue.bootstrap import prepare_database
    from mou.documents.assets import AssetFetcher
    from mou.documents.pdf import reports_dir
    from mou.reporting.consolidation import consolidate
    from mou.reporting.progress_summary import progress_summary_html, render_progress_summary
    from mou.settings import Settings
    from mou.store.database import engine_for, session_scope
    from tests import builders

    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(var_dir=Path(directory) / "var")
        prepare_database(settings)
        with session_scope(settings) as session:
            cycle_id = builders.build_cami(session).cycle.id
        with session_scope(settings) as session:
            start = time.perf_counter()
            consolidated = consolidate(session, cycle_id)
            consolidation = time.perf_counter() - start
        engine_for(settings.effective_database_url).dispose()

    assets = reports_dir(settings).resolve()

    def weasyprint_alone(html: str) -> bytes:
        document = HTML(
            string=html, base_url=assets.as_uri() + "/", url_fetcher=AssetFetcher(assets)
        )
        return document.write_pdf(pdf_variant="pdf/ua-1")

    def whole(language: str) -> bytes:
        return render_progress_summary(consolidated, language, settings)

    # Warm-up: first use compiles the catalogues and loads fonts, templates, dictionaries.
    pdf = whole("en")
    html = progress_summary_html(consolidated, "en", settings)
    weasyprint_alone(html)
    timings = Timings()
    for _ in range(args.runs):
        again = timings.measure("whole", lambda: whole("en"))
        html = timings.measure("html", lambda: progress_summary_html(consolidated, "en", settings))
        alone = timings.measure("weasy", lambda html=html: weasyprint_alone(html))
        assert again == pdf, "the same data must give the same bytes"
    pages, alone_pages = _pages(pdf), _pages(alone)
    others = {}
    for language in ("ru", "fr"):
        other = whole(language)  # warm-up of the language's catalogue
        for _ in range(args.other_runs):
            timings.measure(language, lambda language=language: whole(language))
        others[language] = (_pages(other), len(other))

    from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

    # The same test WeasyPrint makes before choosing HarfBuzz over fontTools for subsetting.
    harfbuzz_used = harfbuzz_subset is not None and bool(harfbuzz.hb_version_atleast(4, 1, 0))
    load_end = _load()
    versions = ", ".join(
        f"{name} {version(name)}"
        for name in ("weasyprint", "pydyf", "fonttools", "jinja2", "babel", "sqlalchemy")
    )
    total, weasy = timings.wall("whole"), timings.wall("weasy")
    ratio_wall, ratio_cpu = total / weasy, timings.cpu("whole") / timings.cpu("weasy")
    command = (
        f"python -m benchmarks.report_render --runs {args.runs} --other-runs {args.other_runs}"
    )

    def row(label: str, key: str) -> str:
        return (
            f"| {label} | {timings.wall(key):.2f} s | {timings.cpu(key):.2f} s | "
            f"{timings.load(key)} |"
        )

    lines = [
        START,
        "## Latest run",
        "",
        f"Produced by `{command}`: medians of interleaved runs after one warm-up",
        "render each; the load average (1 min) is the one seen at the start of each run",
        "(2 means both cores were already busy). English unless stated.",
        "",
        f"Pages: {pages} (WeasyPrint alone: {alone_pages}); PDF size {len(pdf) / 1024:.0f} KiB;",
        f"consolidation (SQLite → plain data, once) {consolidation:.2f} s.",
        "",
        "| measure | wall time | CPU time | load average |",
        "| --- | --- | --- | --- |",
        row("**whole render** (data → HTML → PDF)", "whole"),
        row("of which Jinja2 HTML (charts included)", "html"),
        row("WeasyPrint alone on the same final HTML", "weasy"),
        f"| **whole render ÷ WeasyPrint alone** | **{ratio_wall:.2f}×** | {ratio_cpu:.2f}× | |",
        f"| per page (whole render) | {1000 * total / pages:.0f} ms | "
        f"{1000 * timings.cpu('whole') / pages:.0f} ms | |",
        *(
            row(f"whole render in {lang} ({count} pages, {size / 1024:.0f} KiB)", lang)
            for lang, (count, size) in others.items()
        ),
        "",
        f"Targets: whole render under {TARGET_SECONDS:.0f} s and at most {TARGET_RATIO}× "
        "WeasyPrint alone.",
        "",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {_cpu()} ({os.cpu_count()} logical CPUs); {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()}; {versions}",
        f"- Font subsetting: {'HarfBuzz-subset' if harfbuzz_used else 'fontTools'} "
        "(WeasyPrint uses libharfbuzz-subset >= 4.1 when the system has it, else fontTools)",
        f"- Load average (1 min) at start {load_start:.2f}, at the end {load_end:.2f}",
        "- Every run of the whole render gave the same bytes (checked by the script).",
        END,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.no_write:
        return 0
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    if START in old and END in old:
        before, rest = old.split(START, 1)
        text = before + text.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = "# Report rendering benchmark\n\n" + text
    RESULTS.write_text(text, encoding="utf-8")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    record(
        "report_render",
        [
            Figure(
                f"CAMI progress summary PDF ({pages} pages), whole render, wall time",
                f"{total:.2f} s (CPU {timings.cpu('whole'):.2f} s)",
                f"< {TARGET_SECONDS:.0f} s",
                "met" if total < TARGET_SECONDS else "not met",
            ),
            Figure(
                "CAMI progress summary, whole render vs WeasyPrint alone on the same HTML",
                f"{ratio_wall:.2f}× ({total:.2f} s vs {weasy:.2f} s)",
                f"≤ {TARGET_RATIO}×",
                "met" if ratio_wall <= TARGET_RATIO else "not met",
            ),
        ],
        command,
        RESULTS.name,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
