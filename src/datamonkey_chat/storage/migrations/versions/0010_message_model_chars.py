"""An assistant message keeps its record's size for the context budget (`model_chars`).

Each send measures the turns of its window against the context budget; measuring a turn
meant parsing its record (`model_messages`) again on every send. The size is now stored
with the message when it is written. Messages written before have none and are measured
from their record, as before.

Revision ID: 0010_message_model_chars
Revises: 0009_job_alignment_optional
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_message_model_chars"
down_revision = "0009_job_alignment_optional"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("model_chars", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:  # SQLite copies the table to drop one
        batch.drop_column("model_chars")
