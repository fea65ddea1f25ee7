"""The scheduled deployments `mou serve` runs in-process; prefect.yaml declares the same for a
work pool. Intake and renders are background tasks of warm workers (mou.service.tasks)."""

from __future__ import annotations

import sys
from typing import Any

from mou.catalogue.reference import read_catalogue
from mou.cycle.schedule import cycle_rrule
from mou.settings import Settings


def build_deployments(settings: Settings, *, mailbox_poll: bool = True) -> list[Any]:
    """RunnerDeployments with their schedules and triggers (imports Prefect lazily).

    ``mailbox_poll=False`` leaves out poll-mailbox: `mou serve` reads the mailbox itself
    (IDLE), a second reader there would only repeat its work."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    if str(settings.flows_parent) not in sys.path:
        sys.path.insert(0, str(settings.flows_parent))
    from flows.deliver_outbox import deliver_outbox_flow
    from flows.open_cycle import open_cycle_flow
    from flows.poll_mailbox import poll_mailbox_flow
    from flows.send_reminders import send_reminders_flow
    from flows.sweep import sweep_flow

    one_at_a_time = ConcurrencyLimitConfig(
        limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    )
    # Intake and renders are not deployments: warm task workers drain them (mou.service.tasks).
    deployments = [
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
