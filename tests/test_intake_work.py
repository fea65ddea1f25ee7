"""The warm workers' drains (mou.service.intake_work) and their wake-ups (mou.service.tasks),
on both databases, without a Prefect server: claims keep drainers apart, a killed drainer's
claim runs out, every return is decided and answered once, and no wake-up is folded into one
submitted before the return it is for was committed."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import select

from mou.service import intake_work, tasks
from mou.service.protocol import decide_and_announce, open_and_dispatch, receive_file
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.smtp_server import SmtpServer
from tests.test_protocol import DEADLINE, filled_return, service  # noqa: F401 - fixture

STATES = ("AF", "KZ", "TJ", "TM", "UZ")


def _record(settings: Settings, rounds: int = 2) -> tuple[int, list[int]]:
    cycle = open_and_dispatch(settings, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    ids = [
        receive_file(
            settings,
            filled_return(settings, cycle, state, "en", national_total=100 + n),
            filename=f"{state}-{n}.xlsx",
            sender=f"{state.lower()}@example.org",
        )[0]
        for n in range(rounds)
        for state in STATES
    ]
    return cycle, ids


def _submissions(settings: Settings) -> list[m.Submission]:
    with session_scope(settings) as session:
        found = list(session.scalars(select(m.Submission).order_by(m.Submission.id)))
        for submission in found:
            _ = submission.state  # loaded for use after the session
        return found


def test_two_drainers_decide_and_answer_every_return_once(
    service: Settings,  # noqa: F811
    smtp: SmtpServer,
) -> None:
    _, ids = _record(service)
    calls: Counter[int] = Counter()

    def counted(settings: Settings, submission_id: int):
        calls[submission_id] += 1
        return decide_and_announce(settings, submission_id)

    drains: list[intake_work.Drain] = []
    threads = [
        threading.Thread(
            target=lambda: drains.append(intake_work.drain_decisions(service, counted))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(i for d in drains for i in d.decided) == ids
    assert set(calls.values()) == {1}, "a return was decided by two drainers"
    submissions = _submissions(service)
    assert all(s.status == "accepted" and s.decision_claimed_at for s in submissions)
    for state in STATES:
        assert sorted(s.version for s in submissions if s.state.code == state) == [1, 2]
    assert {c for d in drains for c in d.accepted_cycles} == {submissions[0].cycle_id}

    before = len(smtp.received)
    receipts: list[list[int]] = []
    threads = [
        threading.Thread(target=lambda: receipts.append(intake_work.drain_receipts(service)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert sorted(i for r in receipts for i in r) == ids
    assert len(smtp.received) - before == len(ids)
    assert intake_work.drain_receipts(service) == []  # nothing left, nothing sent again
    assert len(smtp.received) - before == len(ids)


def test_a_claim_of_a_killed_drainer_runs_out(service: Settings) -> None:  # noqa: F811
    _, ids = _record(service, rounds=1)
    first = intake_work.claim_waiting(service)  # the drainer that is then killed
    assert first == ids[0]
    # Fresh, its claim is passed by: the next claimer takes the next return.
    assert intake_work.claim_waiting(service) == ids[1]
    assert intake_work.waiting_work(service, dt.timedelta(0)) == (True, False)
    later = m.utcnow() + intake_work.LEASE + dt.timedelta(seconds=1)
    assert intake_work.claim_waiting(service, now=later) == ids[0]


def test_the_look_wakes_a_drain_for_work_no_drain_is_doing(
    service: Settings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _record(service, rounds=1)
    woken: list[str] = []
    assert tasks.look(service, wakes=woken.append) == []  # just received: not lost yet
    monkeypatch.setattr(tasks, "LOOK_AGE", dt.timedelta(0))
    assert tasks.look(service, wakes=woken.append) == [tasks.DECIDE]
    intake_work.drain_decisions(service, decide_and_announce)
    assert tasks.look(service, wakes=woken.append) == [tasks.RECEIPTS]
    intake_work.drain_receipts(service)
    assert tasks.look(service, wakes=woken.append) == []
    assert woken == [tasks.DECIDE, tasks.RECEIPTS]


def test_a_return_with_no_usable_address_is_not_claimed_again_and_again(
    service: Settings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _record(service, rounds=1)
    intake_work.drain_decisions(service, decide_and_announce)

    def unusable(session, settings, submission_id):
        raise ValueError("no address")

    monkeypatch.setattr(intake_work, "enqueue_receipt", unusable)
    assert intake_work.drain_receipts(service) == []
    assert intake_work.waiting_work(service, dt.timedelta(0)) == (False, False)
    assert intake_work.claim_unanswered(service, set()) is None


def test_wake_ups_fold_only_into_one_not_yet_submitted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wake-up asked for while an earlier one is being submitted is submitted again: the
    earlier one may have been read by a drain before this return was committed."""
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    submitting = threading.Event()
    release = threading.Event()
    submitted: list[str] = []

    def slow_submit(name: str) -> bool:
        submitting.set()
        release.wait(timeout=10)
        submitted.append(name)
        return True

    monkeypatch.setattr(tasks, "submit", slow_submit)
    waker = tasks._Waker()
    monkeypatch.setattr(tasks, "_waker", waker)
    tasks.wake_decisions()
    assert submitting.wait(timeout=10)
    for _ in range(5):  # all while the first is being submitted: one more, not five
        tasks.wake_decisions()
    release.set()
    assert waker.flush(timeout=10)
    assert submitted == [tasks.DECIDE, tasks.DECIDE]
    tasks.wake_consolidation()
    started = time.monotonic()
    assert waker.flush(timeout=10)  # flushed at once, not after the debounce
    assert submitted[-1] == tasks.SUMMARIES and time.monotonic() - started < 2


def test_no_wake_up_without_a_prefect_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(tasks.events, "api_configured", lambda: False)
    assert tasks.wake_decisions() is False and tasks.submit(tasks.DECIDE) is False
