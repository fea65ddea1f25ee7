"""Mailbox latency: a reply with the workbook delivered into the Secretariat's mailbox (IMAP
APPEND into a Dovecot on loopback, read in IDLE by `mou serve`) to its threaded receipt at a
real SMTP server (aiosmtpd); beside it, the same for returns dropped into var/inbox.

`mou serve` runs with its own Prefect server on a free port, a temporary var/ (SQLite), the
test Dovecot (tests/imap_server.py) as MOU_IMAP_* and aiosmtpd as MOU_SMTP_*. Replies and
drops alternate, one at a time (the next once the previous receipt has arrived), each a
distinct filled Bukhara deer return of Uzbekistan.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.latency import _percentile, free_port, wait_for
from benchmarks.read_validate import _cpu
from benchmarks.summary import Figure, record

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS-mailbox.md"
TARGET = 10.0  # seconds, reply to receipt, with IDLE (issue 14)
FOCAL_UZ = "environment.uz@example.org"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="replies (and as many drops)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from mou.catalogue.bootstrap import prepare_database
    from mou.demo.synthetic import synthetic_return
    from mou.service.protocol import open_and_dispatch
    from mou.settings import Settings
    from tests.imap_server import DovecotServer
    from tests.mailbox_mail import reply, xlsx
    from tests.smtp_server import SmtpServer

    load_start = os.getloadavg()[0]
    smtp = SmtpServer()
    smtp.start()
    imap = DovecotServer()
    imap.start()
    mail_rows: list[float] = []
    drop_rows: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            settings = Settings(
                var_dir=root / "var",
                prefect_port=free_port(),
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
            )
            prepare_database(settings)
            cycle_id = open_and_dispatch(
                settings, "bukhara-deer", "2025-2026", dt.date(2027, 3, 31), states=["UZ"]
            ).cycle_id
            [request] = [r.message for r in smtp.received]
            files = [
                synthetic_return(settings, cycle_id, "UZ", random.Random(seed)).data
                for seed in range(2 * args.rounds)
            ]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MOU_"))}
            env.update(
                {
                    "MOU_VAR_DIR": str(settings.var_dir),
                    "MOU_PREFECT_PORT": str(settings.prefect_port),
                    "MOU_PORTAL_PORT": str(free_port()),
                    "MOU_SMTP_HOST": "127.0.0.1",
                    "MOU_SMTP_PORT": str(smtp.port),
                    "MOU_IMAP_HOST": "127.0.0.1",
                    "MOU_IMAP_PORT": str(imap.port),
                    "MOU_IMAP_USER": imap.account.user,
                    "MOU_IMAP_PASSWORD": imap.account.password,
                    "MOU_IMAP_SECURITY": "none",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PYTHONPATH": str(ROOT),
                }
            )
            log = root / "serve.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "mou", "serve"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=root,
                )
            try:
                wait_for("the banner", lambda: b"Serving until" in log.read_bytes(), 180, process)
                wait_for(
                    "the reader",
                    lambda: _folder_exists(imap, "Processed"),
                    60,
                    process,
                    0.25,
                )
                inbox = settings.inbox_dir
                inbox.mkdir(parents=True, exist_ok=True)
                for number in range(args.rounds):
                    before = len(smtp.received)
                    answer = reply(
                        request, FOCAL_UZ, attachments=[xlsx(f"uz-{number}.xlsx", files[number])]
                    )
                    started = time.monotonic()
                    imap.append(answer.as_bytes())
                    wait_for("the receipt", lambda b=before: len(smtp.received) > b, 120, process)
                    mail_rows.append(time.monotonic() - started)
                    before = len(smtp.received)
                    name = f"uz-drop-{number}.xlsx"
                    (inbox / f"{name}.json").write_text(json.dumps({"sender": FOCAL_UZ}))
                    (inbox / f".{name}").write_bytes(files[args.rounds + number])
                    started = time.monotonic()
                    os.replace(inbox / f".{name}", inbox / name)
                    wait_for("the receipt", lambda b=before: len(smtp.received) > b, 120, process)
                    drop_rows.append(time.monotonic() - started)
                    print(f"round {number}: mail {mail_rows[-1]:.2f} s, drop {drop_rows[-1]:.2f} s")
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
                    try:
                        process.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
    finally:
        imap.stop()
        smtp.stop()
    load_end = os.getloadavg()[0]
    RESULTS.write_text(_report(mail_rows, drop_rows, load_start, load_end), encoding="utf-8")
    mail_p50 = statistics.median(mail_rows)
    record(
        "mailbox",
        [
            Figure(
                f"mailbox latency, reply (IMAP APPEND) → threaded receipt at SMTP, IDLE, "
                f"{len(mail_rows)} replies, `mou serve`",
                f"p50 {mail_p50:.2f} s, max {max(mail_rows):.2f} s (drop folder → receipt at "
                f"SMTP: p50 {statistics.median(drop_rows):.2f} s)",
                f"≤ {TARGET:.0f} s",
                "met" if max(mail_rows) <= TARGET else "not met",
            )
        ],
        f"python -m benchmarks.mailbox --rounds {args.rounds}",
        RESULTS.name,
    )
    print(RESULTS.read_text(encoding="utf-8"))
    return 0


def _folder_exists(imap: Any, folder: str) -> bool:
    client = imap.client()
    try:
        return bool(client.folder_exists(folder))
    finally:
        client.logout()


def _report(mail: list[float], drops: list[float], load_start: float, load_end: float) -> str:
    from importlib.metadata import version

    def row(label: str, values: list[float]) -> str:
        return (
            f"| {label} | {statistics.median(values):.2f} s | "
            f"{_percentile(values, 0.95):.2f} s | {min(values):.2f} s | {max(values):.2f} s |"
        )

    versions = f"prefect {version('prefect')}, imapclient {version('imapclient')}"
    dovecot = subprocess.run(
        ["/usr/sbin/dovecot", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"""# Mailbox latency benchmark

`mou serve` with the mailbox configured: Dovecot {dovecot} on loopback (IDLE offered and
used), aiosmtpd as the relay, SQLite, its own Prefect server. {len(mail)} replies to the
request email, each with a distinct filled Bukhara deer return of Uzbekistan, delivered by
IMAP APPEND; after each, one return dropped into var/inbox (with a sidecar naming the same
sender), for comparison. Measured from the APPEND (or the rename into the inbox) to the
receipt accepted by the SMTP server. Produced by `python -m benchmarks.mailbox --rounds
{len(mail)}`.

| from | p50 | p95 | min | max |
| --- | --- | --- | --- | --- |
{row("reply in the mailbox → threaded receipt at SMTP (IDLE)", mail)}
{row("drop into var/inbox → receipt at SMTP", drops)}

Target (issue 14): a reply answered within {TARGET:.0f} s with IDLE. Without IDLE the reader
looks every `MOU_IMAP_POLL_SECONDS` (60 s by default): add up to that interval. The drop folder
waits for a file to be unchanged for a second before taking it; the mailbox has no such wait
(a message is complete once the server lists it).

- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC
- CPU: {_cpu()} ({os.cpu_count()} logical CPUs); {platform.system()} {platform.release()}
- Python {platform.python_version()}; {versions}
- Load average (1 min) at start {load_start:.2f}, at the end {load_end:.2f}: the machine was
  shared with other engineers' test runs, so these figures are upper bounds.
"""


if __name__ == "__main__":
    sys.exit(main())
