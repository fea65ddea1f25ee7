"""The deployments `mou serve` runs in-process (prefect.yaml declares the same for workers)."""

from __future__ import annotations

import threading

from mou.settings import Settings


def serve_deployments(settings: Settings) -> None:
    """Serve every flow of the service; blocks until interrupted."""
    deployments: list = []
    if not deployments:
        threading.Event().wait()
        return
    from prefect import serve

    serve(*deployments, print_starting_message=False)
