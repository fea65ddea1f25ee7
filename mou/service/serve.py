"""``mou serve``: the long-running service on embedded defaults or against a configured API."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from mou.catalogue.bootstrap import prepare_database
from mou.service.prefect_server import embedded_prefect_server, prefect_environment
from mou.settings import Settings
from mou.store.database import display_url

log = logging.getLogger(__name__)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (a service manager's stop) ends the service like Ctrl-C


# Starts the portal in a thread; the returned handle has ``url`` and stops it when called. The
# command line passes the portal in, so the service layer never imports its entry points.
PortalStarter = Callable[..., Any]


def serve(settings: Settings, portal: PortalStarter) -> int:
    """Prepare the database, start (or join) Prefect, serve every deployment until Ctrl-C."""
    signal.signal(signal.SIGTERM, _interrupt)
    prepare_database(settings)
    configured_api = os.environ.get("PREFECT_API_URL")
    if configured_api:
        _run_service(settings, configured_api, portal)
        return 0
    with embedded_prefect_server(
        settings.prefect_home, settings.prefect_host, settings.prefect_port
    ) as api_url:
        _run_service(settings, api_url, portal)
    return 0


def banner(settings: Settings, api_url: str) -> list[str]:
    """What ``mou serve`` prints on start: where to look. Never a password."""
    outbox = settings.outbox_dir if not settings.smtp_host else settings.smtp_host
    return [
        f"Prefect UI:     {api_url.removesuffix('/api')}",
        f"Database:       {display_url(settings.effective_database_url)}",
        f"Files:          {settings.var_dir}",
        f"Inbox:          {settings.inbox_dir} (drop returned workbooks here)",
        f"Outbox:         {outbox}",
        f"Mailbox:        {mailbox_line(settings)}",
    ]


def mailbox_line(settings: Settings) -> str:
    """Where the mailbox is read, never with its password."""
    if not settings.imap_host:
        return "off (set MOU_IMAP_HOST to read returns sent by email)"
    return (
        f"{settings.imap_user}@{settings.imap_host}:{settings.effective_imap_port}/"
        f"{settings.imap_folder} ({settings.imap_security}), read mail moved to "
        f"{settings.imap_processed_folder}"
    )


def _start_up_sweep(settings: Settings) -> None:
    from mou.service.protocol import sweep

    try:
        report = sweep(settings, older_than=dt.timedelta(0))
    except Exception:
        log.exception("start-up sweep failed; the scheduled sweep tries again")
        return
    if report.ingested or report.receipts or report.reports:
        log.warning(
            "start-up sweep: %d returns decided, %d receipts, %d cycles' summaries rendered",
            len(report.ingested),
            len(report.receipts),
            len(report.reports),
        )


def _has_accounts(settings: Settings) -> bool:
    from mou.accounts.users import has_users
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        return has_users(session)


def _run_service(settings: Settings, api_url: str, portal: PortalStarter) -> None:
    os.environ.update(prefect_environment(settings.prefect_home, api_url))
    print("\n".join(banner(settings, api_url)), flush=True)
    from mou.service.deployments import serve_deployments
    from mou.service.inbox import InboxWatcher
    from mou.service.protocol import InlineIngest
    from mou.service.tasks import TaskWorkers, keep_looking, submit

    # Drops, uploads and mail are decided here at once by InlineIngest; returns that other
    # processes record (queued) and the renders after acceptances go to the warm task
    # workers, served in this process as `mou worker` serves them on other machines.
    task_workers = TaskWorkers(limit=2).start()
    stop_portal = portal(settings, ingest="thread")
    print(f"Portal:         {settings.portal_base_url or stop_portal.url}", flush=True)
    print(f"Dashboard:      {settings.portal_base_url or stop_portal.url}/dashboard")
    if not _has_accounts(settings):
        print(
            "                no account yet: create the first admin with "
            "`mou user add NAME --role admin`",
            flush=True,
        )
    if os.environ.get("MOU_SECRETARIAT_TOKEN"):
        print(
            "MOU_SECRETARIAT_TOKEN is no longer used: the Secretariat signs in with named "
            "accounts (`mou user add NAME --role admin`); unset it.",
            file=sys.stderr,
            flush=True,
        )
    print("Serving until Ctrl-C.", flush=True)
    ingest = InlineIngest(settings)
    watcher = InboxWatcher(settings, ingest=ingest)
    watcher.start()
    mailbox = None
    if settings.imap_host:
        from mou.service.mailbox import start_listener

        # IDLE where the server offers it, else a look every MOU_IMAP_POLL_SECONDS.
        mailbox = start_listener(settings, ingest)
    # What the last run left (a kill -9 mid-burst): undecided returns, receipts, stale
    # summaries, mail. Beside the service, so it starts serving at once.
    threading.Thread(
        target=_start_up_sweep, args=(settings,), name="start-up-sweep", daemon=True
    ).start()
    looking = threading.Event()
    threading.Thread(
        target=keep_looking, args=(settings, looking, submit), name="mou-look", daemon=True
    ).start()
    try:
        serve_deployments(settings)
    except KeyboardInterrupt:
        print("stopping...", file=sys.stderr, flush=True)
    finally:
        looking.set()
        task_workers.stop()
        watcher.stop()
        if mailbox is not None:
            mailbox.stop()
        stop_portal()
        ingest.close()
