"""Jobs remember the id of the executor's own job (Slurm's), so a restarted server follows it.

Revision ID: 0005_slurm_job_id
Revises: 0004_session_feed
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_slurm_job_id"
down_revision = "0004_session_feed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("slurm_job_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("slurm_job_id")
