"""Prefect events: signals only. The database already holds every fact they announce, so a
lost event delays work (the sweep picks it up) and a repeated one changes nothing."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

log = logging.getLogger(__name__)

SUBMISSION_RECEIVED = "mou.submission.received"
SUBMISSION_ACCEPTED = "mou.submission.accepted"
SUBMISSION_REJECTED = "mou.submission.rejected"
REQUEST_DISPATCHED = "mou.request.dispatched"
CYCLE_OPENED = "mou.cycle.opened"


def api_configured() -> bool:
    """Whether a Prefect API is set (environment, or Prefect's settings once imported)."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect" not in sys.modules:
        return False  # importing Prefect only to learn that nothing is configured costs a second
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def emit(
    event: str,
    resource_id: str,
    *,
    instrument: str | None = None,
    cycle_id: int | None = None,
    state: str | None = None,
    ingest: str | None = None,
    payload: dict[str, Any] | None = None,
) -> bool:
    """Emit an event with the contract's resource id and labels; False if it could not be."""
    if not api_configured():
        return False  # emit_event would drop it silently; say so to the caller instead
    from prefect.events import emit_event

    resource = {"prefect.resource.id": resource_id}
    labels = {
        "mou.instrument": instrument,
        "mou.cycle.id": cycle_id,
        "mou.state": state,
        "mou.ingest": ingest,
    }
    resource.update({k: str(v) for k, v in labels.items() if v is not None})
    try:
        return emit_event(event, resource=resource, payload=payload or {}) is not None
    except Exception:  # an event is a signal; the sweep covers a lost one
        log.warning("could not emit %s for %s", event, resource_id, exc_info=True)
        return False
