"""Composition root of the assessment service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.assessment.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr

from zhucun.assessment.application import Application
from zhucun.assessment.http import router
from zhucun.assessment.replicas.attendance import AttendanceFactsReplica, ReplicatedAbsences
from zhucun.assessment.replicas.dispatch import DispatchReplica, ReplicatedAssignments
from zhucun.contracts.assessment import SOURCE, TOPIC
from zhucun.contracts.assessment.events import registry
from zhucun.shared.http import command_metadata
from zhucun.shared.policy import PolicyBook
from zhucun.shared.service import ServiceRuntime, create_service_app
from zhucun.shared.settings import PostgresSettings, ServiceSettings

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
        projections=[DispatchReplica(schema), AttendanceFactsReplica(schema)],
        events=registry,
        problems="assessment",
    )
    runtime = app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    # Loaded (and validated) when the app is built: a broken pack stops the start, not a call.
    policies = PolicyBook.load(settings.policies_dir)

    def application() -> Application:
        # The store and the pool exist once the lifespan has connected them (and are new
        # after a restart of it), so the use cases' dependencies are put together per call:
        # a few small objects; the folded states stay in the runtime's cache.
        if runtime.pool is None:
            raise RuntimeError("the service is not started")
        return Application(
            commands=runtime.commands(),
            assignments=ReplicatedAssignments(runtime.pool, schema),
            absences=ReplicatedAbsences(runtime.pool, schema),
            policies=policies,
            metadata=command_metadata,
        )

    app.state.application = application
    app.include_router(router)
    return app
