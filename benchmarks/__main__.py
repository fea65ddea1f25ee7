"""`make bench` / `python -m benchmarks`: every benchmark, each writing its RESULTS file and
its headline figures, then the one table, benchmarks/RESULTS.md.

`python -m benchmarks --only intake latency` runs some; `--table` only rebuilds the table
from the figures already recorded (benchmarks/results/*.json).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from benchmarks.summary import ORDER, write_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=ORDER, help="run only these benchmarks")
    parser.add_argument("--table", action="store_true", help="only rebuild RESULTS.md")
    args = parser.parse_args(argv)
    failed = []
    for name in [] if args.table else args.only or ORDER:
        print(f"== benchmarks.{name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        if module.main([]) != 0:
            failed.append(name)
    print(write_table().read_text(encoding="utf-8"))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
