"""Cycle schedules: biennial (Bukhara Deer MoU) and every 2½ years (CAMI), with DTSTART;
prefect.yaml declares the same deployments, schedules and triggers as `mou serve`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from prefect.client.schemas.schedules import RRuleSchedule

from mou.cycle.schedule import cycle_for_run, cycle_rrule, instrument_entry, period_before
from mou.service.deployments import build_deployments
from mou.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def next_dates(rule: str, after: dt.datetime, n: int) -> list[dt.date]:
    schedule = RRuleSchedule(rrule=rule, timezone="UTC")
    dates = schedule.to_rrule()
    found = []
    moment = after
    for _ in range(n):
        moment = dates.after(moment)
        found.append(moment.date())
    return found


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


def test_bukhara_requests_are_biennial_from_2027(settings: Settings) -> None:
    rule = cycle_rrule(instrument_entry(settings, "bukhara-deer"))
    assert rule is not None and "DTSTART:20270115" in rule and "FREQ=YEARLY;INTERVAL=2" in rule
    start = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    assert next_dates(rule, start, 3) == [
        dt.date(2027, 1, 15),
        dt.date(2029, 1, 15),
        dt.date(2031, 1, 15),
    ]


def test_cami_requests_follow_its_30_month_meeting_cycle(settings: Settings) -> None:
    rule = cycle_rrule(instrument_entry(settings, "cami"))
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert next_dates(rule, start, 3) == [
        dt.date(2026, 7, 1),
        dt.date(2029, 1, 1),
        dt.date(2031, 7, 1),
    ]


def test_a_scheduled_run_opens_the_period_that_just_ended(settings: Settings) -> None:
    assert cycle_for_run("bukhara-deer", dt.date(2027, 1, 15), settings) == (
        "2025-2026",
        dt.date(2027, 4, 15),
    )
    assert period_before(dt.date(2029, 1, 15), 24) == "2027-2028"
    assert cycle_for_run("cami", dt.date(2026, 7, 1), settings)[0] == "2024-2026"


def test_prefect_yaml_matches_the_served_deployments(settings: Settings) -> None:
    declared = {
        d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }
    assert set(declared) == {
        "sweep",
        "deliver-outbox",
        "poll-mailbox",
        "send-reminders",
        "open-cycle-bukhara-deer",
        "open-cycle-cami",
    }
    for name in ("bukhara-deer", "cami"):
        [schedule] = declared[f"open-cycle-{name}"]["schedules"]
        assert schedule["rrule"] == cycle_rrule(instrument_entry(settings, name))
    served = {d.name for d in build_deployments(settings)}
    assert served == set(declared)
    # Intake is the warm workers' (mou.service.tasks), never a flow run per return.
    assert not any("triggers" in d for d in declared.values())
    for path in {d["entrypoint"].split(":")[0] for d in declared.values()}:
        assert (ROOT / path).exists(), path
