"""The warm workers' drains (mou.service.intake_work) and their wake-ups (mou.service.tasks),
on both databases, without a Prefect server: claims keep drainers apart, a killed drainer's
claim runs out, every return is decided and answered once, and no wake-up is folded into one
submitted before the return it is for was committed."""

from __future__ import annotations

import datetime as dt
import threading
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


def _hold(settings: Settings, submission_id: int, by: str = "elsewhere:1") -> None:
    """A decider in another process holds this return (a fresh claim in hand)."""
    with session_scope(settings) as session:
        row = session.get(m.Submission, submission_id)
        row.decision_claimed_at, row.decision_claimed_by = m.utcnow(), by


def _versions(settings: Settings, *ids: int) -> list[int | None]:
    by_id = {s.id: s.version for s in _submissions(settings)}
    return [by_id[i] for i in ids]


def test_a_later_return_of_a_state_is_numbered_after_an_earlier_one_being_decided(
    service: Settings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mou.intake import decide

    monkeypatch.setattr(decide, "ORDER_WAIT_SECONDS", 300.0)  # it waits for the decision
    waiting = threading.Event()
    pause = decide.sleep

    def sleep(seconds: float) -> None:  # the waiter's pause between looks
        waiting.set()
        pause(seconds)

    monkeypatch.setattr(decide, "sleep", sleep)
    _, ids = _record(service)
    earlier, later = ids[0], ids[len(STATES)]  # Afghanistan's first and second return
    _hold(service, earlier)
    deciding = threading.Thread(target=decide_and_announce, args=(service, later))
    deciding.start()
    assert waiting.wait(timeout=120), "the later return was numbered before the earlier one"
    assert decide_and_announce(service, earlier).version == 1
    deciding.join(timeout=120)
    assert _versions(service, earlier, later) == [1, 2]


def test_no_wait_for_a_return_that_cannot_be_the_states(
    service: Settings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mou.intake import decide

    monkeypatch.setattr(decide, "ORDER_WAIT_SECONDS", 300.0)
    looks: list[float] = []
    monkeypatch.setattr(decide, "sleep", looks.append)  # a wait would pause (at once)
    cycle, ids = _record(service, rounds=1)

    def afghanistan_again(total: int) -> int:
        data = filled_return(service, cycle, "AF", "en", national_total=total)
        return receive_file(service, data, filename=f"af-{total}.xlsx", sender="af@example.org")[0]

    # Sent through Kazakhstan's link: if it is Afghanistan's, it is refused as the wrong state.
    other = receive_file(
        service, b"PK\x03\x04 ...", filename="kz.xlsx", state="KZ", cycle_id=cycle
    )[0]
    later = afghanistan_again(300)
    _hold(service, other)
    assert decide_and_announce(service, later).version == 1  # at once: not waiting for it
    # A return let go of by a drain whose decision failed is not waited for either.
    _hold(service, ids[0])
    intake_work.release(service, ids[0])  # not its claimer: the claim stays in hand
    with session_scope(service) as session:
        assert session.get(m.Submission, ids[0]).decision_claimed_by == "elsewhere:1"
    _hold(service, ids[0], by=intake_work.claimer())
    intake_work.release(service, ids[0])
    with session_scope(service) as session:
        held = session.get(m.Submission, ids[0])
        assert held.decision_claimed_by is None and held.decision_claimed_at is not None
    again = afghanistan_again(301)
    assert decide_and_announce(service, again).version == 2
    # A claim held longer than a decision takes (its decider stuck or killed): not either.
    stale = m.utcnow() - decide.HELD_FOR_A_DECISION - dt.timedelta(seconds=1)
    _hold(service, ids[1])
    with session_scope(service) as session:
        session.get(m.Submission, ids[1]).decision_claimed_at = stale
    fourth = afghanistan_again(302)
    assert decide_and_announce(service, fourth).version == 3
    assert looks == [], "a decider waited for a return it need not wait for"


def test_a_drain_lets_go_of_a_return_it_could_not_decide(
    service: Settings,  # noqa: F811
) -> None:
    _, ids = _record(service, rounds=1)

    def failing(settings: Settings, submission_id: int):
        raise RuntimeError("a fault of ours")

    drain = intake_work.drain_decisions(service, failing)
    assert drain.failed == ids  # each tried once: its lease keeps the drain off it
    for submission in _submissions(service):
        assert submission.decision_claimed_at is not None  # the lease keeps drains off it
        assert submission.decision_claimed_by is None  # later returns do not wait for it


def test_a_claim_of_a_killed_drainer_runs_out(service: Settings) -> None:  # noqa: F811
    _, ids = _record(service, rounds=1)
    first = intake_work.claim_waiting(service)  # the drainer that is then killed
    assert first == ids[0]
    # Fresh, its claim is passed by: the next claimer takes the next return.
    assert intake_work.claim_waiting(service) == ids[1]
    # Fresh claims: drains are at work, the look leaves the backlog to them.
    assert intake_work.waiting_work(service, dt.timedelta(0)) == (False, False)
    later = m.utcnow() + intake_work.LEASE + dt.timedelta(seconds=1)
    assert intake_work.waiting_work(service, dt.timedelta(0), now=later) == (True, False)
    assert intake_work.claim_waiting(service, now=later) == ids[0]


def test_a_drain_ends_after_the_return_in_hand_when_its_worker_stops(
    service: Settings,  # noqa: F811
) -> None:
    _, ids = _record(service, rounds=1)
    decided: list[int] = []

    def decide(settings: Settings, submission_id: int):
        decided.append(submission_id)
        return decide_and_announce(settings, submission_id)

    drain = intake_work.drain_decisions(service, decide, stopping=lambda: len(decided) >= 2)
    assert drain.decided == ids[:2]
    assert [s.status for s in _submissions(service)].count("received") == len(ids) - 2


def test_inline_ingest_leaves_a_return_a_drain_holds_to_that_drain(
    service: Settings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mou.intake import decide
    from mou.service.protocol import InlineIngest

    monkeypatch.setattr(decide, "ORDER_WAIT_SECONDS", 0.2)  # the held return is never decided
    _, ids = _record(service, rounds=1)
    held = intake_work.claim_waiting(service)  # a warm worker's drain is reading it
    inline = InlineIngest(service)
    try:
        assert inline.submit(held).result(timeout=60) is None  # not parsed a second time
        assert inline.submit(ids[1]).result(timeout=60).status == "accepted"
        decide_and_announce(service, held)  # the drain that holds it decides it
        # Decided meanwhile: the inline path reports it as it stands.
        assert inline.submit(held).result(timeout=60).already_decided
    finally:
        inline.close()


def test_the_look_wakes_a_render_for_stale_summaries(
    service: Settings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _record(service, rounds=1)
    intake_work.drain_decisions(service, decide_and_announce)
    woken: list[str] = []
    monkeypatch.setattr(tasks, "LOOK_AGE", dt.timedelta(days=1))  # receipts not overdue yet
    assert tasks.look(service, wakes=woken.append) == []  # the cheap look does not check
    assert tasks.look(service, wakes=woken.append, summaries=True) == [tasks.SUMMARIES]


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
    later = m.utcnow() + intake_work.LEASE + dt.timedelta(seconds=1)
    assert intake_work.waiting_work(service, dt.timedelta(0), now=later) == (False, False)
    assert intake_work.claim_unanswered(service, set(), now=later) is None


def test_a_return_with_nobody_to_answer_is_not_claimed_again_and_again(
    service: Settings,  # noqa: F811
) -> None:
    cycle = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE).cycle_id
    # No sender, and a file that names no state: a receipt has nobody to go to.
    receive_file(service, b"PK\x03\x04 not a workbook", filename="x.xlsx")
    assert cycle
    intake_work.drain_decisions(service, decide_and_announce)
    assert intake_work.drain_receipts(service) == []
    later = m.utcnow() + intake_work.LEASE + dt.timedelta(seconds=1)
    assert intake_work.waiting_work(service, dt.timedelta(0), now=later) == (False, False)
    assert intake_work.claim_unanswered(service, set(), now=later) is None


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
    monkeypatch.setattr(tasks, "SUMMARIES_DEBOUNCE", 3600.0)
    tasks.wake_consolidation()
    assert waker.flush(timeout=10)  # submitted at once: it never waits out the debounce
    assert submitted[-1] == tasks.SUMMARIES


def test_no_wake_up_without_a_prefect_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(tasks.events, "api_configured", lambda: False)
    assert tasks.wake_decisions() is False and tasks.submit(tasks.DECIDE) is False


def test_task_workers_outlive_an_api_that_cannot_be_reached(tmp_path) -> None:
    """A Prefect API whose name does not resolve ends Prefect's TaskWorker (only a refused
    connection is retried there): ours start again, so the process never stays without."""
    import os
    import subprocess
    import sys

    code = (
        "import time, logging; logging.disable(logging.WARNING)\n"
        "from mou.service.tasks import TaskWorkers\n"
        "workers = TaskWorkers(1).start(); time.sleep(6)\n"
        "print('alive' if workers.alive() else 'dead', flush=True)\n"
        "import os; os._exit(0)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MOU_"))}
    env.update(
        PREFECT_API_URL="http://no-such-host.invalid:4200/api",
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        MOU_VAR_DIR=str(tmp_path / "var"),
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip().splitlines()[-1] == "alive", done.stdout + done.stderr
