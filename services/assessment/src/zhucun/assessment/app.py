"""Composition root of the assessment service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.assessment.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import SecretStr

from zhucun.assessment.http import router
from zhucun.attendance.facts import AttendanceFactsReplica
from zhucun.dispatch.replica import DispatchReplica
from zhucun.shared.policy import PolicyBook
from zhucun.shared.service import create_service_app
from zhucun.shared.settings import PostgresSettings, ServiceSettings

#: The service's event topic: every event it stores is published here, keyed per DESIGN.md.
TOPIC: str | None = "assessment.events.v1"
SOURCE = "/zhucun/assessment"


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
