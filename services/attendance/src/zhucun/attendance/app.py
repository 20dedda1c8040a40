"""Composition root of the attendance service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.attendance.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from fastapi import FastAPI

from zhucun.attendance.application import Context
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.attendance.http import SERVICE, router
from zhucun.attendance.replicas.posts import PostDirectory, dispatch_replica
from zhucun.contracts.attendance import SOURCE, TOPIC
from zhucun.contracts.attendance.events import registry
from zhucun.shared.http import openapi_path, provide_use_cases
from zhucun.shared.policy import PolicyBook
from zhucun.shared.service import create_service_app, service_runtime
from zhucun.shared.settings import PostgresSettings, ServiceSettings, local_database

#: The HTTP API's OpenAPI document, committed (``uv run zhucun contracts write`` rewrites it).
OPENAPI_PATH = openapi_path(__file__)

__all__ = ["OPENAPI_PATH", "SOURCE", "TOPIC", "AttendanceSettings", "create_app"]


class AttendanceSettings(ServiceSettings):
    service_name: str = "attendance"
    postgres: PostgresSettings = local_database("attendance")


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
    # Loaded, and every pack's [attendance] table validated, when the app is built: a broken pack
    # stops the start (naming its file and field), not a call.
    policies = PolicyBook.load(settings.policies_dir, sections=(AttendancePolicy,))
    runtime = service_runtime(app)

    def context() -> Context:
        # Per request: the pool and the store are new after a restart of the lifespan; the
        # state cache is the runtime's, shared.
        posts = PostDirectory(runtime.database(), settings.postgres.schema_name)
        return Context(commands=runtime.commands(), posts=posts, policies=policies)

    provide_use_cases(app, context)
    app.include_router(router)
    return app
