"""The FastAPI application: wiring of settings, storage, sessions, assistant and routes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from datamonkey_chat.analyses.service import AnalysesService
from datamonkey_chat.api.errors import install_error_handlers
from datamonkey_chat.api.middleware import BodyLimitMiddleware, WireMiddleware, body_limits
from datamonkey_chat.api.openapi import install_openapi
from datamonkey_chat.api.rate_limits import RateLimitMiddleware, RateLimits
from datamonkey_chat.api.responses import JSONResponse
from datamonkey_chat.api.routes import analyses as analyses_routes
from datamonkey_chat.api.routes import (
    chat,
    datasets,
    health,
    methods,
    session,
    visualizations,
    web,
)
from datamonkey_chat.api.routes.web import install_docs
from datamonkey_chat.assistant.base import Assistant
from datamonkey_chat.domain.conversations import ConversationService
from datamonkey_chat.domain.sessions import SessionService, load_or_create_secret
from datamonkey_chat.settings import Settings, get_settings
from datamonkey_chat.storage.change_feed import ChangeFeed
from datamonkey_chat.storage.db import Database

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, assistant: Assistant | None = None) -> FastAPI:
    """Build the app. `assistant` overrides the configured one (unit tests only)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.resolved_database_url)
        await database.migrate()
        secret = load_or_create_secret(settings.jwt_secret, settings.data_dir)
        if assistant is None:
            from datamonkey_chat.assistant import build_assistant

            chosen: Assistant = build_assistant(settings)
        else:
            chosen = assistant
        app.state.settings = settings
        app.state.rate_limits = RateLimits(settings)
        app.state.database = database
        app.state.assistant = chosen
        changes = ChangeFeed(database)  # one listening connection for cache and sessions
        app.state.sessions = SessionService(
            database, secret, settings.token_ttl_days * 86400, changes=changes
        )
        analyses = AnalysesService.from_settings(database, settings)
        app.state.analyses = analyses
        app.state.conversations = ConversationService(
            database,
            chosen,
            analyses=analyses,
            read_cache_size=settings.read_cache_size,
            read_cache_bytes=settings.read_cache_bytes,
            changes=changes,
            secret=secret,
            context_budget_chars=settings.context_budget_chars,
            context_max_turns=settings.context_max_turns,
            reply_slots=settings.reply_slots,
            send_slots=settings.send_slots,
        )
        await app.state.conversations.start()  # follows other processes' writes (PostgreSQL)
        await app.state.sessions.start()  # and the sessions they end
        await analyses.start()  # the job runner: recovers stale jobs, then runs queued ones
        # The model SDKs leave ~200k long-lived objects; a full collection walking them all
        # stalls every request for ~100 ms. Freeze them out of the collector's reach.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await analyses.stop()  # kills running HyPhy processes and re-queues their jobs
            await app.state.conversations.close()
            await app.state.sessions.close()
            await app.state.rate_limits.close()
            await database.dispose()

    app = FastAPI(
        title="Datamonkey API",
        version="1.0.0",
        description="Chat with an assistant that helps you analyze alignments with HyPhy.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by install_docs with Swagger UI from the package, not a CDN
        redoc_url=None,
    )
    install_error_handlers(app)
    for router in (
        chat.router,
        chat.extensions,
        health.router,
        session.router,
        datasets.router,
        methods.router,
        analyses_routes.jobs,
        visualizations.router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(web.router)  # the chat page at / and /static (not in the OpenAPI doc)
    install_openapi(
        app,
        API_PREFIX,
        extra_schemas=lambda: {**methods.request_schemas(), **visualizations.request_schemas()},
    )
    install_docs(app, f"{API_PREFIX}/docs")
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limits(settings, API_PREFIX))
    app.add_middleware(RateLimitMiddleware, prefix=API_PREFIX)  # counts before bodies are read
    app.add_middleware(WireMiddleware)  # outermost: its access line shows the 413s too
    return app
