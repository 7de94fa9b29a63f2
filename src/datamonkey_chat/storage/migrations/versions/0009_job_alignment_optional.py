"""A job's alignment is optional: a method that reads only a tree (Slatkin-Maddison, as
upstream's SlatkinRequest has only `tree`) runs on a tree dataset alone.

Downgrade: such jobs name their tree as their alignment, so the old schema (NOT NULL) keeps
them and their results; the old code fails a queued one with a reason ("a tree, not an
alignment") instead of running it.

Revision ID: 0009_job_alignment_optional
Revises: 0008_visualizations
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_job_alignment_optional"
down_revision = "0008_visualizations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch: SQLite cannot ALTER a column's nullability (the table is copied)
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("alignment_id", existing_type=sa.String(64), nullable=True)


def downgrade() -> None:
    jobs = sa.table("jobs", sa.column("alignment_id", sa.String), sa.column("tree_id", sa.String))
    op.execute(
        jobs.update().where(jobs.c.alignment_id.is_(None)).values(alignment_id=jobs.c.tree_id)
    )
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("alignment_id", existing_type=sa.String(64), nullable=False)
