"""`make bench` / `python -m benchmarks`: every benchmark, each writing its RESULTS file."""

from __future__ import annotations

import sys

from benchmarks import read_validate, report_render


def main() -> int:
    status = read_validate.main([])
    return status or report_render.main([])


if __name__ == "__main__":
    sys.exit(main())
