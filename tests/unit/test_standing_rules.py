"""The standing rule on plain values (no database): which return counts, the outcome, and
on time or late by how many days, for every kind of state a cycle has."""

from __future__ import annotations

import datetime as dt
import itertools

from mou.cycle.standing import ReceivedFile, Reminder, Request, Standing, state_standing

DEADLINE = dt.date(2025, 3, 31)
REQUEST = Request(
    reference="CMS/bukhara-deer/2023-2024/KZ/1",
    created_at=dt.datetime(2025, 1, 10, 10, tzinfo=dt.UTC),
    dispatched_at=dt.datetime(2025, 1, 10, 11, tzinfo=dt.UTC),
    email_status="sent",
    email_sent_at=dt.datetime(2025, 1, 10, 11, 5, tzinfo=dt.UTC),
)
_ids = itertools.count(1)


def at(day: dt.date, hour: int = 10, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=tz)


def file(
    status: str,
    received_at: dt.datetime,
    *,
    version: int | None = None,
    superseded: bool = False,
    file_id: int | None = None,
) -> ReceivedFile:
    return ReceivedFile(
        id=file_id if file_id is not None else next(_ids),
        status=status,
        received_at=received_at,
        version=version,
        superseded=superseded,
    )


def decide(*files: ReceivedFile, reminders: tuple[Reminder, ...] = ()) -> Standing:
    return state_standing(REQUEST, files, reminders, DEADLINE)


def test_accepted_by_the_deadline_is_on_time() -> None:
    accepted = file("accepted", at(DEADLINE, 23), version=1)
    standing = decide(accepted)
    assert standing.outcome == "accepted" and standing.counted == accepted
    assert (standing.timeliness, standing.days_late, standing.on_time) == ("on_time", 0, True)
    assert standing.first_accepted_received_at == at(DEADLINE, 23)


def test_the_deadline_is_a_utc_calendar_date() -> None:
    # 01:00 on 1 April in Tashkent is 20:00 UTC on 31 March: in time.
    tashkent = dt.timezone(dt.timedelta(hours=5))
    early = decide(file("accepted", at(DEADLINE + dt.timedelta(days=1), 1, tashkent)))
    assert early.timeliness == "on_time"
    # 23:00 on 31 March in New York is 04:00 UTC on 1 April: a day late.
    new_york = dt.timezone(dt.timedelta(hours=-5))
    late = decide(file("accepted", at(DEADLINE, 23, new_york)))
    assert (late.timeliness, late.days_late) == ("late", 1)


def test_accepted_after_the_deadline_is_late_by_the_days_past_it() -> None:
    standing = decide(file("accepted", at(DEADLINE + dt.timedelta(days=3), 8), version=1))
    assert standing.outcome == "accepted"
    assert (standing.timeliness, standing.days_late, standing.on_time) == ("late", 3, False)


def test_a_rejected_file_alone_is_refused() -> None:
    rejected = file("rejected", at(DEADLINE - dt.timedelta(days=5)))
    standing = decide(rejected)
    assert standing.outcome == "refused" and standing.counted is None
    assert standing.outcome_file == rejected
    assert (standing.timeliness, standing.days_late, standing.on_time) == (None, None, None)


def test_a_file_still_being_read_is_pending() -> None:
    standing = decide(file("received", at(DEADLINE - dt.timedelta(days=1))))
    assert standing.outcome == "pending" and standing.timeliness is None


def test_nothing_received_is_not_received() -> None:
    standing = decide(reminders=(Reminder("first", at(DEADLINE - dt.timedelta(days=14))),))
    assert standing.outcome == "not_received"
    assert standing.counted is None and standing.outcome_file is None
    assert standing.first_received_at is None and standing.timeliness is None
    assert standing.request == REQUEST
    nobody = state_standing(None, (), (), DEADLINE)
    assert nobody.outcome == "not_received" and nobody.request is None


def test_refused_then_accepted_late_is_late() -> None:
    # Refused in time, corrected after the deadline: nothing usable arrived by the deadline.
    refused = file("rejected", at(DEADLINE - dt.timedelta(days=6)), version=1)
    accepted = file("accepted", at(DEADLINE + dt.timedelta(days=3)), version=2)
    standing = decide(refused, accepted)
    assert standing.outcome == "accepted" and standing.counted == accepted
    assert (standing.timeliness, standing.days_late) == ("late", 3)
    assert standing.first_received_at == refused.received_at


def test_a_correction_supersedes_and_the_first_acceptance_decides_timeliness() -> None:
    first = file("accepted", at(DEADLINE - dt.timedelta(days=26)), version=1, superseded=True)
    correction = file("accepted", at(DEADLINE + dt.timedelta(days=8)), version=2)
    standing = decide(first, correction)
    assert standing.counted == correction and standing.outcome_file == correction
    assert (standing.timeliness, standing.days_late) == ("on_time", 0)
    assert standing.first_accepted_received_at == first.received_at


def test_a_newer_refused_or_pending_file_does_not_undo_an_acceptance() -> None:
    accepted = file("accepted", at(DEADLINE - dt.timedelta(days=10)), version=1)
    for newer in ("rejected", "received"):
        standing = decide(accepted, file(newer, at(DEADLINE - dt.timedelta(days=2))))
        assert standing.outcome == "accepted" and standing.counted == accepted
        assert standing.outcome_file == accepted and standing.timeliness == "on_time"


def test_received_order_decides_not_the_order_files_were_recorded_in() -> None:
    # The old ``mou status`` took the newest *recorded* file (highest id) and called this
    # state pending, while the reports took the newest *received* one and called it refused.
    rejected = file("rejected", at(DEADLINE - dt.timedelta(days=2)), file_id=101)
    pending = file("received", at(DEADLINE - dt.timedelta(days=4)), file_id=102)
    for order in ((rejected, pending), (pending, rejected)):
        standing = decide(*order)
        assert standing.outcome == "refused" and standing.outcome_file == rejected
        assert standing.files == (pending, rejected)


def test_files_at_the_same_moment_are_in_arrival_order() -> None:
    moment = at(DEADLINE - dt.timedelta(days=1))
    first, second = file("received", moment, file_id=7), file("rejected", moment, file_id=8)
    assert decide(second, first).outcome == "refused"


def test_only_sent_reminders_count() -> None:
    sent = at(DEADLINE - dt.timedelta(days=14))
    later = at(DEADLINE + dt.timedelta(days=1))
    reminders = (Reminder("second", later), Reminder("first", sent), Reminder("third", None))
    standing = decide(reminders=reminders)
    assert standing.reminders_sent_at == (sent, later)
    assert standing.last_reminder_at == later
    assert [r.step for r in standing.reminders] == ["second", "first", "third"]
