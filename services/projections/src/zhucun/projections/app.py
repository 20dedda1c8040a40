"""Composition root of the projections service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.projections.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import SecretStr

from zhucun.projections.audit import AuditTrail
from zhucun.projections.http import router
from zhucun.shared.service import create_service_app
from zhucun.shared.settings import PostgresSettings, ServiceSettings

#: The projections only read: they consume the other services' topics and own no event store.
TOPIC: str | None = None
SOURCE = "/zhucun/projections"


class ProjectionsSettings(ServiceSettings):
    service_name: str = "projections"
    postgres: PostgresSettings = PostgresSettings(
        dsn=SecretStr("postgresql://zhucun:zhucun@127.0.0.1:15432/projections")
    )


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ProjectionsSettings()
    schema = settings.postgres.schema_name
    app = create_service_app(
        settings,
        title="Zhucun projections (用)",
        topic=TOPIC,
        source=SOURCE,
        # The audit trail (一人一档) of dispatch, attendance and assessment events.
        projections=[AuditTrail(schema)],
    )
    app.include_router(router)
    return app
