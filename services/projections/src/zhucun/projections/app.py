"""Composition root of the projections service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.projections.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr

from zhucun.contracts.decisions import SOURCE, TOPIC
from zhucun.projections.audit import AuditTrail
from zhucun.projections.decisions.http import DECISIONS_SCHEMA
from zhucun.projections.decisions.http import router as decisions_router
from zhucun.projections.decisions.projection import DecisionsProjection
from zhucun.projections.http import router
from zhucun.shared.service import create_service_app
from zhucun.shared.settings import PostgresSettings, ServiceSettings

#: The read side publishes what it decides (recall decisions) from its own event store.
#: The HTTP API's OpenAPI document, committed (``services/projections/openapi.json``); regenerate
#: it with ``uv run zhucun contracts write`` after changing a route.
OPENAPI_PATH = Path(__file__).resolve().parents[3] / "openapi.json"
#: Schemas of the projections database: the audit trail in the settings' schema (``public``),
#: the decisions read model and the decisions' event store each in their own, so either read
#: model can be rebuilt and switched alone (``zhucun replay``).
STORE_SCHEMA = "decision_store"


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
        projections=[
            # The audit trail (一人一档) of dispatch, attendance and assessment events.
            AuditTrail(schema),
            # Recall decisions and promotion pools (用), published on decisions.events.v1.
            DecisionsProjection(
                DECISIONS_SCHEMA, store_schema=STORE_SCHEMA, policies_dir=settings.policies_dir
            ),
        ],
        store_schema=STORE_SCHEMA,
    )
    app.include_router(router)
    app.include_router(decisions_router)
    return app
