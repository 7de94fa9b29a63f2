"""The assistant's port to the analyses service: what its tools may call, typed.

The assistant package does not import the service layer; `api/app.py` hands the service
to the assistant as `AssistantDeps.analyses`, and mypy checks that it fits this Protocol.
Every result is JSON-able; errors meant for the user are LookupError or ValueError.
"""

from __future__ import annotations

from typing import Any, Protocol


class AnalysesPort(Protocol):
    async def list_datasets(self, user_id: str) -> list[dict[str, Any]]: ...
    async def get_dataset(self, user_id: str, dataset_id: str) -> dict[str, Any]: ...
    async def save_alignment_text(
        self, user_id: str, text: str, name: str | None
    ) -> dict[str, Any]: ...
    async def start_job(
        self,
        user_id: str,
        method: str,
        alignment_id: str | None,
        tree_id: str | None,
        options: dict[str, Any],
    ) -> dict[str, Any]: ...
    async def get_job(self, user_id: str, job_id: str | None) -> dict[str, Any]: ...
    async def job_summary(self, user_id: str, job_id: str | None) -> dict[str, Any]: ...
    async def cancel_job(self, user_id: str, job_id: str) -> dict[str, Any]: ...
    async def list_jobs(self, user_id: str) -> list[dict[str, Any]]: ...
