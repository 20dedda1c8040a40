"""Composition root of the projections service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.projections.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).

It builds the service app with its two read models (the audit trail, the decisions read
model, each fed from Kafka), loads the policy book (the decisions projection's, validated
when the app is built: a broken pack stops the start, not a batch), wires the use cases to
the running service's database pool and command path, and includes the routes (the use
cases' refusals are answered by the shared problem handler, under the namespace of their read
model: ``audit/...``, ``decisions/...``).
"""

from __future__ import annotations

from fastapi import FastAPI

from zhucun.contracts.decisions import SOURCE, TOPIC
from zhucun.contracts.decisions.events import registry as decisions_registry
from zhucun.projections.application import ReadSide
from zhucun.projections.audit import AuditTrail, AuditTrailReader
from zhucun.projections.decisions.projection import DecisionsProjection
from zhucun.projections.decisions.queries import DecisionsReader
from zhucun.projections.http import router
from zhucun.shared.http import openapi_path, provide_use_cases
from zhucun.shared.service import create_service_app, service_runtime
from zhucun.shared.settings import PostgresSettings, ServiceSettings, local_database

#: The HTTP API's OpenAPI document, committed (``uv run zhucun contracts write`` rewrites it).
OPENAPI_PATH = openapi_path(__file__)
#: Schemas of the projections database: the audit trail in the settings' schema (``public``),
#: the decisions read model and the decisions' event store each in their own, so either read
#: model can be rebuilt and switched alone (``zhucun replay``).
DECISIONS_SCHEMA = "decisions"
STORE_SCHEMA = "decision_store"


class ProjectionsSettings(ServiceSettings):
    service_name: str = "projections"
    postgres: PostgresSettings = local_database("projections")


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ProjectionsSettings()
    schema = settings.postgres.schema_name
    app = create_service_app(
        settings,
        title="Zhucun projections (用)",
        # The read side publishes what it decides (recall decisions) from its own store.
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
        events=decisions_registry,
        problems="projections",
    )
    runtime = service_runtime(app)

    def read_side() -> ReadSide:
        return ReadSide.over(
            AuditTrailReader(runtime.database(), schema),
            DecisionsReader(runtime.database(), DECISIONS_SCHEMA),
            runtime.commands(),
        )

    provide_use_cases(app, read_side)
    app.include_router(router)
    return app
