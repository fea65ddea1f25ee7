"""Warm intake on Prefect: background tasks that drain what the database says is waiting, served
by long-lived task workers (``mou worker``; ``mou serve`` runs one in-process).

A process that records a return *wakes* the workers: it submits a ``decide-waiting-returns``
task run (``Task.delay``) once the row is committed. The task runs in a worker that has
Python, the form specifications and the sandbox warm, and decides every waiting return
before it ends, so a burst costs a few task runs, not a process per return. Wake-ups made
while one is being submitted collapse into the next (never into an earlier one: the commit
of a return always precedes the wake-up that covers it). Drains end by waking
``send-receipts`` and ``render-stale-summaries``, which a worker serves on a separate slot,
so a burst of receipt PDFs never holds back a decision.

The tasks take no parameters: the database says what to do. A wake-up lost (Prefect server
away, a process killed between commit and wake-up) delays the work, never loses it: each
worker looks for work nobody is doing every ``LOOK_SECONDS``, and the sweep stays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from mou.service import events
from mou.settings import Settings

log = logging.getLogger(__name__)
DECIDE = "decide-waiting-returns"
RECEIPTS = "send-receipts"
SUMMARIES = "render-stale-summaries"
# A burst of acceptances makes one render: the render's wake-up waits this long for more.
SUMMARIES_DEBOUNCE = 3.0
LOOK_SECONDS = 5.0  # how often a worker looks for work no drain is doing (one query)
LOOK_AGE = dt.timedelta(seconds=10)  # ... waiting at least this long
RECEIPTS_EVERY = 50  # a long drain lets receipts go out after this many decisions


def _decide_waiting_returns() -> dict[str, int]:
    from mou.service.intake_work import drain_decisions
    from mou.service.protocol import decide_and_announce
    from mou.settings import get_settings

    settings = get_settings()
    decided = 0
    accepted: set[int] = set()
    while not _stopping.is_set():
        drain = drain_decisions(
            settings, decide_and_announce, limit=RECEIPTS_EVERY, stopping=_stopping.is_set
        )
        decided += len(drain.decided)
        accepted |= drain.accepted_cycles
        if drain.decided:
            wake(RECEIPTS)
        if len(drain.decided) < RECEIPTS_EVERY:
            break
    if accepted:
        wake(SUMMARIES, after=SUMMARIES_DEBOUNCE)
    return {"decided": decided, "cycles": len(accepted)}


def _send_receipts() -> dict[str, int]:
    from mou.service.intake_work import drain_receipts
    from mou.settings import get_settings

    return {"receipts": len(drain_receipts(get_settings(), stopping=_stopping.is_set))}


def _render_stale_summaries() -> dict[str, int]:
    from mou.service.protocol import render_stale_reports
    from mou.settings import get_settings

    return {"cycles": len(render_stale_reports(get_settings()))}


_TASKS: dict[str, Any] = {}
# Set while this process's task workers stop: drains end after the return in hand.
_stopping = threading.Event()


def prefect_task(name: str) -> Any:
    """The Prefect task of that name (Prefect imported on first use)."""
    if not _TASKS:
        from prefect import task

        for key, fn in (
            (DECIDE, _decide_waiting_returns),
            (RECEIPTS, _send_receipts),
            (SUMMARIES, _render_stale_summaries),
        ):
            # No retries: a failed drain leaves its work in the database for the next.
            _TASKS[key] = task(name=key, log_prints=False)(fn)
    return _TASKS[name]


class _Waker:
    """Submits wake-ups from a thread of their own, so a receiver never waits for the API.

    A name asked for again before its wake-up is submitted is submitted once; one asked for
    after that is submitted again. ``after`` delays a wake-up (and the ones that join it)."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = 0

    def wake(self, name: str, after: float = 0.0) -> None:
        with self._cv:
            due = time.monotonic() + after
            self._due[name] = min(self._due.get(name, due), due)
            if self._thread is None or not self._thread.is_alive():
                # A short-lived receiver (a script) calls flush_wakeups() before it exits:
                # Prefect cannot start its client once the interpreter is shutting down.
                self._thread = threading.Thread(target=self._run, name="mou-wake", daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    now = time.monotonic()
                    ready = [n for n, due in self._due.items() if due <= now]
                    if ready:
                        for name in ready:
                            del self._due[name]
                        self._busy += 1
                        break
                    if not self._due:
                        self._thread = None
                        return  # nothing asked for: the next wake-up starts a thread again
                    self._cv.wait(timeout=min(self._due.values()) - now)
            try:
                for name in ready:
                    submit(name)
            finally:
                with self._cv:
                    self._busy -= 1
                    self._cv.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Submit what is due or pending now (before a short-lived process exits)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            for name in self._due:
                self._due[name] = 0.0
            self._cv.notify_all()
            while self._due or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(timeout=left)
        return True


_waker = _Waker()


def submit(name: str) -> bool:
    """Submit one task run now; False (logged) if no Prefect API takes it."""
    if not events.api_configured():
        return False
    try:
        prefect_task(name).delay()
        return True
    except Exception:  # the workers' look and the sweep find the work without it
        log.warning("could not wake the workers (%s)", name, exc_info=True)
        return False


def wake(name: str, after: float = 0.0) -> bool:
    """Ask the warm workers to run ``name`` soon; False when no Prefect API is configured."""
    if not events.api_configured():
        return False
    _waker.wake(name, after)
    return True


def wake_decisions() -> bool:
    return wake(DECIDE)


def wake_consolidation() -> bool:
    """Ask for a render of stale summaries (the database says which cycles are stale)."""
    return wake(SUMMARIES, after=SUMMARIES_DEBOUNCE)


def flush_wakeups(timeout: float = 10.0) -> bool:
    return _waker.flush(timeout)


class TaskWorkers:
    """Prefect task workers in a thread of this process: ``limit`` decision drains at once,
    and one slot for receipts and renders, so those never take a decision's place."""

    def __init__(self, limit: int = 2) -> None:
        self.limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="mou-task-workers", daemon=True)
        self._ready = threading.Event()
        self.failure: BaseException | None = None

    def start(self) -> TaskWorkers:
        _stopping.clear()
        self._thread.start()
        self._ready.wait(timeout=30)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.failure = exc
                log.exception("the task workers stopped")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from prefect.task_worker import TaskWorker

        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        self._ready.set()
        pause = 1.0
        while True:
            # Prefect's subscription retries a refused connection itself; any other failure
            # (a name that does not resolve, a proxy's 502, a timeout) ends a TaskWorker: start
            # both again, so the service never stays without workers.
            decisions = TaskWorker(prefect_task(DECIDE), limit=self.limit)
            after = TaskWorker(prefect_task(RECEIPTS), prefect_task(SUMMARIES), limit=1)
            started = time.monotonic()
            try:
                await asyncio.gather(decisions.astart(), after.astart())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("the task workers lost the Prefect API; starting again", exc_info=True)
            if time.monotonic() - started > 60:
                pause = 1.0  # they had been serving: not a failure at start
            await asyncio.sleep(pause)
            pause = min(pause * 2, 60.0)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        _stopping.set()  # drains end after the return in hand
        if self._loop is not None and self._main is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join(timeout=timeout)


def look(
    settings: Settings, wakes: Callable[[str], Any] = submit, summaries: bool = False
) -> list[str]:
    """Wake drains for work nobody is doing (a killed worker's claims run out, a lost
    wake-up); ``summaries``: also a render if any cycle's summaries are out of date (a
    costlier look, so not every time). Returns what was woken."""
    from mou.service.intake_work import waiting_work
    from mou.service.protocol import stale_national_reports, stale_reports

    try:
        undecided, unanswered = waiting_work(settings, LOOK_AGE)
        stale = summaries and bool(stale_reports(settings) or stale_national_reports(settings))
    except Exception:  # the database is away: look again later
        log.warning("could not look for waiting work", exc_info=True)
        return []
    woken = []
    if undecided:
        wakes(DECIDE)
        woken.append(DECIDE)
    if unanswered:
        wakes(RECEIPTS)
        woken.append(RECEIPTS)
    if stale:
        wakes(SUMMARIES)
        woken.append(SUMMARIES)
    return woken


SUMMARIES_LOOK_EVERY = 12  # looks: about once a minute


def keep_looking(settings: Settings, stop: threading.Event, wakes: Callable[[str], Any]) -> None:
    """Look for lost work every ``LOOK_SECONDS`` until ``stop`` is set (the first at once)."""
    count = 0
    while not stop.is_set():
        look(settings, wakes=wakes, summaries=count % SUMMARIES_LOOK_EVERY == 0)
        count += 1
        stop.wait(LOOK_SECONDS)


def run_workers(settings: Settings, limit: int, stop: threading.Event) -> int:
    """``mou worker``: serve the tasks until ``stop`` is set; look for lost work meanwhile."""
    workers = TaskWorkers(limit).start()
    # At once (what a killed worker or a stopped cluster left), then every LOOK_SECONDS.
    looker = threading.Thread(
        target=keep_looking, args=(settings, stop, submit_several(limit)), daemon=True
    )
    looker.start()
    try:
        while not stop.wait(1.0):
            if not workers.alive():
                return 1
    finally:
        workers.stop()
    return 0 if workers.failure is None else 1


def submit_several(count: int) -> Callable[[str], None]:
    """Wake-ups for a look: a backlog nobody drains gets ``count`` drains (the worker's
    slots), a receipt or render one."""

    def wakes(name: str) -> None:
        for _ in range(count if name == DECIDE else 1):
            submit(name)

    return wakes
