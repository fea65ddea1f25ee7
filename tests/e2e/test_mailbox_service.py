"""End to end: `mou serve` with the mailbox configured (Dovecot on loopback, IDLE) and a real
SMTP server; a reply with the workbook, delivered by IMAP APPEND, is accepted and its
threaded receipt reaches the SMTP server within 10 seconds; an out-of-office gets nothing."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mou.catalogue.bootstrap import prepare_database
from mou.service.protocol import open_and_dispatch
from mou.settings import Settings
from tests.conftest import relay
from tests.e2e.test_service import free_port, wait_for
from tests.imap_server import DovecotServer
from tests.mailbox_mail import reply, xlsx
from tests.smtp_server import SmtpServer
from tests.test_protocol import filled_return

pytestmark = pytest.mark.timeout(420)
FOCAL_UZ = "environment.uz@example.org"
WITHIN = 10.0  # seconds from the APPEND to the receipt at the SMTP server, IDLE


@dataclass
class MailService:
    settings: Settings
    smtp: SmtpServer
    imap: DovecotServer
    process: subprocess.Popen
    log: Path
    cycle_id: int


@pytest.fixture
def mail_service(tmp_path: Path, dovecot: DovecotServer, smtp: SmtpServer) -> Iterator[MailService]:
    settings = relay(Settings(var_dir=tmp_path / "var", prefect_port=free_port()), smtp)
    prepare_database(settings)
    cycle_id = open_and_dispatch(
        settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31), states=["UZ"]
    ).cycle_id
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MOU_"))}
    env.update(
        {
            "MOU_VAR_DIR": str(settings.var_dir),
            "MOU_PREFECT_PORT": str(settings.prefect_port),
            "MOU_PORTAL_PORT": str(free_port()),
            "MOU_SMTP_HOST": "127.0.0.1",
            "MOU_SMTP_PORT": str(smtp.port),
            "MOU_IMAP_HOST": "127.0.0.1",
            "MOU_IMAP_PORT": str(dovecot.port),
            "MOU_IMAP_USER": dovecot.account.user,
            "MOU_IMAP_PASSWORD": dovecot.account.password,
            "MOU_IMAP_SECURITY": "none",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mou"), "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        wait_for("the service banner", lambda: b"Serving until" in log.read_bytes(), 180, process)
        yield MailService(settings, smtp, dovecot, process, log, cycle_id)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_reply_is_accepted_and_answered_within_ten_seconds(mail_service: MailService) -> None:
    smtp, imap = mail_service.smtp, mail_service.imap
    [request] = [r.message for r in smtp.received]
    log = mail_service.log.read_text(errors="replace")
    assert f"{imap.account.user}@127.0.0.1:{imap.port}/INBOX" in log
    assert imap.account.password not in log
    # The reader is connected and waiting once the folder it creates is there.
    wait_for("the reader", lambda: imap.client().folder_exists("Processed"), 60)
    imap.append(
        reply(
            request, FOCAL_UZ, text="Out of office", headers={"Auto-Submitted": "auto-replied"}
        ).as_bytes()
    )
    workbook = filled_return(mail_service.settings, mail_service.cycle_id, "UZ", "ru")
    answer = reply(request, FOCAL_UZ, attachments=[xlsx("uz.xlsx", workbook)])
    before = len(smtp.received)
    appended = time.monotonic()
    imap.append(answer.as_bytes())

    def receipt() -> list:
        return [r.message for r in smtp.received[before:] if FOCAL_UZ in r.rcpt_tos]

    [message] = wait_for("the receipt", receipt, 60, mail_service.process)
    took = time.monotonic() - appended
    assert took <= WITHIN, f"receipt after {took:.1f} s"
    assert message["In-Reply-To"] == answer["Message-ID"]
    assert message["Auto-Submitted"] == "auto-replied"
    wait_for("both messages moved", lambda: len(imap.messages("Processed")) == 2, 30)
    # Nothing went to the out-of-office's sender but the receipt.
    assert len(smtp.received) == before + 1
