"""`make bench` / `python -m benchmarks`: every benchmark, each writing its RESULTS file."""

from __future__ import annotations

import sys

from benchmarks import hostile, intake, latency, read_validate, report_render


def main() -> int:
    status = read_validate.main([])
    status = status or intake.main([])
    status = status or hostile.main([])
    status = status or latency.main([])
    return status or report_render.main([])


if __name__ == "__main__":
    sys.exit(main())
