"""sweep: ingest anything recorded but not decided, send missing receipts and pending mail."""

from __future__ import annotations

from prefect import flow

from mou.service.protocol import sweep
from mou.settings import get_settings


@flow(name="sweep")
def sweep_flow() -> dict[str, int]:
    report = sweep(get_settings())
    return {
        "ingested": len(report.ingested),
        "receipts": len(report.receipts),
        "sent": report.delivery.sent if report.delivery else 0,
    }
