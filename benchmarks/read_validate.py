"""Read + validate one filled Bukhara deer return, next to openpyxl doing the irreducible part.

The baseline is `openpyxl.load_workbook(read_only=True)` reading the same cells (one pass per
sheet over the named ranges), in the same process and run. Our figure adds the safety checks
(inflating every part with a cap, DTD checks, cell counts), the sandbox round trip, the
identity check and the validation of every field. Medians over interleaved runs; figures go
to benchmarks/RESULTS-read.md with the machine they ran on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.summary import Figure, record
from benchmarks.summary import cpu as _cpu  # the other benchmarks import it from here

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS-read.md"


def _baseline(data: bytes) -> int:
    from openpyxl import load_workbook
    from openpyxl.utils.cell import range_boundaries

    wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    bounds: dict[str, tuple[int, int, int, int]] = {}
    for name, defined in wb.defined_names.items():
        if name.startswith("mou_"):
            continue
        for sheet, ref in defined.destinations:
            c1, r1, c2, r2 = range_boundaries(ref.replace("$", ""))
            b = bounds.get(sheet, (c1, r1, c2, r2))
            bounds[sheet] = (min(b[0], c1), min(b[1], r1), max(b[2], c2), max(b[3], r2))
    cells = 0
    for sheet, (c1, r1, c2, r2) in bounds.items():
        ws = wb[sheet]
        for row in ws.iter_rows(min_row=r1, max_row=r2, min_col=c1, max_col=c2, values_only=True):
            cells += len(row)
    wb.close()
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)

    from mou.catalogue.bootstrap import prepare_database
    from mou.cycle.context import form_context
    from mou.demo.synthetic import synthetic_return
    from mou.i18n.texts import Messages
    from mou.intake.decide import sandbox_limits
    from mou.intake.rules import identify
    from mou.service.protocol import open_and_dispatch
    from mou.settings import Settings
    from mou.store.database import session_scope
    from mou.workbook.extract import extract
    from mou.workbook.sandbox import Sandbox
    from mou.workbook.validate import validate

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(var_dir=Path(tmp) / "var")
        prepare_database(settings)
        cycle_id = open_and_dispatch(
            settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31)
        ).cycle_id
        data = synthetic_return(settings, cycle_id, "UZ", random.Random(1)).data
        with session_scope(settings) as session:
            from mou.store import models as m

            context = form_context(session, settings, session.get(m.ReportingCycle, cycle_id))
        messages = Messages(settings.forms_dir, "ru")
        sandbox = Sandbox(sandbox_limits(settings))

        def ours_sandboxed() -> Any:
            extraction = sandbox.parse(data)
            assert not isinstance(identify(extraction, settings.keyring), str)
            result = validate(extraction, context, messages)
            assert not result.has_errors
            return result

        def ours_in_process() -> Any:
            extraction = extract(data, sandbox.limits.extract)
            identify(extraction, settings.keyring)
            return validate(extraction, context, messages)

        measures: dict[str, list[float]] = {"baseline": [], "sandboxed": [], "in_process": []}
        runs: dict[str, Callable[[], Any]] = {
            "baseline": lambda: _baseline(data),
            "sandboxed": ours_sandboxed,
            "in_process": ours_in_process,
        }
        for function in runs.values():  # warm-up: imports, the sandbox child's start
            function()
        for _ in range(args.runs):
            for name, function in runs.items():
                start = time.perf_counter()
                function()
                measures[name].append(time.perf_counter() - start)
        sandbox.close()
    median = {name: statistics.median(values) for name, values in measures.items()}
    ratio = median["sandboxed"] / median["baseline"]
    load = os.getloadavg()[0]
    from importlib.metadata import version

    baseline_ms = median["baseline"] * 1000
    rows = "\n".join(
        [
            "| openpyxl `load_workbook(read_only=True)`, same cells (baseline) |"
            f" {baseline_ms:.1f} ms | 1.00× |",
            "| **read + validate, in the sandbox process** (what intake does) |"
            f" **{median['sandboxed'] * 1000:.1f} ms** | **{ratio:.2f}×** |",
            "| read + validate in-process (no sandbox round trip) |"
            f" {median['in_process'] * 1000:.1f} ms |"
            f" {median['in_process'] / median['baseline']:.2f}× |",
        ]
    )
    versions = f"openpyxl {version('openpyxl')}"
    text = f"""# Read + validate benchmark

One filled Bukhara deer return (Uzbekistan, Russian template, {len(data) // 1024} KiB, produced
by `mou.demo.synthetic`), read and validated {args.runs} times, interleaved with the baseline.
Produced by `python -m benchmarks.read_validate --runs {args.runs}` (part of `make bench`).

| measure | median | vs baseline |
| --- | --- | --- |
{rows}

Target: ≤ 1.5× the baseline. {"Met." if ratio <= 1.5 else "Not met: see the note below."}

- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC
- CPU: {_cpu()} ({os.cpu_count()} logical CPUs); {platform.system()} {platform.release()}
- Python {platform.python_version()}; {versions}
- Load average (1 min) at the end: {load:.2f}

Intake reads with its own expat reader (mou/workbook/xlsx.py: only the defined names, shared
strings, date styles and the named cells, sheets streamed), not with openpyxl, whose object
model for every style and sheet was most of the cost; the values are the same (tests/
test_xlsx_reader.py). Beyond that read: the safety pass (every part inflated once with a byte
cap, scanned for DTDs, its cells counted), the validation, and the sandbox
round trip (the file and the pickled extraction over pipes).
"""
    RESULTS.write_text(text, encoding="utf-8")
    record(
        "read_validate",
        [
            Figure(
                "read + validate one Bukhara deer return (sandboxed) vs bare openpyxl read-only",
                f"{ratio:.2f}× ({median['sandboxed'] * 1000:.1f} ms vs {baseline_ms:.1f} ms)",
                "≤ 1.5×",
                "met" if ratio <= 1.5 else "not met",
            )
        ],
        f"python -m benchmarks.read_validate --runs {args.runs}",
        RESULTS.name,
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
