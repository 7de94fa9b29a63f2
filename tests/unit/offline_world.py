"""A test double of the analyses service for the offline assistant's unit tests.

Canned datasets and jobs; every call is recorded. `start_job` checks options with the
method's real options model (as the service does first), so a bad option comes back as the
service's readable error naming the field.
"""

from __future__ import annotations

from typing import Any

from datamonkey_chat.analyses import runs
from datamonkey_chat.analyses.methods import registry


class FakeAnalyses:
    """Test double of the analyses service: canned data, every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[Any, ...]]] = []
        self.datasets: list[dict[str, Any]] = [
            {"dataset_id": "ds1", "name": "hiv_env.fasta", "type": "fasta", "kind": "alignment",
             "data_type": "nucleotide", "sequences": 11, "codons": 288,
             "created_at": "2024-01-01T10:00:00Z"},
            {"dataset_id": "ds2", "name": "flu_ha.nex", "type": "my own label",
             "kind": "alignment", "data_type": "nucleotide", "sequences": 20, "codons": 550,
             "created_at": "2024-02-01T10:00:00Z"},
            {"dataset_id": "tr1", "name": "hiv_tree.nwk", "kind": "tree",
             "created_at": "2024-01-01T11:00:00Z"},
        ]  # fmt: skip
        self.jobs: list[dict[str, Any]] = [
            {"job_id": "job7", "method": "busted", "status": "completed",
             "created_at": "2024-02-02T10:00:00Z"},
            {"job_id": "job8", "method": "fel", "status": "running", "progress": "site 17/181",
             "created_at": "2024-02-03T10:00:00Z"},
        ]  # fmt: skip

    def _record(self, name: str, user_id: str, *args: Any) -> None:
        self.calls.append((name, user_id, args))

    def called(self, name: str) -> list[tuple[Any, ...]]:
        return [args for call, _, args in self.calls if call == name]

    async def list_datasets(self, user_id: str) -> list[dict[str, Any]]:
        self._record("list_datasets", user_id)
        return self.datasets

    async def get_dataset(self, user_id: str, dataset_id: str) -> dict[str, Any]:
        self._record("get_dataset", user_id, dataset_id)
        for dataset in self.datasets:
            if dataset["dataset_id"] == dataset_id:
                return dataset
        raise LookupError(f"No dataset {dataset_id}.")

    async def save_alignment_text(
        self, user_id: str, text: str, name: str | None
    ) -> dict[str, Any]:
        self._record("save_alignment_text", user_id, text, name)
        return {
            "dataset_id": "ds9",
            "name": name or "pasted alignment",
            "sequences": text.count(">"),
        }

    async def start_job(
        self, user_id: str, method: str, alignment_id: str, tree_id: str | None,
        options: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        self._record("start_job", user_id, method, alignment_id, tree_id, options)
        if method in registry():
            runs.method_options(registry()[method], options)  # OptionsError is a ValueError
        return {"job_id": "job42", "method": method, "status": "queued"}

    async def get_job(self, user_id: str, job_id: str | None) -> dict[str, Any]:
        self._record("get_job", user_id, job_id)
        return self.jobs[-1] if job_id is None else self._job(job_id)

    async def job_summary(self, user_id: str, job_id: str | None) -> dict[str, Any]:
        self._record("job_summary", user_id, job_id)
        job = self.jobs[-1] if job_id is None else self._job(job_id)
        if job["method"] == "busted":
            return {**job, "summary_text": "BUSTED found evidence of episodic diversifying "
                    "selection (p = 0.003).", "p_value": 0.003}  # fmt: skip
        return job

    async def cancel_job(self, user_id: str, job_id: str) -> dict[str, Any]:
        self._record("cancel_job", user_id, job_id)
        return {**self._job(job_id), "status": "error", "error_message": "cancelled"}

    async def list_jobs(self, user_id: str) -> list[dict[str, Any]]:
        self._record("list_jobs", user_id)
        return self.jobs

    def _job(self, job_id: str) -> dict[str, Any]:
        for job in self.jobs:
            if job["job_id"] == job_id:
                return job
        raise LookupError(f"No job {job_id}.")
