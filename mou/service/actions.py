"""The Secretariat's actions as the CLI and the dashboard run them: one transaction for the
change, its emails and its log entry; then the emails are sent and the reports rendered.

The database is already right when this returns early (a crash, a relay down): the outbox
sends later, and reports whose standing mark changed are stale until the sweep renders them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from mou.mail.delivery import deliver_pending
from mou.secretariat.publication import is_released
from mou.secretariat.results import ActionResult
from mou.service.protocol import consolidate_and_render, render_national_reports
from mou.settings import Settings
from mou.store.database import session_scope

log = logging.getLogger(__name__)


def perform(
    settings: Settings, action: Callable[[Session], ActionResult], *, render: bool = True
) -> ActionResult:
    """Run ``action`` in one transaction (a refusal rolls all of it back), then its effects.

    ``render=False`` leaves the reports the action made stale to the sweep (a dashboard
    request does not wait for a render; ``stale_reports`` knows from the database).
    """
    with session_scope(settings) as session:
        result = action(session)
    if result.emails:
        report = deliver_pending(settings)
        result.details.setdefault("emails_sent", report.sent)
        result.details.setdefault("emails_pending", report.still_pending)
    if render and result.render and result.cycle_id is not None:
        try:
            consolidate_and_render(settings, result.cycle_id)
            with session_scope(settings) as session:
                national = is_released(session, result.cycle_id, "national-reports")
            if national:
                render_national_reports(settings, result.cycle_id)
        except Exception as exc:  # the change stands; the sweep renders the stale reports
            # One line for the person at the terminal; the traceback for the logs' debug level.
            log.error(
                "the reports of cycle %s were not rendered (%s); the sweep renders them later",
                result.cycle_id,
                type(exc).__name__,
            )
            log.debug("render after %s failed", result.action, exc_info=True)
            result.details["rendered"] = False
        else:
            result.details["rendered"] = True
    return result
