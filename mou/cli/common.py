"""Helpers shared by the ``mou`` sub-commands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mou.errors import Refused
from mou.i18n.languages import LANGUAGES

Progress = Callable[[int, int, str], None]


@contextmanager
def terminal_progress(what: str, enabled: bool = True) -> Iterator[Progress | None]:
    """A progress bar on stderr for long operations (silent when not a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress as Bar

    with Bar(transient=True) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int, item: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{what}: {item}")

        yield update


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def record_id(text: str) -> int:
    """A cycle's or a return's number as typed: a positive whole number the database can hold."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text} is not the number of a cycle or a return")
    return value


def iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from exc


def language(text: str) -> str:
    if text not in LANGUAGES:
        raise argparse.ArgumentTypeError(f"language must be one of {', '.join(LANGUAGES)}")
    return text


def read_input_file(path: str, limit: int) -> bytes:
    """Read a user's file, refusing (not crashing) when it is missing or unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    except OSError as exc:
        raise Refused(f"cannot read {path}: {exc.strerror or exc}") from exc


def write_output_file(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise Refused(f"cannot write {path}: {exc.strerror or exc}") from exc
