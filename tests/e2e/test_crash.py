"""`kill -9` of a real `mou serve` (its embedded Prefect server, a real SMTP server) in the
middle of a burst of returns dropped into the inbox; started again, the service decides every
return once, sends every receipt once, numbers versions without a gap and renders the progress
summaries from every accepted return. One trial per database, polling with deadlines."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mou.catalogue.bootstrap import prepare_database
from mou.service.protocol import open_and_dispatch, reports_folder, stale_reports
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.conftest import relay
from tests.e2e.test_prefect_server import listening
from tests.e2e.test_service import free_port, wait_for
from tests.smtp_server import SmtpServer
from tests.test_protocol import filled_return

pytestmark = pytest.mark.timeout(600)

STATES = ["AF", "KZ", "TJ", "TM", "UZ"]


def start_service(settings: Settings, smtp: SmtpServer, log: Path) -> tuple[subprocess.Popen, int]:
    """`mou serve` as a user starts it, its log appended to ``log``; (process, Prefect port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MOU_"))}
    env.update(
        {
            "MOU_VAR_DIR": str(settings.var_dir),
            "MOU_DATABASE_URL": settings.effective_database_url,
            "MOU_PREFECT_PORT": str(free_port()),
            "MOU_PORTAL_PORT": str(free_port()),
            "MOU_SMTP_HOST": "127.0.0.1",
            "MOU_SMTP_PORT": str(smtp.port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mou"), "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=settings.var_dir.parent,
        )
    return process, int(env["MOU_PREFECT_PORT"])


def api_post(api: str, path: str, body: dict) -> Any:
    request = urllib.request.Request(
        api + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def decided(settings: Settings) -> int:
    with session_scope(settings) as session:
        return len(
            session.scalars(select(m.Submission.id).where(m.Submission.status != "received")).all()
        )


def test_kill_minus_9_mid_burst_then_restart_loses_and_repeats_nothing(
    tmp_path: Path, database_url: str
) -> None:
    smtp = SmtpServer()
    smtp.start()
    settings = relay(Settings(var_dir=tmp_path / "var", database_url=database_url), smtp)
    prepare_database(settings)
    cycle_id = open_and_dispatch(
        settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31)
    ).cycle_id
    # Two returns per state (a first and a correction) and two that are refused.
    returns = {
        f"{state.lower()}-{n}.xlsx": filled_return(
            settings, cycle_id, state, national_total=1000 + 10 * i + n
        )
        for i, state in enumerate(STATES)
        for n in (1, 2)
    }
    for state in ("KZ", "UZ"):
        returns[f"{state.lower()}-bad.xlsx"] = filled_return(
            settings,
            cycle_id,
            state,
            reporting_institution=None,  # required
        )
    log = tmp_path / "serve.log"
    process, prefect_port = start_service(settings, smtp, log)
    try:
        wait_for("the service banner", lambda: b"Serving until" in log.read_bytes(), 180, process)
        settings.inbox_dir.mkdir(parents=True, exist_ok=True)
        for name, data in returns.items():  # the burst
            partial = settings.inbox_dir / f".{name}.part"
            partial.write_bytes(data)
            partial.rename(settings.inbox_dir / name)
        wait_for("a few decisions", lambda: decided(settings) >= 3, 180, process)
        process.send_signal(signal.SIGKILL)  # mid-burst: no chance to finish anything
        process.wait(timeout=30)
        at_kill = decided(settings)
        with session_scope(settings) as session:
            # Claimed for sending when the process died: the relay may have taken these
            # already, and nobody can know; they are the only ones that may arrive twice.
            in_flight = set(
                session.scalars(
                    select(m.OutboxMessage.message_id).where(m.OutboxMessage.status == "sending")
                )
            )
        wait_for(
            "the killed service's Prefect server to die",
            lambda: not listening(prefect_port),
            60,
        )
        assert at_kill < len(returns), "the burst was over before the kill: no trial"

        process, prefect_port = start_service(settings, smtp, log)
        wait_for(
            "the restarted service",
            lambda: log.read_bytes().count(b"Serving until") == 2,
            180,
            process,
        )

        def finished() -> bool:
            with session_scope(settings) as session:
                submissions = session.scalars(select(m.Submission)).all()
                receipts = session.scalars(
                    select(m.OutboxMessage).where(m.OutboxMessage.kind == "receipt")
                ).all()
            return (
                len(submissions) == len(returns)
                and all(s.status != "received" for s in submissions)
                and len(receipts) == len(returns)
                and all(r.status == "sent" for r in receipts)
                and not stale_reports(settings)
            )

        wait_for("every return decided, receipted and summarised", finished, 300, process)

        with session_scope(settings) as session:
            submissions = session.scalars(select(m.Submission).order_by(m.Submission.id)).all()
            receipts = session.scalars(
                select(m.OutboxMessage).where(m.OutboxMessage.kind == "receipt")
            ).all()
            cycle = session.get(m.ReportingCycle, cycle_id)
            folder = reports_folder(settings, cycle)
            languages = list(cycle.instrument.languages)
            # Every file recorded once, decided once: one row each, each with one receipt.
            assert sorted(s.filename for s in submissions) == sorted(returns)
            assert sorted(r.submission_id for r in receipts) == [s.id for s in submissions]
            outcomes = Counter(s.status for s in submissions)
            assert outcomes == {"accepted": 10, "rejected": 2}
            for submission in submissions:
                keys = [
                    (i.code, i.field_key, i.cell)
                    for i in session.scalars(
                        select(m.ValidationIssue).filter_by(submission_id=submission.id)
                    )
                ]
                assert len(keys) == len(set(keys)), f"issues stored twice: {submission.filename}"
            # Versions: 1, 2 per state in the order received; the refused take none.
            for state in STATES:
                numbered = [
                    s.version
                    for s in submissions
                    if s.state.code == state and s.status == "accepted" and s.version
                ]
                assert numbered == list(range(1, len(numbered) + 1)), (state, numbered)
            assert all(s.version is None for s in submissions if s.status == "rejected")
            counted = sorted(
                s.id for s in submissions if s.status == "accepted" and s.superseded_by_id is None
            )
            assert len(counted) == len(STATES)
            message_ids = {r.message_id for r in receipts}
        # Each receipt reached the relay once (at most twice for one in flight at the kill).
        arrived = Counter(r.message_id for r in smtp.received if r.message_id in message_ids)
        assert set(arrived) == message_ids
        twice = {mid for mid, n in arrived.items() if n > 1}
        assert twice <= in_flight and max(arrived.values()) <= 2, (twice, in_flight)
        # The summaries were rendered from the full accepted set.
        manifest = json.loads((folder / "rendered.json").read_text())
        assert {language: sorted(manifest[language]) for language in languages} == {
            language: counted for language in languages
        }
        assert all((folder / f"progress-summary-{lang}.pdf").exists() for lang in languages)
        # No consolidation run was cancelled by another's (no Prefect concurrency limit).
        api = f"http://127.0.0.1:{prefect_port}/api"
        runs = api_post(api, "/flow_runs/filter", {"limit": 200})
        assert not [r for r in runs if r["state_type"] == "CANCELLED"], runs
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        smtp.stop()
