"""Maps domain failures to the contract's status codes and error bodies."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from datamonkey_chat.api.responses import JSONResponse
from datamonkey_chat.assistant.base import (
    AssistantError,
    AssistantProviderError,
    AssistantTimeoutError,
)
from datamonkey_chat.domain import errors

log = logging.getLogger(__name__)


def unauthorized(message: str) -> JSONResponse:
    return JSONResponse({"code": 401, "message": message}, status_code=401)


def forbidden(message: str) -> JSONResponse:
    return JSONResponse({"code": 403, "message": message}, status_code=403)


def not_found(message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": 404}, status_code=404)


def server_error(status: int, error: str, code: str, details: str) -> JSONResponse:
    return JSONResponse({"error": error, "code": code, "details": details}, status_code=status)


def rate_limited(exc: errors.RateLimitedError) -> JSONResponse:
    body = {"error": "Too many requests", "code": "rate_limited", "details": exc.message}
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(exc.retry_after)})


def validation_failed(exc: errors.ValidationFailedError) -> JSONResponse:
    body = {
        "errors": [
            {"field": str(p.get("field") or p.get("sequence") or "data"), "message": p["message"]}
            for p in exc.problems
        ],
        "error": "The data has problems",
        "code": "validation_failed",
        "details": exc.message,
        "problems": exc.problems,
    }
    return JSONResponse(body, status_code=422)


def invalid_data(exc: errors.InvalidDataError) -> JSONResponse:
    """400 with upstream's InvalidDataError (`errors`) and our ServerError fields beside it."""
    body = {
        "errors": exc.errors,
        "error": "Invalid request",
        "code": "invalid_data",
        "details": exc.message,
    }
    return JSONResponse(body, status_code=400)


def domain_error_response(exc: errors.DomainError) -> JSONResponse:
    if isinstance(exc, errors.UnauthorizedError):
        return unauthorized(exc.message)
    if isinstance(exc, errors.ForbiddenError):
        return forbidden(exc.message)
    if isinstance(exc, errors.NotFoundError):
        return not_found(exc.message)
    if isinstance(exc, errors.ValidationFailedError):
        return validation_failed(exc)
    if isinstance(exc, errors.InvalidDataError):
        return invalid_data(exc)
    if isinstance(exc, errors.TooLargeError):
        return server_error(413, "Request too large", "too_large", exc.message)
    if isinstance(exc, errors.ConflictError):
        return server_error(409, "Conflict", "conflict", exc.message)
    if isinstance(exc, errors.RateLimitedError):
        return rate_limited(exc)
    if isinstance(exc, errors.UnavailableError):
        return server_error(503, "Service unavailable", "unavailable", exc.message)
    return server_error(400, "Invalid request", "invalid_request", exc.message)


def assistant_error_response(exc: AssistantError) -> JSONResponse:
    if isinstance(exc, AssistantTimeoutError):
        return server_error(504, "The assistant timed out", "model_timeout", exc.cause)
    if isinstance(exc, AssistantProviderError):
        return server_error(502, "The assistant's model failed", "model_error", exc.cause)
    return server_error(502, "The assistant failed", "assistant_error", exc.cause)


def _validation_details(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "The request body is not valid"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.DomainError)
    async def _domain(_: Request, exc: errors.DomainError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(AssistantError)
    async def _assistant(_: Request, exc: AssistantError) -> JSONResponse:
        log.warning("assistant failed: %s", exc.cause)
        return assistant_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # The contract has no 422: bad bodies are a plain 400 with a readable reason.
        return server_error(400, "Invalid request", "invalid_request", _validation_details(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return not_found(str(exc.detail))
        return server_error(exc.status_code, str(exc.detail), "http_error", str(exc.detail))

    @app.exception_handler(SQLAlchemyError)
    async def _database(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.error("database error: %s", type(exc).__name__)
        return server_error(500, "Database error", "database_error", "The database failed")

    @app.exception_handler(ConnectionError)
    async def _unreachable(_: Request, exc: ConnectionError) -> JSONResponse:
        # asyncpg raises plain socket errors when PostgreSQL cannot be reached
        log.error("database unreachable: %s", type(exc).__name__)
        return server_error(
            500, "Database error", "database_error", "The database cannot be reached"
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return server_error(500, "Internal Server Error", "internal_error", type(exc).__name__)
