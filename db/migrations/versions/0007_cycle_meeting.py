"""the meeting a cycle's progress summary serves: name, number, place, dates, agenda item,
original language and the action requested, as the Secretariat sets them

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reporting_cycles") as batch:
        batch.add_column(sa.Column("meeting", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reporting_cycles") as batch:
        batch.drop_column("meeting")
