"""Datasets and HyPhy jobs.

Revision ID: 0002_analyses
Revises: 0001_chat
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_analyses"
down_revision = "0001_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("data_type", sa.String(16), nullable=True),
        sa.Column("sequences", sa.Integer, nullable=False),
        sa.Column("sites", sa.Integer, nullable=False),
        sa.Column("codons", sa.Integer, nullable=True),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_datasets_user_created", "datasets", ["user_id", "created_ms"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("alignment_id", sa.String(64), nullable=False),
        sa.Column("tree_id", sa.String(64), nullable=True),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("stage", sa.String(200), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("runner_id", sa.String(64), nullable=True),
        sa.Column("heartbeat_ms", sa.BigInteger, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=True),
        sa.Column("finished_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_jobs_user_created", "jobs", ["user_id", "created_ms"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_ms"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_created", table_name="jobs")
    op.drop_index("ix_jobs_user_created", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_datasets_user_created", table_name="datasets")
    op.drop_table("datasets")
