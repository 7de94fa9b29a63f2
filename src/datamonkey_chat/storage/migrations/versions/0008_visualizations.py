"""Visualizations: Vega-Lite specs tied to a user's job (upstream's Visualizations API).

Jobs that completed before this revision get their plots saved as visualizations here,
as a job completing from now on does (analyses/visualizations.py, `generated_rows`): the
same ids, so the same plot is never saved twice.

Revision ID: 0008_visualizations
Revises: 0007_dataset_meta_type
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0008_visualizations"
down_revision = "0007_dataset_meta_type"
branch_labels = None
depends_on = None

BATCH = 200


def upgrade() -> None:
    table = op.create_table(
        "visualizations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_visualizations_user_job", "visualizations", ["user_id", "job_id"])
    _save_plots_of_completed_jobs(table)


def _save_plots_of_completed_jobs(table: sa.Table) -> None:
    """The frozen copy of `generated_rows` as it was at this revision."""
    connection = op.get_bind()
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("user_id", sa.String),
        sa.column("method", sa.String),
        sa.column("alignment_id", sa.String),
        sa.column("status", sa.String),
        sa.column("summary", sa.Text),
        sa.column("finished_ms", sa.BigInteger),
        sa.column("created_ms", sa.BigInteger),
    )
    last = ""
    while True:  # in batches by id: summaries can be large
        batch = connection.execute(
            sa.select(jobs)
            .where(jobs.c.status == "completed", jobs.c.summary.is_not(None), jobs.c.id > last)
            .order_by(jobs.c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            return
        last = batch[-1].id
        rows = [row for job in batch for row in _rows(job)]
        if rows:
            op.bulk_insert(table, rows)


def _rows(job: sa.Row) -> list[dict[str, object]]:
    try:
        plots = json.loads(job.summary).get("plots") or []
    except (ValueError, AttributeError):
        return []
    stamp = job.finished_ms or job.created_ms
    metadata = json.dumps(
        {"library": "vega-lite", "generated_by": f"datamonkey-chat:{job.method}"},
        separators=(",", ":"),
    )
    rows: list[dict[str, object]] = []
    for index, spec in enumerate(plots):
        if not isinstance(spec, dict):
            continue
        digest = hashlib.sha256(f"{job.id}/plots/{index}".encode()).hexdigest()
        title = spec.get("title")
        if isinstance(title, dict):
            title = title.get("text")
        if isinstance(title, list):
            title = " ".join(str(t) for t in title)
        if not (isinstance(title, str) and title.strip()):
            title = f"{job.method.upper()} plot {index + 1}"
        rows.append(
            {
                "id": f"viz{digest[:32]}",
                "user_id": job.user_id,
                "job_id": job.id,
                "dataset_id": job.alignment_id,
                "title": title.strip()[:200],
                "description": f"Plot {index + 1} of this {job.method.upper()} job, saved when "
                "it completed",
                "spec": json.dumps(spec, separators=(",", ":"), allow_nan=False),
                "config": "{}",
                "metadata": metadata,
                "created_ms": stamp + index,
                "updated_ms": stamp + index,
            }
        )
    return rows


def downgrade() -> None:
    op.drop_index("ix_visualizations_user_job", table_name="visualizations")
    op.drop_table("visualizations")
