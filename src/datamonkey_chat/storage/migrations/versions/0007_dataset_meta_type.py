"""Datasets keep the `type` their uploader gave (upstream's DatasetMeta.type), unchanged.

Null for datasets stored before, and when none was given: the answer's `type` is then the
detected kind.

Revision ID: 0007_dataset_meta_type
Revises: 0006_paging
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_dataset_meta_type"
down_revision = "0006_paging"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("meta_type", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("meta_type")
