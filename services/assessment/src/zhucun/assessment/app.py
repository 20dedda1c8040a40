"""Composition root of the assessment service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.assessment.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from fastapi import FastAPI

from zhucun.assessment.application import Application
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.assessment.http import router
from zhucun.assessment.replicas.attendance import AttendanceFactsReplica, ReplicatedAbsences
from zhucun.assessment.replicas.dispatch import DispatchReplica, ReplicatedAssignments
from zhucun.contracts.assessment import SOURCE, TOPIC
from zhucun.contracts.assessment.events import registry
from zhucun.shared.http import command_metadata, openapi_path, provide_use_cases
from zhucun.shared.policy import PolicyBook
from zhucun.shared.service import create_service_app, service_runtime
from zhucun.shared.settings import PostgresSettings, ServiceSettings, local_database

#: The HTTP API's OpenAPI document, committed (``uv run zhucun contracts write`` rewrites it).
OPENAPI_PATH = openapi_path(__file__)


class AssessmentSettings(ServiceSettings):
    service_name: str = "assessment"
    postgres: PostgresSettings = local_database("assessment")


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
    runtime = service_runtime(app)
    # Loaded, and every pack's [assessment] table validated, when the app is built: a broken pack
    # stops the start (naming its file and field), not a call.
    policies = PolicyBook.load(settings.policies_dir, sections=(AssessmentPolicy,))

    def application() -> Application:
        # Put together per call (a few small objects): the store and the pool are new after
        # a restart of the lifespan; the folded states stay in the runtime's cache.
        return Application(
            commands=runtime.commands(),
            assignments=ReplicatedAssignments(runtime.database(), schema),
            absences=ReplicatedAbsences(runtime.database(), schema),
            policies=policies,
            metadata=command_metadata,
        )

    provide_use_cases(app, application)
    app.include_router(router)
    return app
