"""Composition root of the attendance service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.attendance.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr

from zhucun.attendance.application import Context
from zhucun.attendance.http import SERVICE, router
from zhucun.attendance.replicas.posts import PostDirectory, dispatch_replica
from zhucun.contracts.attendance import SOURCE, TOPIC
from zhucun.contracts.attendance.events import registry
from zhucun.shared.policy import PolicyBook
from zhucun.shared.service import ServiceRuntime, create_service_app
from zhucun.shared.settings import PostgresSettings, ServiceSettings

#: The HTTP API's OpenAPI document, committed (``services/attendance/openapi.json``); regenerate
#: it with ``uv run zhucun contracts write`` after changing a route.
OPENAPI_PATH = Path(__file__).resolve().parents[3] / "openapi.json"

__all__ = ["OPENAPI_PATH", "SOURCE", "TOPIC", "AttendanceSettings", "create_app"]


class AttendanceSettings(ServiceSettings):
    service_name: str = "attendance"
    postgres: PostgresSettings = PostgresSettings(
        dsn=SecretStr("postgresql://zhucun:zhucun@127.0.0.1:15432/attendance")
    )


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or AttendanceSettings()
    app = create_service_app(
        settings,
        title="Zhucun attendance (管)",
        topic=TOPIC,
        source=SOURCE,
        # Assignments and village geofences, learnt from dispatch's topic.
        projections=[dispatch_replica(settings.postgres.schema_name)],
        events=registry,
        problems=SERVICE,
    )
    # Loaded (and validated) when the app is built: a broken pack stops the start, not a call.
    policies = PolicyBook.load(settings.policies_dir)
    runtime: ServiceRuntime = app.state.runtime

    def context() -> Context:
        # Per request: the pool and the store exist only once the lifespan has started them
        # (and are new after a restart); the state cache is the runtime's, shared.
        if runtime.pool is None:
            raise RuntimeError("the service is not started")
        posts = PostDirectory(runtime.pool, settings.postgres.schema_name)
        return Context(commands=runtime.commands(), posts=posts, policies=policies)

    app.state.attendance = context
    app.include_router(router)
    return app
