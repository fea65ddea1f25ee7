"""mailbox: messages read from the Secretariat's mailbox, the returns they brought, supporting
documents, threading and bounces of outbox messages

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("in_reply_to", sa.Text(), nullable=True))
        batch.add_column(sa.Column("references", sa.Text(), nullable=True))
        batch.add_column(sa.Column("bounced_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "mail_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("sender", sa.String(length=254), nullable=True),
        sa.Column("from_header", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("sent_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("in_reply_to", sa.Text(), nullable=True),
        sa.Column("references", sa.Text(), nullable=True),
        sa.Column("folder", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outbox_message_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_message_id"],
            ["outbox_messages.id"],
            name=op.f("fk_mail_messages_outbox_message_id_outbox_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["raw_sha256"],
            ["stored_files.sha256"],
            name=op.f("fk_mail_messages_raw_sha256_stored_files"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_mail_messages_key")),
    )
    op.create_table(
        "mail_submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mail_message_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mail_message_id"],
            ["mail_messages.id"],
            name=op.f("fk_mail_submissions_mail_message_id_mail_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_mail_submissions_submission_id_submissions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_submissions")),
        sa.UniqueConstraint(
            "mail_message_id",
            "submission_id",
            name=op.f("uq_mail_submissions_mail_message_id_submission_id"),
        ),
    )
    op.create_index(
        op.f("ix_mail_submissions_submission_id"),
        "mail_submissions",
        ["submission_id"],
        unique=False,
    )
    op.create_table(
        "supporting_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("mail_message_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mail_message_id"],
            ["mail_messages.id"],
            name=op.f("fk_supporting_documents_mail_message_id_mail_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["stored_files.sha256"],
            name=op.f("fk_supporting_documents_sha256_stored_files"),
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_supporting_documents_submission_id_submissions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supporting_documents")),
        sa.UniqueConstraint(
            "submission_id", "sha256", name=op.f("uq_supporting_documents_submission_id_sha256")
        ),
    )
    op.create_index(
        op.f("ix_supporting_documents_submission_id"),
        "supporting_documents",
        ["submission_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_supporting_documents_submission_id"), table_name="supporting_documents")
    op.drop_table("supporting_documents")
    op.drop_index(op.f("ix_mail_submissions_submission_id"), table_name="mail_submissions")
    op.drop_table("mail_submissions")
    op.drop_table("mail_messages")
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("bounced_at")
        batch.drop_column("references")
        batch.drop_column("in_reply_to")
