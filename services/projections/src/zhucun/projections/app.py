"""Composition root of the projections service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.projections.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).

It builds the service app with its two read models (the audit trail, the decisions read
model, each fed from Kafka), loads the policy book (the decisions projection's, validated
when the app is built: a broken pack stops the start, not a batch), wires the use cases to
the running service's database pool and command path, answers the use cases' refusals under
each read model's problem namespace, and includes the routes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from zhucun.contracts.decisions import SOURCE, TOPIC
from zhucun.contracts.decisions.events import registry as decisions_registry
from zhucun.projections.application import ReadSide
from zhucun.projections.audit import AuditTrail, AuditTrailReader
from zhucun.projections.decisions.projection import DecisionsProjection
from zhucun.projections.decisions.queries import DecisionsReader
from zhucun.projections.errors import ProjectionsRuleViolation
from zhucun.projections.http import router
from zhucun.shared.problems import problem_response, rule_problem
from zhucun.shared.service import ServiceRuntime, create_service_app
from zhucun.shared.settings import PostgresSettings, ServiceSettings

#: The HTTP API's OpenAPI document, committed (``services/projections/openapi.json``); regenerate
#: it with ``uv run zhucun contracts write`` after changing a route.
OPENAPI_PATH = Path(__file__).resolve().parents[3] / "openapi.json"
#: Schemas of the projections database: the audit trail in the settings' schema (``public``),
#: the decisions read model and the decisions' event store each in their own, so either read
#: model can be rebuilt and switched alone (``zhucun replay``).
DECISIONS_SCHEMA = "decisions"
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
    runtime: ServiceRuntime = app.state.runtime

    def read_side() -> ReadSide:
        if runtime.pool is None:
            raise RuntimeError("the service is not started")
        return ReadSide.over(
            AuditTrailReader(runtime.pool, schema),
            DecisionsReader(runtime.pool, DECISIONS_SCHEMA),
            runtime.commands(),
        )

    app.state.read_side = read_side
    # More specific than the shared handler of every RuleViolation (handlers are looked up
    # along the exception's classes), so each refusal keeps its read model's problem types.
    app.add_exception_handler(ProjectionsRuleViolation, _refused)
    app.include_router(router)
    return app


async def _refused(request: Request, exc: Exception) -> Response:
    """A refusal of the read side, as the problem of its read model's namespace
    (``audit/unknown-cadre``, ``decisions/already-dismissed``...)."""
    assert isinstance(exc, ProjectionsRuleViolation)
    problem = rule_problem(exc, service=exc.namespace)
    return problem_response(problem.to_problem(instance=request.url.path), headers=problem.headers)
