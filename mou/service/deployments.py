"""The deployments `mou serve` runs in-process; prefect.yaml declares the same for workers."""

from __future__ import annotations

import sys
from typing import Any

from mou.catalogue.reference import read_catalogue
from mou.cycle.schedule import cycle_rrule
from mou.settings import Settings

INGEST_TRIGGER: dict[str, Any] = {
    "name": "ingest each received submission",
    "expect": ["mou.submission.received"],
    # Returns ingested inline by the process that received them do not need a flow run.
    "match": {"prefect.resource.id": "mou.submission.*", "mou.ingest": "queued"},
    "parameters": {"submission_id": "{{ event.payload.submission_id }}"},
}
CONSOLIDATE_TRIGGER: dict[str, Any] = {
    "name": "consolidate after an accepted return",
    "expect": ["mou.submission.accepted"],
    "match": {"prefect.resource.id": "mou.submission.*"},
    "parameters": {"cycle_id": "{{ event.payload.cycle_id }}"},
    # A burst of accepted returns collapses into one run per cycle: after firing for a cycle,
    # the trigger ignores that cycle's acceptances for `within` seconds, and the run starts
    # `schedule_after` seconds after the event, no sooner: so every ignored acceptance was
    # committed before the run reads the database (within <= schedule_after; one clock).
    # Whatever a lost event or clock skew leaves stale, the run's re-check, the sweep and the
    # start-up sweep render (rendered.json); Prefect's slots decide nothing.
    "for_each": ["mou.cycle.id"],
    "within": 5,
    "schedule_after": 5,
}


def build_deployments(settings: Settings, *, mailbox_poll: bool = True) -> list[Any]:
    """RunnerDeployments with their schedules and triggers (imports Prefect lazily).

    ``mailbox_poll=False`` leaves out poll-mailbox: `mou serve` reads the mailbox itself
    (IDLE), a second reader there would only repeat its work."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.events import DeploymentEventTrigger

    if str(settings.flows_parent) not in sys.path:
        sys.path.insert(0, str(settings.flows_parent))
    from flows.consolidate_cycle import consolidate_cycle_flow
    from flows.deliver_outbox import deliver_outbox_flow
    from flows.ingest_submission import ingest_submission_flow
    from flows.open_cycle import open_cycle_flow
    from flows.poll_mailbox import poll_mailbox_flow
    from flows.send_reminders import send_reminders_flow
    from flows.sweep import sweep_flow

    one_at_a_time = ConcurrencyLimitConfig(
        limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    )
    deployments = [
        ingest_submission_flow.to_deployment(
            name="ingest-submission",
            triggers=[DeploymentEventTrigger(**INGEST_TRIGGER)],
        ),
        consolidate_cycle_flow.to_deployment(
            name="consolidate-cycle",
            triggers=[DeploymentEventTrigger(**CONSOLIDATE_TRIGGER)],
            # No concurrency limit: one would cancel or hold another cycle's run (see
            # render_if_stale for what keeps renders of one cycle apart).
        ),
        sweep_flow.to_deployment(name="sweep", interval=300, concurrency_limit=one_at_a_time),
        deliver_outbox_flow.to_deployment(
            name="deliver-outbox", interval=60, concurrency_limit=one_at_a_time
        ),
        send_reminders_flow.to_deployment(
            name="send-reminders", cron="0 6 * * *", concurrency_limit=one_at_a_time
        ),
    ]
    if mailbox_poll:
        deployments.append(
            poll_mailbox_flow.to_deployment(
                name="poll-mailbox", interval=60, concurrency_limit=one_at_a_time
            )
        )
    for instrument in read_catalogue(settings.catalogue_dir).instruments:
        rule = cycle_rrule(instrument)
        deployments.append(
            open_cycle_flow.to_deployment(
                name=f"open-cycle-{instrument.code}",
                rrule=rule,
                parameters={"instrument": instrument.code},
            )
        )
    return deployments


def serve_deployments(settings: Settings) -> None:
    """Serve every deployment of the service; blocks until interrupted."""
    from prefect import serve

    # query_seconds: the runner's poll for runs to start (Prefect's default is 10 s); the
    # PREFECT_RUNNER_POLL_FREQUENCY variable is read when Prefect is first imported, too early.
    serve(
        *build_deployments(settings, mailbox_poll=False),
        print_starting_message=False,
        limit=4,
        query_seconds=1,
    )
