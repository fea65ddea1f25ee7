"""consolidate-cycle: after an accepted return, rebuild the cycle's progress summaries."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from mou.service.protocol import consolidate_and_render
from mou.settings import get_settings


@flow(name="consolidate-cycle")
def consolidate_cycle_flow(cycle_id: int) -> list[str]:
    paths = consolidate_and_render(get_settings(), int(cycle_id))
    create_markdown_artifact(
        key=f"cycle-{cycle_id}-summaries",
        markdown="\n".join(f"- `{p}`" for p in paths) or "no cycle",
        description=f"progress summaries of cycle {cycle_id}",
    )
    return [str(p) for p in paths]
