"""Composition root of the assessment service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.assessment.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr

from zhucun.assessment.http import router
from zhucun.assessment.replicas.attendance import AttendanceFactsReplica
from zhucun.assessment.replicas.dispatch import DispatchReplica
from zhucun.contracts.assessment import SOURCE, TOPIC
from zhucun.shared.policy import PolicyBook
from zhucun.shared.service import create_service_app
from zhucun.shared.settings import PostgresSettings, ServiceSettings

#: The service's event topic: every event it stores is published here, keyed per DESIGN.md.
#: The HTTP API's OpenAPI document, committed (``services/assessment/openapi.json``); regenerate
#: it with ``uv run zhucun contracts write`` after changing a route.
OPENAPI_PATH = Path(__file__).resolve().parents[3] / "openapi.json"


class AssessmentSettings(ServiceSettings):
    service_name: str = "assessment"
    postgres: PostgresSettings = PostgresSettings(
        dsn=SecretStr("postgresql://zhucun:zhucun@127.0.0.1:15432/assessment")
    )


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or AssessmentSettings()
    schema = settings.postgres.schema_name
    app = create_service_app(
        settings,
        title="Zhucun assessment (考)",
        topic=TOPIC,
        source=SOURCE,
        # Assignments from dispatch; month closes and spot checks from attendance.
        projections=[
            DispatchReplica(schema, name="assessment-dispatch-replica"),
            AttendanceFactsReplica(schema, name="assessment-attendance-facts"),
        ],
    )
    # Loaded (and validated) when the app is built: a broken pack stops the start, not a call.
    app.state.policies = PolicyBook.load(settings.policies_dir)
    app.include_router(router)
    return app
