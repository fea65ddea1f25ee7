"""ingest-submission: read, check and decide one submission; receipt; outcome event.

Triggered by ``mou.submission.received`` (see prefect.yaml); the sweep covers lost events.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from mou.service.protocol import process_submission
from mou.settings import get_settings


@flow(name="ingest-submission")
def ingest_submission_flow(submission_id: int) -> str:
    outcome = process_submission(get_settings(), int(submission_id))
    if outcome.issues:
        create_table_artifact(
            key=f"submission-{submission_id}-issues",
            table=[
                {
                    "severity": i.severity,
                    "sheet": i.sheet or "",
                    "cell": i.cell or "",
                    "message": i.message,
                }
                for i in outcome.issues
            ],
            description=f"submission {submission_id}: {outcome.status}",
        )
    return outcome.status
