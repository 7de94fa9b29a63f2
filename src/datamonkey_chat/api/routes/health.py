from __future__ import annotations

from fastapi import APIRouter, Request

from datamonkey_chat.api.responses import JSONResponse
from datamonkey_chat.api.schemas import Health

router = APIRouter(tags=["Health"])


@router.get(
    "/health",
    operation_id="getHealth",
    summary="Service health",
    response_model=Health,
    responses={503: {"model": Health, "description": "A component is unhealthy"}},
)
async def health(request: Request) -> JSONResponse:
    state = request.app.state
    analyses = getattr(state, "analyses", None)
    details = {
        "database": "healthy" if await state.database.ping() else "unhealthy",
        "llm": await state.assistant.health(),
        "job_scheduler": await analyses.health() if analyses is not None else "unknown",
        "datamonkey": analyses.hyphy_health() if analyses is not None else "unknown",
    }
    if "unhealthy" in details.values():
        status = "unhealthy"
    elif all(value == "healthy" for value in details.values()):
        status = "healthy"
    else:
        status = "unknown"
    # Informative only (never unhealthy): "redis", "in-process" (Redis not configured or not
    # answering: each process counts for itself) or "off".
    limits = getattr(state, "rate_limits", None)
    details["rate_limits"] = await limits.health() if limits is not None else "off"
    return JSONResponse(
        {"status": status, "details": details}, status_code=503 if status == "unhealthy" else 200
    )
