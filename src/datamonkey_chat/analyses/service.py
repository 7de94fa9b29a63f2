"""Datasets and HyPhy jobs for one user at a time: the REST routes and the assistant's tools
both call this service, so both get the same validation, ownership rules and summaries.

Errors are domain errors (mapped to HTTP by api/errors.py) that are also LookupError or
ValueError, which the assistant's tools turn into a readable `{"error": ...}` result.
Records are plain JSON-able dicts in the shapes the REST API returns.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from typing import Any

from datamonkey_chat.analyses import inputs, runs
from datamonkey_chat.analyses.hyphy import JobExecutor, LocalHyPhyExecutor, find_hyphy_binary
from datamonkey_chat.analyses.methods import (
    HyPhyMethod,
    check_against_catalog,
    option_list,
    registry,
)
from datamonkey_chat.analyses.methods.base import Summary
from datamonkey_chat.analyses.parsing import ParseLimitError, ParsePool
from datamonkey_chat.analyses.runner import JobRunner, PreparedJob
from datamonkey_chat.analyses.slurm import SlurmExecutor, split_extra_args
from datamonkey_chat.analyses.validation import (
    Problem,
    ValidationReport,
    alignment_records,
    validate_alignment,
    validate_tree,
)
from datamonkey_chat.analyses.visualizations import VisualizationService
from datamonkey_chat.catalog import MethodInfo, load_catalog, load_upstream_methods
from datamonkey_chat.domain.clock import iso_utc, now_ms
from datamonkey_chat.domain.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    UnavailableError,
    ValidationFailedError,
)
from datamonkey_chat.domain.ids import new_id
from datamonkey_chat.domain.text import require_storable, require_storable_json
from datamonkey_chat.settings import Settings
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.models import DatasetRow, JobRow

log = logging.getLogger(__name__)

CANCELLED_MESSAGE = "Cancelled by the user"
HYPHY_MISSING = (
    "HyPhy is not installed on this server, so analyses cannot run. The admin installs it "
    "with `apt-get install hyphy-pt` (Debian/Ubuntu) or `conda install -c bioconda hyphy`, "
    "or points DATAMONKEY_CHAT_HYPHY_BINARY at the binary."
)
MAX_NAME_CHARS = 200
MAX_PROBLEMS_IN_MESSAGE = 10
ACTIVE = ("running", "queued")
KIND_BY_TYPE = {
    "alignment": "alignment",
    "fasta": "alignment",
    "nexus": "alignment",
    "phylip": "alignment",
    "tree": "tree",
    "newick": "tree",
}
DERIVED_NOTE = "Saved {count} alignment(s) from this result as your datasets: {ids}."
JOB_FILTERS = ("alignment_id", "tree_id", "method", "status")
SLURM_DEFAULT_SUBMITTED = 100


# ---------------------------------------------------------------- errors


class AnalysisNotFoundError(NotFoundError, LookupError):
    pass


class NotOwnedError(ForbiddenError, LookupError):
    pass


class AnalysisInputError(InvalidInputError, ValueError):
    pass


class NotCancellableError(ConflictError, ValueError):
    pass


class HyPhyMissingError(UnavailableError, ValueError):
    pass


class UploadTooLargeError(TooLargeError, ValueError):
    pass


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class CheckedDataset:
    """A file that passed validation, ready to store."""

    name: str
    description: str | None
    kind: str
    meta_type: str | None  # the uploader's `type`, kept as given
    text: str
    size: int
    report: ValidationReport


def problems_message(subject: str, problems: list[Problem]) -> str:
    """One readable sentence per problem, for the 422 `details` and the assistant."""
    errors = [p for p in problems if p.severity == "error"] or problems
    shown = "; ".join(p.message for p in errors[:MAX_PROBLEMS_IN_MESSAGE])
    more = len(errors) - MAX_PROBLEMS_IN_MESSAGE
    count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
    return f"{subject} has {count}: {shown}" + (f" (and {more} more)" if more > 0 else "")


def _problem_dicts(problems: list[Problem]) -> list[dict[str, object]]:
    return [p.model_dump() for p in problems]


def dataset_json(row: DatasetRow, include_content: bool = False) -> dict[str, Any]:
    """Upstream's Dataset (id, name, description, type, created, updated, content) and our
    facts beside it: `kind` (alignment or tree, as detected), `data_type`, counts..."""
    report = ValidationReport.model_validate_json(row.report)
    created = iso_utc(row.created_ms)
    body: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "type": row.meta_type if row.meta_type is not None else row.kind,
        "created": created,
        "updated": created,  # a dataset never changes
        "kind": row.kind,
        "data_type": row.data_type if row.kind == "alignment" else None,
        "format": row.format,
        "sequences": row.sequences,
        "sites": row.sites,
        "codons": row.codons,
        "has_tree": report.has_tree,
        "codon_ready": report.codon_ready if row.kind == "alignment" else None,
        "genetic_code": report.genetic_code if row.kind == "alignment" else None,
        "size": row.size_bytes,
        "problems": _problem_dicts(report.problems),  # warnings only: errors were refused
    }
    if include_content:
        body["content"] = row.content
    return body


def _decode(data: bytes, name: str) -> str:
    if b"\x00" in data:
        raise _refused(name, "not_text", "The file is binary, not a text alignment or tree")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refused(
            name, "not_text", f"The file is not UTF-8 text (byte {exc.start + 1} is invalid)"
        ) from None


def _refused(name: str, code: str, message: str) -> ValidationFailedError:
    problem = Problem(code=code, message=message)
    return ValidationFailedError(problems_message(name, [problem]), _problem_dicts([problem]))


def _kind(declared: str | None, text: str) -> str:
    """A type we know (alignment, tree, a format name) says what to parse; any other type
    is the uploader's own word for it (upstream's `type` is free text): the content decides."""
    kind = KIND_BY_TYPE.get(declared.strip().lower()) if declared else None
    if kind is not None:
        return kind
    return "tree" if text.lstrip().startswith("(") else "alignment"


# ---------------------------------------------------------------- jobs


def job_json(row: JobRow, summary: str = "none") -> dict[str, Any]:
    """`summary`: "none", "brief" (no plot series or plots: for the assistant) or "full"."""
    body: dict[str, Any] = {
        "id": row.id,
        "job_id": row.id,
        "method": row.method,
        "alignment_id": row.alignment_id,
        "tree_id": row.tree_id,
        "options": json.loads(row.options),
        "status": row.status,
        "progress": round(row.progress, 3),
        "stage": row.stage,
        "error_message": row.error_message,
        "notes": json.loads(row.notes) if row.notes else [],
        "created": row.created_ms,
        "started": row.started_ms,
        "finished": row.finished_ms,
    }
    if summary != "none" and row.status == "completed" and row.summary:
        stored: dict[str, Any] = json.loads(row.summary)
        if summary == "brief":
            stored = brief_summary(row.method, stored)
        body["summary"] = stored
    return body


def brief_summary(method_id: str, stored: dict[str, Any]) -> dict[str, Any]:
    """A stored summary without its plots and its model's series (as `Summary.brief`)."""
    method = registry().get(method_id)
    model = method.summary_model if method else Summary
    return {k: v for k, v in model.without_series(stored).items() if k != "plots"}


def slurm_executor(settings: Settings) -> SlurmExecutor | None:
    """The Slurm executor, or None (logged) when this machine cannot submit jobs."""
    if shutil.which("sbatch") is None:
        log.error("DATAMONKEY_CHAT_JOB_EXECUTOR=slurm, but sbatch is not on PATH")
        return None
    local_binary = find_hyphy_binary(settings)
    return SlurmExecutor(
        jobs_dir=(settings.jobs_dir or settings.data_dir / "jobs").resolve(),
        hyphy_binary=settings.slurm_hyphy_binary or str(local_binary or "hyphy"),
        partition=settings.slurm_partition,
        cpus_per_job=settings.slurm_cpus_per_job,
        time_limit=settings.slurm_time_limit,
        extra_args=split_extra_args(settings.slurm_extra_args),
        poll_seconds=settings.slurm_poll_seconds,
    )


def compute_summary(
    prepared: PreparedJob, data: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(HyPhy's JSON with the user's names, the summary with its plots) for storing."""
    method = registry()[prepared.method_id]
    options = method.Options.model_validate(prepared.options)
    read = runs.read_result(method, options, data, prepared.names)
    return read.data, {**read.summary.model_dump(mode="json"), "plots": read.plots}


def csv_text(columns: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return out.getvalue()


def option_problems(error: runs.OptionsError) -> list[dict[str, object]]:
    return [
        {"code": "invalid_option", "field": f["field"], "message": f"{f['field']}: {f['message']}"}
        for f in error.fields
    ]


def _parameter(option: dict[str, Any]) -> dict[str, Any]:
    """An option as upstream's method parameter: strings where upstream has strings (a
    default is written as JSON text; no default, no field)."""
    default = option.get("default")
    parameter = {
        "name": option["name"],
        "description": option.get("description") or "",
        "required": False,
        "type": option["type"],
    }
    if default is not None:
        parameter["default"] = default if isinstance(default, str) else json.dumps(default)
    return parameter


async def _job_to_report(db: Any, user_id: str) -> str | None:
    """'Is my job done?': the newest unfinished job first, else the latest one."""
    for status in ACTIVE:
        rows = await repository.list_jobs(db, user_id, {"status": status})
        if rows:
            return rows[0].id
    return await repository.latest_job_id(db, user_id)


def _tree_report(tree: DatasetRow | None) -> ValidationReport | None:
    """A tree dataset's report; a NEXUS alignment with its own tree also serves as a tree."""
    if tree is None:
        return None
    report = ValidationReport.model_validate_json(tree.report)
    if tree.kind == "tree":
        return report
    if not report.has_tree:
        raise AnalysisInputError(f"Dataset {tree.id} is an alignment without a tree of its own")
    return report.model_copy(update={"kind": "tree", "names": report.tree_tips, "problems": []})


def _require_inputs(module: HyPhyMethod, alignment_id: str | None, tree_id: str | None) -> None:
    """The dataset ids a request must name: an alignment, unless the method reads only a
    tree (then the tree). 422 naming the missing field, as upstream's InvalidDataError."""
    if alignment_id:
        return
    if module.requirements.needs_alignment:
        raise ValidationFailedError(
            "alignment: the id of an alignment dataset is required",
            [{"code": "invalid_option", "field": "alignment", "message": "alignment is required"}],
        )
    if not tree_id:
        raise ValidationFailedError(
            f"tree: {module.name} needs the id of a tree dataset (or of an alignment with its "
            "own tree)",
            [{"code": "invalid_option", "field": "tree", "message": "tree is required"}],
        )


class AnalysesService:
    def __init__(
        self,
        database: Database,
        executor: JobExecutor | None,
        settings: Settings,
    ) -> None:
        self._database = database
        self._settings = settings
        self._catalog = load_catalog()
        self._jobs_dir = settings.jobs_dir or settings.data_dir / "jobs"
        check_against_catalog(self._catalog)  # every runnable method has its module
        self._parsing = ParsePool.from_settings(settings)
        self._executor = executor
        self._runner: JobRunner | None = None
        self.visualizations = VisualizationService(database)
        if executor is not None:
            cores = os.cpu_count() or 1
            self._runner = JobRunner(
                database,
                executor,
                prepare=self._prepare_job,
                summarize=compute_summary,
                max_concurrent=settings.max_concurrent_jobs,
                cpus_per_job=max(1, cores // max(1, settings.max_concurrent_jobs)),
                time_limit_seconds=settings.job_time_limit_seconds,
                poll_seconds=settings.job_poll_seconds,
                heartbeat_seconds=settings.job_heartbeat_seconds,
                on_completed=self._after_completion,
            )

    @classmethod
    def from_settings(cls, database: Database, settings: Settings) -> AnalysesService:
        """With the configured executor (local HyPhy or Slurm) when it can run, else
        without a runner (health says so; starting an analysis answers 503)."""
        if settings.job_executor == "slurm":
            executor = slurm_executor(settings)
            if "max_concurrent_jobs" not in settings.model_fields_set:
                # Slurm queues the jobs: this is how many each process keeps submitted
                settings = settings.model_copy(
                    update={"max_concurrent_jobs": SLURM_DEFAULT_SUBMITTED}
                )
            return cls(database, executor, settings)
        binary = find_hyphy_binary(settings)
        local = None
        if binary is not None:
            local = LocalHyPhyExecutor(
                jobs_dir=settings.jobs_dir or settings.data_dir / "jobs",
                binary=binary,
                default_time_limit=settings.job_time_limit_seconds,
            )
        return cls(database, local, settings)

    async def start(self) -> None:
        self._parsing.warm_up()
        if self._runner is not None:
            await self._runner.start()

    async def stop(self) -> None:
        self._parsing.close()
        if self._runner is not None:
            await self._runner.stop()

    async def health(self) -> str:
        return "healthy" if self._runner is not None and self._runner.alive else "unhealthy"

    def hyphy_health(self) -> str:
        """Health's `datamonkey`: can this server run HyPhy analyses? The runner is up and,
        for local runs, the HyPhy binary it was started with is still there (one stat).
        Slurm's HyPhy lives on the compute nodes: the submitting runner is what we know."""
        if self._runner is None or not self._runner.alive:
            return "unhealthy"
        executor = self._executor
        if isinstance(executor, LocalHyPhyExecutor) and not (
            executor.binary is not None and os.access(executor.binary, os.X_OK)
        ):
            return "unhealthy"
        return "healthy"

    # ------------------------------------------------------------ datasets

    async def check_dataset(
        self,
        data: bytes,
        filename: str | None,
        meta: dict[str, Any] | None = None,
        client: str | None = None,
    ) -> CheckedDataset:
        """Validate an upload before anything is stored; raises with every problem found.

        The parse runs in the parse pool's worker processes (analyses/parsing.py): bounded
        in time and memory, and `client` (the caller's address) may have only a few at once.
        """
        meta = require_storable_json(meta or {}, "meta")
        require_storable(filename or "", "the file name")
        limit = self._settings.max_upload_bytes
        if len(data) > limit:
            raise UploadTooLargeError(f"The file is over the upload limit of {limit} bytes")
        name = str(meta.get("name") or filename or "dataset").strip()[:MAX_NAME_CHARS]
        text = _decode(data, name)
        declared = meta.get("type")
        meta_type = str(declared) if declared is not None and str(declared).strip() else None
        if meta_type is not None and len(meta_type) > MAX_NAME_CHARS:
            raise AnalysisInputError(f"meta.type is over {MAX_NAME_CHARS} characters")
        kind = _kind(meta_type, text)
        try:
            if kind == "tree":
                report = await self._parsing.run(validate_tree, text, client=client)
            else:
                genetic_code = self._settings.genetic_code
                report = await self._parsing.run(
                    validate_alignment, text, genetic_code, client=client
                )
        except ParseLimitError as exc:
            raise _refused(name, exc.code, exc.message) from None
        if not report.ok:
            problems = report.problems
            raise ValidationFailedError(problems_message(name, problems), _problem_dicts(problems))
        description = meta.get("description")
        return CheckedDataset(
            name=name,
            description=str(description) if description else None,
            kind=kind,
            meta_type=meta_type,
            text=text,
            size=len(data),
            report=report,
        )

    async def store_dataset(self, user_id: str, checked: CheckedDataset) -> dict[str, Any]:
        report = checked.report
        row = DatasetRow(
            id=new_id(),
            user_id=user_id,
            name=checked.name,
            description=checked.description,
            kind=checked.kind,
            meta_type=checked.meta_type,
            format=report.format,
            data_type=report.data_type,
            sequences=report.sequences,
            sites=report.sites,
            codons=report.codons,
            size_bytes=checked.size,
            content=checked.text,
            report=report.model_dump_json(),
            created_ms=now_ms(),
        )
        async with self._database.transaction() as db:
            await repository.add_dataset(db, row)
        return dataset_json(row)

    async def upload_dataset(
        self, user_id: str, data: bytes, filename: str | None, meta: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return await self.store_dataset(user_id, await self.check_dataset(data, filename, meta))

    async def save_alignment_text(
        self, user_id: str, text: str, name: str | None
    ) -> dict[str, Any]:
        """An alignment pasted into the chat, stored like an upload."""
        meta = {"name": name or "pasted alignment", "type": "alignment"}
        return await self.upload_dataset(user_id, text.encode("utf-8"), None, meta)

    async def list_datasets(self, user_id: str) -> list[dict[str, Any]]:
        async with self._database.session() as db:
            rows = await repository.list_datasets(db, user_id)
        return [dataset_json(row) for row in rows]

    async def get_dataset(
        self, user_id: str, dataset_id: str, include_content: bool = False
    ) -> dict[str, Any]:
        async with self._database.session() as db:
            row = await self._owned_dataset(db, user_id, dataset_id)
        return dataset_json(row, include_content)

    async def delete_dataset(self, user_id: str, dataset_id: str) -> None:
        """Jobs that used the dataset keep their results (queued ones fail with a reason);
        the visualizations that name the dataset go with it."""
        async with self._database.transaction() as db:
            await self._owned_dataset(db, user_id, dataset_id)
            await repository.delete_visualizations(db, user_id, dataset_id=dataset_id)
            await repository.delete_dataset(db, dataset_id)

    @staticmethod
    async def _owned_dataset(db: Any, user_id: str, dataset_id: str) -> DatasetRow:
        row = await repository.get_dataset(db, dataset_id)
        if row is None:
            raise AnalysisNotFoundError(f"Dataset {dataset_id} not found")
        if not secrets.compare_digest(row.user_id, user_id):
            raise NotOwnedError("User does not own this dataset")
        return row

    # ------------------------------------------------------------ jobs

    def method(self, name: str) -> MethodInfo:
        info = self._catalog.find(name)
        if info is None:
            known = ", ".join(self._catalog.ids())
            raise AnalysisNotFoundError(f"No method named '{name}'. Known methods: {known}")
        return info

    def runnable(self, name: str) -> tuple[MethodInfo, HyPhyMethod]:
        """The catalog entry and module of a method this server can run."""
        info = self.method(name)
        module = registry().get(info.id)
        if not info.runnable or module is None:
            message = f"{info.name} cannot be run on this server. {info.note or ''}".strip()
            problem: dict[str, object] = {
                "code": "method_not_runnable",
                "field": "method",
                "message": message,
            }
            raise ValidationFailedError(message, [problem])
        return info, module

    def methods(self) -> list[dict[str, Any]]:
        """The catalog in upstream's MethodsList shape, plus our facts, for GET /methods."""
        modules, upstream = registry(), load_upstream_methods()
        listed = []
        for info in self._catalog.methods:
            module = modules.get(info.id)
            path = upstream[info.id].path if info.id in upstream else info.id
            options = option_list(module) if module else []
            listed.append(
                {
                    "id": info.id,
                    "name": info.name,
                    "description": info.summary,
                    "status": "available" if module and info.runnable else "deprecated",
                    "start_endpoint": f"/methods/{path}-start",
                    "result_endpoint": f"/methods/{path}-result",
                    "parameters": [_parameter(option) for option in options],
                    **info.brief(),
                    "full_name": info.full_name,
                    "hyphy_keyword": info.hyphy_keyword,
                    "run_time": info.run_time,
                    "note": info.note,
                    "options": options,
                }
            )
        return listed

    async def start_job(
        self,
        user_id: str,
        method: str,
        alignment_id: str | None,
        tree_id: str | None,
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """Queue a job. `alignment_id` may be None only for a method that reads just a tree
        (its requirements say so); the tree is then required."""
        require_storable_json([method, alignment_id, tree_id], "the job's method or dataset id")
        require_storable_json(options, "options")
        info, module = self.runnable(method)
        _require_inputs(module, alignment_id, tree_id)
        try:
            checked = runs.method_options(module, options)
        except runs.OptionsError as exc:
            raise ValidationFailedError(str(exc), option_problems(exc)) from None
        async with self._database.session() as db:
            alignment = (
                await self._owned_dataset(db, user_id, alignment_id) if alignment_id else None
            )
            tree = await self._owned_dataset(db, user_id, tree_id) if tree_id else None
        stored_options = checked.model_dump(mode="json")
        report, tree_report = await self._reports(alignment, tree, stored_options)
        problems = runs.run_problems(module, checked, report, tree_report)
        if problems:
            analysed = alignment or tree
            assert analysed is not None  # _require_inputs
            subject = f"{info.name} cannot run on dataset {analysed.name}, which"
            message = problems_message(subject, problems)
            raise ValidationFailedError(message, _problem_dicts(problems))
        if self._runner is None:  # checked last: the data's problems are worth knowing anyway
            raise HyPhyMissingError(HYPHY_MISSING)
        notes = (
            inputs.tree_notes(report, tree_report, module.requirements.needs_tree)
            if report is not None
            else []
        )
        row = JobRow(
            id=new_id(),
            user_id=user_id,
            method=info.id,
            alignment_id=alignment.id if alignment else None,
            tree_id=tree.id if tree else None,
            options=json.dumps(stored_options),
            status="queued",
            progress=0.0,
            attempts=0,
            notes=json.dumps(notes) if notes else None,
            created_ms=now_ms(),
        )
        async with self._database.transaction() as db:
            await repository.add_job(db, row)
        self._runner.wake()
        return job_json(row)

    async def _reports(
        self, alignment: DatasetRow | None, tree: DatasetRow | None, options: dict[str, Any]
    ) -> tuple[ValidationReport | None, ValidationReport | None]:
        """(the alignment's report, the tree's); no alignment: a run on the tree alone."""
        if alignment is None:
            return None, _tree_report(tree)
        if alignment.kind != "alignment":
            raise AnalysisInputError(f"Dataset {alignment.id} is a tree, not an alignment")
        report = ValidationReport.model_validate_json(alignment.report)
        code = options.get("genetic_code")
        if code and code != report.genetic_code:  # stop codons depend on the code
            try:  # a whole alignment's parse: in the pool, not on the event loop
                report = await self._parsing.run(validate_alignment, alignment.content, code)
            except ParseLimitError as exc:
                raise AnalysisInputError(exc.message) from None
            except ValueError as exc:
                raise AnalysisInputError(str(exc)) from None
        return report, _tree_report(tree)

    async def _prepare_job(self, job_id: str) -> PreparedJob:
        """The runner's view of a claimed job: input files and HyPhy arguments."""
        async with self._database.session() as db:
            job = await repository.get_job(db, job_id)
            if job is None:
                raise ValueError("The job was deleted")
            alignment = (
                await repository.get_dataset(db, job.alignment_id) if job.alignment_id else None
            )
            tree = await repository.get_dataset(db, job.tree_id) if job.tree_id else None
        if (job.alignment_id and alignment is None) or (job.tree_id and tree is None):
            raise ValueError("A dataset of this job was deleted before the job ran")
        module = registry()[job.method]
        stored_options = json.loads(job.options)
        options = module.Options.model_validate(stored_options)
        report, tree_report = await self._reports(alignment, tree, stored_options)
        planned = await asyncio.to_thread(
            runs.plan_run,
            module,
            options,
            alignment.content if alignment else None,
            report,
            tree_report,
        )
        return PreparedJob(
            keyword=module.keyword,
            alignment_name=planned.inputs.alignment_name,
            alignment_text=planned.inputs.alignment_text,
            tree_text=planned.inputs.tree_text,
            arguments=planned.arguments,
            method_id=module.id,
            options=stored_options,
            names=planned.inputs.names,
        )

    async def _after_completion(self, job_id: str) -> None:
        """What follows from a stored result: its plots kept as the job's visualizations,
        then the datasets it produces (each a failure of its own, logged)."""
        try:
            await self.visualizations.save_job_plots(job_id)
        except Exception:
            log.exception("the plots of job %s were not saved as visualizations", job_id)
        await self._store_derived_datasets(job_id)

    async def _store_derived_datasets(self, job_id: str) -> None:
        """Datasets a finished job produces (GARD's segments), owned by the job's user."""
        async with self._database.session() as db:
            job = await repository.get_job(db, job_id)
            alignment = (
                await repository.get_dataset(db, job.alignment_id)
                if job and job.alignment_id
                else None
            )
        module = registry().get(job.method) if job else None
        if job is None or alignment is None or module is None or not job.result:
            return
        records = alignment_records(alignment.content)
        derived = await asyncio.to_thread(
            module.derived_datasets, json.loads(job.result), records, alignment.name
        )
        stored = []
        for dataset in derived:
            checked = await self.check_dataset(
                dataset.fasta.encode(),
                None,
                {"name": dataset.name, "description": dataset.description, "type": "alignment"},
            )
            stored.append((await self.store_dataset(job.user_id, checked))["id"])
        if stored:
            notes = [
                *(json.loads(job.notes) if job.notes else []),
                DERIVED_NOTE.format(count=len(stored), ids=", ".join(stored)),
            ]
            async with self._database.transaction() as db:
                await repository.set_job_notes(db, job_id, json.dumps(notes))

    async def get_job(self, user_id: str, job_id: str | None) -> dict[str, Any]:
        """A job (the user's latest when `job_id` is None) with its brief summary."""
        return job_json(await self._job(user_id, job_id), summary="brief")

    async def job_detail(self, user_id: str, job_id: str) -> dict[str, Any]:
        """GET /jobs/{id}: the job, and when completed its summary with plot series."""
        return job_json(await self._job(user_id, job_id), summary="full")

    async def job_result(self, user_id: str, method: str, job_id: str) -> dict[str, Any]:
        """GET /methods/{method}-result: status, and when completed the HyPhy JSON."""
        info = self.method(method)
        row = await self._job(user_id, job_id)
        if row.method != info.id:
            raise AnalysisNotFoundError(f"Job {job_id} is a {row.method} job, not {info.id}")
        body = job_json(row, summary="full")
        if row.status == "completed" and row.result:
            body["result"] = json.loads(row.result)
        return body

    async def job_result_json(self, user_id: str, job_id: str) -> str:
        """HyPhy's JSON as stored (the user's sequence names restored), for download."""
        row = await self._finished(user_id, job_id)
        return row.result or "{}"

    async def job_table_csv(self, user_id: str, job_id: str) -> str:
        """One row per site or branch with every column the method reports, as CSV."""
        row = await self._finished(user_id, job_id)
        module = registry().get(row.method)
        if module is None:
            raise AnalysisNotFoundError(f"No table is available for {row.method} jobs")
        options = module.Options.model_validate(json.loads(row.options))
        table = await asyncio.to_thread(module.table, json.loads(row.result or "{}"), options)
        return csv_text(table.columns, table.rows)

    async def _finished(self, user_id: str, job_id: str) -> JobRow:
        row = await self._job(user_id, job_id)
        if row.status != "completed" or not row.result:
            raise NotCancellableError(f"Job {job_id} is {row.status}: it has no results yet")
        return row

    async def job_summary(self, user_id: str, job_id: str | None) -> dict[str, Any]:
        """What the assistant explains: the brief summary, or why there is none."""
        row = await self._job(user_id, job_id)
        if row.status == "error":
            raise AnalysisInputError(
                f"Job {row.id} ({row.method.upper()}) failed: {row.error_message}"
            )
        body = {k: v for k, v in job_json(row).items() if k not in ("options", "notes")}
        if row.status == "completed" and row.summary:
            body.update(job_json(row, summary="brief")["summary"])
            body["method"] = row.method  # the summary's display name would replace the id
        return body

    async def list_jobs(
        self, user_id: str, filters: dict[str, str | None] | None = None
    ) -> list[dict[str, Any]]:
        unknown = set(filters or {}) - set(JOB_FILTERS)
        if unknown:
            raise AnalysisInputError(f"Unknown job filter(s): {', '.join(sorted(unknown))}")
        if filters and filters.get("method"):
            filters = {**filters, "method": self.method(str(filters["method"])).id}
        async with self._database.session() as db:
            rows = await repository.list_jobs(db, user_id, filters)
        return [job_json(row) for row in rows]

    async def find_job(
        self,
        user_id: str,
        method: str,
        alignment_id: str | None,
        tree_id: str | None,
        options: dict[str, Any],
    ) -> str:
        """The newest of the user's jobs with this method, these datasets and these options."""
        _, module = self.runnable(method)
        _require_inputs(module, alignment_id, tree_id)
        try:
            wanted = runs.method_options(module, options).model_dump(mode="json")
        except runs.OptionsError as exc:
            raise ValidationFailedError(str(exc), option_problems(exc)) from None
        filters = {"method": module.id, "alignment_id": alignment_id, "tree_id": tree_id}
        async with self._database.session() as db:
            rows = await repository.list_jobs(db, user_id, filters)
        for row in rows:  # newest first; a None filter matches any, so compare both ids
            if (
                row.alignment_id == alignment_id
                and row.tree_id == tree_id
                and json.loads(row.options) == wanted
            ):
                return row.id
        raise AnalysisNotFoundError(f"No {module.name} job of yours has these datasets and options")

    async def delete_job(self, user_id: str, job_id: str) -> None:
        """Cancel the job if it is queued or running, then delete it, its visualizations and
        its files."""
        row = await self._job(user_id, job_id)
        if row.status in ACTIVE:
            async with self._database.transaction() as db:
                await repository.cancel_job(db, row.id, CANCELLED_MESSAGE, now_ms())
            if self._runner is not None:
                await self._runner.kill(row.id, row.slurm_job_id)
        async with self._database.transaction() as db:
            await repository.delete_visualizations(db, user_id, job_id=row.id)
            await repository.delete_job(db, row.id)
        if self._jobs_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._jobs_dir / row.id, True)

    async def cancel_job(self, user_id: str, job_id: str) -> dict[str, Any]:
        row = await self._job(user_id, job_id)
        async with self._database.transaction() as db:
            cancelled = await repository.cancel_job(db, row.id, CANCELLED_MESSAGE, now_ms())
        if not cancelled:
            latest = await self._job(user_id, job_id)
            raise NotCancellableError(
                f"Job {job_id} is {latest.status}, not queued or running; nothing to cancel"
            )
        if self._runner is not None:
            await self._runner.kill(row.id, row.slurm_job_id)
        return job_json(await self._job(user_id, job_id))

    async def _job(self, user_id: str, job_id: str | None) -> JobRow:
        async with self._database.session() as db:
            if job_id is None:
                job_id = await _job_to_report(db, user_id)
                if job_id is None:
                    raise AnalysisNotFoundError("You have no analysis jobs yet")
            row = await repository.get_job(db, job_id)
        if row is None:
            raise AnalysisNotFoundError(f"Job {job_id} not found")
        if not secrets.compare_digest(row.user_id, user_id):
            raise NotOwnedError("User does not own this job")
        return row
