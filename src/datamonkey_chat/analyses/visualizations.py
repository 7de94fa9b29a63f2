"""Visualizations (upstream's Visualizations API): Vega-Lite specs tied to a user's job.

A client stores its own charts of a job's results; a job's own plots (the summary's `plots`)
are saved as visualizations when the job completes, marked `metadata.generated_by`
= "datamonkey-chat:<method>". Only the owner reaches a visualization: another user's is
ForbiddenError (403, as for jobs and datasets), an unknown id NotFoundError (404).

Bad input is InvalidDataError (400, upstream's InvalidDataError body): each problem names
its field. A job or dataset that is unknown or someone else's is such a problem too (field
`job_id` / `dataset_id`), since upstream's create and update answer only 400 for bad data;
both cases read the same, so ids of other users' jobs cannot be probed. Nothing HTTP here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from typing import Any

from sqlalchemy.exc import IntegrityError

from datamonkey_chat.domain.clock import iso_utc, now_ms
from datamonkey_chat.domain.errors import ForbiddenError, InvalidDataError, NotFoundError
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.models import JobRow, VisualizationRow
from datamonkey_chat.storage.text import unstorable_reason

log = logging.getLogger(__name__)

LIBRARY = "vega-lite"
GENERATED_BY_PREFIX = "datamonkey-chat:"
MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000
MAX_SPEC_BYTES = 256 * 1024  # serialized; a client's spec, not the server's own plots
MAX_OBJECT_BYTES = 64 * 1024  # config and metadata
VEGA_LITE_SCHEMA = re.compile(
    r"^https?://vega\.github\.io/schema/vega-lite/v[0-9][0-9.]*(\.json)?$"
)
UPDATABLE = ("title", "description", "spec", "config", "metadata")


class VisualizationNotFoundError(NotFoundError, LookupError):
    pass


class VisualizationNotOwnedError(ForbiddenError, LookupError):
    pass


# ---------------------------------------------------------------- records


def visualization_json(row: VisualizationRow) -> dict[str, Any]:
    body: dict[str, Any] = {
        "viz_id": row.id,
        "job_id": row.job_id,
        "title": row.title,
        "spec": json.loads(row.spec),
        "config": json.loads(row.config),
        "metadata": json.loads(row.meta),
        "created_at": iso_utc(row.created_ms),
        "updated_at": iso_utc(row.updated_ms),
    }
    # Optional in upstream's schema: absent rather than null, which its clients may refuse
    if row.dataset_id is not None:
        body["dataset_id"] = row.dataset_id
    if row.description is not None:
        body["description"] = row.description
    return body


def _dump(value: Any) -> str:
    # ASCII escapes: whatever the text holds, the column stores it
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------- checks


class _Problems:
    """Collects every problem of a request, so one answer lists them all."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def raise_any(self) -> None:
        if self.errors:
            shown = "; ".join(f"{e['field']}: {e['message']}" for e in self.errors)
            raise InvalidDataError(f"The visualization is not valid: {shown}", self.errors)

    def text(self, body: dict[str, Any], field: str, limit: int, *, required: bool) -> str | None:
        value = body.get(field)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            self.add(field, f"{field} must be a non-empty string" if required else "must be text")
            return None
        if len(value) > limit:
            self.add(field, f"{field} is longer than {limit} characters")
            return None
        reason = unstorable_reason(value)
        if reason is not None:
            self.add(field, f"{field} {reason}")
            return None
        return value.strip() if required else value

    def json_object(self, body: dict[str, Any], field: str, limit: int) -> str | None:
        """The object serialized for storage, or None (a problem recorded)."""
        value = body.get(field)
        if not isinstance(value, dict):
            self.add(field, f"{field} must be a JSON object")
            return None
        try:
            text = _dump(value)
        except (ValueError, RecursionError):
            self.add(field, f"{field} is nested too deeply or holds a non-finite number")
            return None
        if len(text) > limit:
            self.add(field, f"{field} is {len(text)} bytes serialized; the limit is {limit}")
            return None
        # Stored as ASCII escapes, but a NUL or a lone surrogate would reach clients as such
        if ("\\u0000" in text or "\\ud" in text) and _unreadable(value):
            self.add(field, f"{field} holds a NUL character or a lone surrogate")
            return None
        return text

    def spec(self, body: dict[str, Any]) -> str | None:
        text = self.json_object(body, "spec", MAX_SPEC_BYTES)
        if text is None:
            return None
        schema = body["spec"].get("$schema")
        if schema is not None and not (isinstance(schema, str) and VEGA_LITE_SCHEMA.match(schema)):
            self.add("spec", "spec.$schema must be a Vega-Lite schema URL")
            return None
        return text


def _unreadable(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and unstorable_reason(item) is not None:
            return True
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _metadata(body: dict[str, Any], problems: _Problems) -> str | None:
    """The metadata object; `library` defaults to vega-lite."""
    if body.get("metadata") is None:
        return _dump({"library": LIBRARY})
    text = problems.json_object(body, "metadata", MAX_OBJECT_BYTES)
    if text is None:
        return None
    return _dump({"library": LIBRARY, **body["metadata"]})


def _id_field(body: dict[str, Any], field: str, problems: _Problems, *, required: bool) -> str:
    value = body.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        problems.add(field, f"{field} must be the id of one of your {field[:-3]}s")
        return ""
    return value


# ---------------------------------------------------------------- generated plots


def generated_id(job_id: str, index: int) -> str:
    """The same id every time a job's plot is saved: saving twice stores it once."""
    digest = hashlib.sha256(f"{job_id}/plots/{index}".encode()).hexdigest()
    return f"viz{digest[:32]}"


def _plot_title(spec: dict[str, Any], method: str, index: int) -> str:
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, list):
        title = " ".join(str(t) for t in title)
    if isinstance(title, str) and title.strip():
        return title.strip()[:MAX_TITLE_CHARS]
    return f"{method.upper()} plot {index + 1}"


def generated_rows(job: JobRow) -> list[VisualizationRow]:
    """A completed job's plots (its stored summary's `plots`) as visualizations of the job."""
    if job.status != "completed" or not job.summary:
        return []
    plots = json.loads(job.summary).get("plots") or []
    stamp = job.finished_ms or now_ms()
    metadata = _dump({"library": LIBRARY, "generated_by": f"{GENERATED_BY_PREFIX}{job.method}"})
    return [
        VisualizationRow(
            id=generated_id(job.id, index),
            user_id=job.user_id,
            job_id=job.id,
            # the data analysed: the alignment, or the tree of a run on a tree alone
            dataset_id=job.alignment_id or job.tree_id,
            title=_plot_title(spec, job.method, index),
            description=f"Plot {index + 1} of this {job.method.upper()} job, saved when it "
            "completed",
            spec=_dump(spec),
            config="{}",
            meta=metadata,
            # a millisecond apart: lists (oldest first) keep the method's order of plots
            created_ms=stamp + index,
            updated_ms=stamp + index,
        )
        for index, spec in enumerate(plots)
        if isinstance(spec, dict)
    ]


# ---------------------------------------------------------------- the service


class VisualizationService:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        problems = _Problems()
        job_id = _id_field(body, "job_id", problems, required=True)
        dataset_id = _id_field(body, "dataset_id", problems, required=False) or None
        title = problems.text(body, "title", MAX_TITLE_CHARS, required=True)
        description = problems.text(body, "description", MAX_DESCRIPTION_CHARS, required=False)
        spec = problems.spec(body)
        config = (
            "{}"
            if body.get("config") is None
            else problems.json_object(body, "config", MAX_OBJECT_BYTES)
        )
        metadata = _metadata(body, problems)
        async with self._database.session() as db:
            await self._check_owned(db, user_id, job_id, dataset_id, problems)
        problems.raise_any()
        assert title is not None and spec is not None and config is not None
        assert metadata is not None
        stamp = now_ms()
        row = VisualizationRow(
            id=f"viz{secrets.token_hex(16)}",
            user_id=user_id,
            job_id=job_id,
            dataset_id=dataset_id,
            title=title,
            description=description,
            spec=spec,
            config=config,
            meta=metadata,
            created_ms=stamp,
            updated_ms=stamp,
        )
        async with self._database.transaction() as db:
            await repository.add_visualization(db, row)
        return visualization_json(row)

    @staticmethod
    async def _check_owned(
        db: Any, user_id: str, job_id: str, dataset_id: str | None, problems: _Problems
    ) -> None:
        if job_id:
            job = await repository.get_job(db, job_id)
            if job is None or not secrets.compare_digest(job.user_id, user_id):
                problems.add("job_id", f"You have no job {job_id}")
        if dataset_id:
            dataset = await repository.get_dataset(db, dataset_id)
            if dataset is None or not secrets.compare_digest(dataset.user_id, user_id):
                problems.add("dataset_id", f"You have no dataset {dataset_id}")

    async def list_visualizations(
        self, user_id: str, job_id: str | None = None, dataset_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The user's visualizations, oldest first, optionally of one job and/or dataset."""
        async with self._database.session() as db:
            rows = await repository.list_visualizations(db, user_id, job_id, dataset_id)
        return [visualization_json(row) for row in rows]

    async def get(self, user_id: str, viz_id: str) -> dict[str, Any]:
        async with self._database.session() as db:
            row = await self._owned(db, user_id, viz_id)
        return visualization_json(row)

    async def update(self, user_id: str, viz_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Changes the fields the body names; the others stay as they were."""
        async with self._database.session() as db:
            await self._owned(db, user_id, viz_id)  # 403/404 before the body's problems
        problems = _Problems()
        values: dict[str, Any] = {}
        if "title" in body:
            values["title"] = problems.text(body, "title", MAX_TITLE_CHARS, required=True)
        if "description" in body:
            values["description"] = problems.text(
                body, "description", MAX_DESCRIPTION_CHARS, required=False
            )
        if "spec" in body:
            values["spec"] = problems.spec(body)
        if "config" in body:
            values["config"] = problems.json_object(body, "config", MAX_OBJECT_BYTES)
        if "metadata" in body:
            values["meta"] = _metadata(body, problems)
        problems.raise_any()
        values["updated_ms"] = now_ms()
        async with self._database.transaction() as db:
            if not await repository.update_visualization(db, viz_id, user_id, values):
                raise VisualizationNotFoundError(f"Visualization {viz_id} not found")
        async with self._database.session() as db:
            row = await self._owned(db, user_id, viz_id)
        return visualization_json(row)

    async def delete(self, user_id: str, viz_id: str) -> None:
        async with self._database.transaction() as db:
            await self._owned(db, user_id, viz_id)
            await repository.delete_visualization(db, viz_id)

    @staticmethod
    async def _owned(db: Any, user_id: str, viz_id: str) -> VisualizationRow:
        row = await repository.get_visualization(db, viz_id)
        if row is None:
            raise VisualizationNotFoundError(f"Visualization {viz_id} not found")
        if not secrets.compare_digest(row.user_id, user_id):
            raise VisualizationNotOwnedError("User does not own this visualization")
        return row

    async def save_job_plots(self, job_id: str) -> int:
        """Save a completed job's plots as its visualizations, once: a plot already saved
        (completion recorded again, a job adopted after a restart) is left as it is.
        Returns how many were added."""
        try:
            async with self._database.transaction() as db:
                job = await repository.get_job(db, job_id)
                rows = generated_rows(job) if job is not None else []
                saved = await repository.existing_visualization_ids(db, [r.id for r in rows])
                fresh = [row for row in rows if row.id not in saved]
                for row in fresh:
                    await repository.add_visualization(db, row)
        except IntegrityError:  # another process saved them meanwhile
            log.info("the plots of job %s were saved by another process", job_id)
            return 0
        return len(fresh)
