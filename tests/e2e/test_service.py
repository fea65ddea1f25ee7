"""End to end on a real Prefect server: `mou serve` as a user runs it; a workbook dropped into
the inbox is decided by the service at once, its receipt reaches a real SMTP server, and the
warm task worker renders the progress summaries; a return received by another process is
decided by the warm task worker inside the service (a decide-waiting-returns task run)."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest

from mou.catalogue.bootstrap import prepare_database
from mou.service.protocol import open_and_dispatch
from mou.service.tasks import LOOK_AGE
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.conftest import relay
from tests.smtp_server import SmtpServer
from tests.test_protocol import filled_return

pytestmark = pytest.mark.timeout(420)


def free_port() -> int:
    """A free port for a server the test starts in another process, which must bind it itself.

    Not one the OS gives for port 0: those come from the range it also gives to every other
    process's port 0 and outgoing connection, so one released here is soon someone else's on a
    busy machine. A random free port below that range is not given out by the OS at all.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            first_ephemeral = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768
    candidates = range(10000, max(first_ephemeral, 10001))
    for _ in range(200):
        port = random.choice(candidates)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port below the ephemeral range")


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, process=None, step: float = 0.25
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"mou serve exited ({process.returncode}) waiting for {what}")
        result = check()
        if result:
            return result
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Service:
    settings: Settings
    smtp: SmtpServer
    api: str
    process: subprocess.Popen
    log: Path
    cycle_id: int

    def api_post(self, path: str, body: dict) -> Any:
        request = urllib.request.Request(
            self.api + path,
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("service")
    smtp = SmtpServer()
    smtp.start()
    settings = relay(Settings(var_dir=root / "var", prefect_port=free_port()), smtp)
    prepare_database(settings)
    cycle_id = open_and_dispatch(
        settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31)
    ).cycle_id
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MOU_"))}
    env.update(
        {
            "MOU_VAR_DIR": str(settings.var_dir),
            "MOU_PREFECT_PORT": str(settings.prefect_port),
            "MOU_PORTAL_PORT": str(free_port()),
            "MOU_SMTP_HOST": "127.0.0.1",
            "MOU_SMTP_PORT": str(smtp.port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    log = root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mou"), "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    api = f"http://127.0.0.1:{settings.prefect_port}/api"
    running = Service(settings, smtp, api, process, log, cycle_id)
    try:
        wait_for("the service banner", lambda: b"Serving until" in log.read_bytes(), 120, process)
        wait_for(
            "the ingest deployment",
            lambda: running.api_post("/deployments/filter", {"limit": 50}),
            60,
            process,
        )
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        smtp.stop()


def test_dropped_return_is_accepted_at_once_and_receipted(service: Service) -> None:
    settings = service.settings
    data = filled_return(settings, service.cycle_id, "UZ")
    inbox = settings.inbox_dir
    (inbox / "uz-2025-2026.xlsx.json").write_text(
        json.dumps({"sender": "focal.point.uz@example.org"})
    )
    (inbox / "uz-2025-2026.xlsx").write_bytes(data)

    def receipt():
        return [r for r in service.smtp.received if "focal.point.uz@example.org" in r.rcpt_tos]

    [message] = wait_for("the receipt at the SMTP server", receipt, 180, service.process)
    email = message.message
    assert [a for _, a in getaddresses([email["To"]])] == ["focal.point.uz@example.org"]
    assert [a for _, a in getaddresses([email["Cc"]])] == ["environment.uz@example.org"]
    [summary] = list(email.iter_attachments())
    assert summary.get_content().startswith(b"%PDF")

    with session_scope(settings) as session:
        [submission] = session.query(m.Submission).filter_by(channel="inbox").all()
        assert submission.status == "accepted" and submission.state.code == "UZ"

    # mou.submission.accepted triggers the consolidation, which renders the summaries.
    folder = settings.var_dir / "reports" / "bukhara-deer-2025-2026"
    expected = ["progress-summary-en.pdf", "progress-summary-ru.pdf"]
    wait_for(
        "the progress summaries in English and Russian",
        lambda: folder.exists() and sorted(p.name for p in folder.glob("*.pdf")) == expected,
        180,
        service.process,
    )
    assert all((folder / name).read_bytes().startswith(b"%PDF") for name in expected)


def test_return_received_elsewhere_is_decided_by_the_warm_task_worker(service: Service) -> None:
    """Another process records a return and wakes the workers (mou.ingest=queued): the task
    worker inside `mou serve` decides it in a decide-waiting-returns task run; no flow run."""
    settings = service.settings
    path = settings.var_dir / "kz-elsewhere.xlsx"
    path.write_bytes(filled_return(settings, service.cycle_id, "KZ"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MOU_"))}
    env.update(
        {
            "MOU_VAR_DIR": str(settings.var_dir),
            "PREFECT_API_URL": service.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    code = (
        "import sys; from pathlib import Path; from mou.service.protocol import receive_file; "
        "from mou.service.tasks import flush_wakeups; "
        "from mou.settings import Settings; p = Path(sys.argv[1]); "
        "print(receive_file(Settings(), p.read_bytes(), filename=p.name)[0]); "
        "assert flush_wakeups()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    submission_id = int(done.stdout.strip().splitlines()[-1])

    def decided() -> bool:
        with session_scope(settings) as session:
            return session.get(m.Submission, submission_id).status != "received"

    wait_for("the queued return decided", decided, 60, service.process)
    with session_scope(settings) as session:
        submission = session.get(m.Submission, submission_id)
        assert submission.status == "accepted" and submission.state.code == "KZ"
        assert submission.decision_claimed_at is not None  # by a drain, not by the sweep
        received = submission.received_at
    tasks = service.api_post("/task_runs/filter", {"limit": 200})
    drains = [t for t in tasks if t["name"].startswith("decide-waiting-returns")]
    assert any(t["state_type"] == "COMPLETED" for t in drains), [t["name"] for t in tasks]
    # Woken by the receiver itself: a drain created sooner than any look for lost work could
    # have acted (that waits LOOK_AGE after a return is received).
    created = [dt.datetime.fromisoformat(t["created"]) for t in drains]
    assert any(received <= c < received + LOOK_AGE for c in created), (received, created)
    runs = service.api_post("/flow_runs/filter", {"limit": 200})
    assert not [r for r in runs if "submission_id" in r["parameters"]]


def test_ctrl_c_stops_the_service_and_its_prefect_server(service: Service) -> None:
    service.process.send_signal(signal.SIGINT)
    assert service.process.wait(timeout=60) == 0
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", service.settings.prefect_port)) != 0
