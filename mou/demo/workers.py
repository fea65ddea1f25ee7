"""Forked worker processes for the demo's independent steps, as several service workers would.

Dispatch, the returns between two reminder runs and the PDFs (WeasyPrint holds the GIL) run
side by side; with one worker, or where fork is unavailable, everything runs in this process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from mou.settings import Settings

Call = tuple[Callable[..., Any], tuple[Any, ...], str, int]  # function, args, what, steps
Tick = Callable[[str, int], None]  # what ended, how many steps it counts for


def _forget_connections(url: str) -> None:
    """In a forked worker: never use (nor close) the parent's pooled connections."""
    from mou.store.database import engine_for

    engine_for(url).dispose(close=False)


@contextmanager
def worker_pool(settings: Settings, count: int) -> Iterator[ProcessPoolExecutor | None]:
    """``count`` worker processes on the settings' database, or None to run in this process.

    "fork" rather than "spawn", which would re-run the caller's main module; without fork,
    or with one worker, everything runs in this process.
    """
    if count <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    from mou.store.database import engine_for

    url = settings.effective_database_url
    engine_for(url).dispose()  # nothing pooled for the workers to inherit (they fork next)
    pool = ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_forget_connections,
        initargs=(url,),
    )
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def run_all(pool: ProcessPoolExecutor | None, calls: Sequence[Call], tick: Tick) -> list[Any]:
    """Results of ``function(*args)`` in the order given, ticking ``what`` as each ends.

    On the pool the calls run side by side and the first failure stops the demo; without one
    they run in order here.
    """
    if pool is None:
        results = []
        for function, args, what, steps in calls:
            results.append(function(*args))
            tick(what, steps)
        return results
    futures = [pool.submit(function, *args) for function, args, _, _ in calls]
    labels = {future: call[2:] for future, call in zip(futures, calls, strict=True)}
    for future in as_completed(futures):
        future.result()  # the first failure stops the demo
        tick(*labels[future])
    return [future.result() for future in futures]
