"""consolidate-cycle: after an accepted return, rebuild the cycle's progress summaries."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from mou.service.protocol import (
    render_if_stale,
    render_national_reports,
    stale_national_reports,
)
from mou.settings import get_settings


@flow(name="consolidate-cycle")
def consolidate_cycle_flow(cycle_id: int) -> list[str]:
    settings = get_settings()
    # No Prefect concurrency limit: runs of one cycle take turns on its render lock and render
    # only what the database says is out of date; other cycles' runs go on beside them.
    paths = render_if_stale(settings, int(cycle_id))
    if int(cycle_id) in stale_national_reports(settings):  # released national reports too
        paths += render_national_reports(settings, int(cycle_id))
    create_markdown_artifact(
        key=f"cycle-{cycle_id}-summaries",
        markdown="\n".join(f"- `{p}`" for p in paths) or "up to date: nothing rendered",
        description=f"progress summaries of cycle {cycle_id}",
    )
    return [str(p) for p in paths]
