"""intake claims: which warm worker is deciding a return, or writing its receipt, and since when

A claim is a lease, not a lock: one older than the lease is taken over, so a worker killed
mid-return holds nothing up for long. The decision itself stays a conditional update.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("decision_claimed_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("decision_claimed_by", sa.String(length=120)))
        batch.add_column(sa.Column("receipt_claimed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("receipt_claimed_at")
        batch.drop_column("decision_claimed_by")
        batch.drop_column("decision_claimed_at")
