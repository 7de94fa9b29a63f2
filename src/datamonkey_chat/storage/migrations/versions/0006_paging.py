"""Each conversation keeps its last message sequence number, so a turn needs no scan.

A send reads `last_seq` with the conversation and writes its two messages at `last_seq + 1`
and `+ 2`, moving `last_seq` in the same UPDATE that moves `updated_ms` and only if it still
holds the value read (a compare-and-set: another process's turn in between makes it a
conflict). The history window and message pages are served by the unique
(conversation_id, seq) index; conversation pages by (user_id, updated_ms, id).

Revision ID: 0006_paging
Revises: 0005_slurm_job_id
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_paging"
down_revision = "0005_slurm_job_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("last_seq", sa.Integer, nullable=False, server_default="0"))
    op.execute(
        "UPDATE conversations SET last_seq = COALESCE("
        "(SELECT MAX(seq) FROM messages WHERE messages.conversation_id = conversations.id), 0)"
    )
    op.create_index(
        "ix_conversations_user_updated_id", "conversations", ["user_id", "updated_ms", "id"]
    )
    op.drop_index("ix_conversations_user_updated", table_name="conversations")


def downgrade() -> None:
    op.create_index("ix_conversations_user_updated", "conversations", ["user_id", "updated_ms"])
    op.drop_index("ix_conversations_user_updated_id", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("last_seq")
