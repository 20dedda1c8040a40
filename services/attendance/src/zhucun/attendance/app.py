"""Composition root of the attendance service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.attendance.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr

from zhucun.attendance.http import router
from zhucun.attendance.replicas.posts import dispatch_replica
from zhucun.contracts.attendance import SOURCE, TOPIC
from zhucun.shared.policy import PolicyBook
from zhucun.shared.service import create_service_app
from zhucun.shared.settings import PostgresSettings, ServiceSettings

#: The service's event topic: every event it stores is published here, keyed per DESIGN.md.
#: The HTTP API's OpenAPI document, committed (``services/attendance/openapi.json``); regenerate
#: it with ``uv run zhucun contracts write`` after changing a route.
OPENAPI_PATH = Path(__file__).resolve().parents[3] / "openapi.json"


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
    )
    # Loaded (and validated) when the app is built: a broken pack stops the start, not a call.
    app.state.policies = PolicyBook.load(settings.policies_dir)
    app.include_router(router)
    return app
