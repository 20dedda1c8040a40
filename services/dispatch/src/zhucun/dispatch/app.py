"""Composition root of the dispatch service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.dispatch.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from fastapi import FastAPI

from zhucun.contracts.dispatch import SOURCE, TOPIC
from zhucun.contracts.dispatch.events import registry
from zhucun.dispatch.application import Dispatch
from zhucun.dispatch.domain.policy import DispatchPolicy
from zhucun.dispatch.http import router
from zhucun.shared.http import openapi_path, provide_use_cases
from zhucun.shared.policy import PolicyBook
from zhucun.shared.service import create_service_app, service_runtime
from zhucun.shared.settings import PostgresSettings, ServiceSettings, local_database

#: The HTTP API's OpenAPI document, committed (``uv run zhucun contracts write`` rewrites it).
OPENAPI_PATH = openapi_path(__file__)


class DispatchSettings(ServiceSettings):
    service_name: str = "dispatch"
    postgres: PostgresSettings = local_database("dispatch")


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or DispatchSettings()
    app = create_service_app(
        settings,
        title="Zhucun dispatch (派)",
        topic=TOPIC,
        source=SOURCE,
        events=registry,
        problems="dispatch",
    )
    runtime = service_runtime(app)
    # Loaded, and every pack's [dispatch] table validated, when the app is built: a broken pack
    # stops the start (naming its file and field), not a call.
    policies = PolicyBook.load(settings.policies_dir, sections=(DispatchPolicy,))
    # The command path exists once the lifespan has connected the store: asked per call.
    dispatch = Dispatch(runtime.commands, policies)
    provide_use_cases(app, lambda: dispatch)
    app.include_router(router)
    return app
