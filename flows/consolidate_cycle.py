"""consolidate-cycle: after an accepted return, rebuild the cycle's progress summaries."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from mou.service.protocol import consolidate_and_render, render_stale_reports
from mou.settings import get_settings


@flow(name="consolidate-cycle")
def consolidate_cycle_flow(cycle_id: int) -> list[str]:
    settings = get_settings()
    paths = consolidate_and_render(settings, int(cycle_id))
    # Runs for other cycles, or for returns accepted during this render, may have been
    # cancelled by the one-at-a-time limit: the database says what is still stale.
    render_stale_reports(settings)
    create_markdown_artifact(
        key=f"cycle-{cycle_id}-summaries",
        markdown="\n".join(f"- `{p}`" for p in paths) or "no cycle",
        description=f"progress summaries of cycle {cycle_id}",
    )
    return [str(p) for p in paths]
