"""Composition root of the dispatch service: ``create_app(settings)``.

Run it with ``uvicorn --factory zhucun.dispatch.app:create_app`` (settings from ``ZHUCUN_*``
environment variables).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr

from zhucun.contracts.dispatch import SOURCE, TOPIC
from zhucun.contracts.dispatch.events import registry
from zhucun.dispatch.application import Dispatch
from zhucun.dispatch.http import router
from zhucun.shared.policy import PolicyBook
from zhucun.shared.service import ServiceRuntime, create_service_app
from zhucun.shared.settings import PostgresSettings, ServiceSettings

#: The HTTP API's OpenAPI document, committed (``services/dispatch/openapi.json``); regenerate
#: it with ``uv run zhucun contracts write`` after changing a route.
OPENAPI_PATH = Path(__file__).resolve().parents[3] / "openapi.json"


class DispatchSettings(ServiceSettings):
    service_name: str = "dispatch"
    postgres: PostgresSettings = PostgresSettings(
        dsn=SecretStr("postgresql://zhucun:zhucun@127.0.0.1:15432/dispatch")
    )


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
    runtime = app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    # Loaded (and validated) when the app is built: a broken pack stops the start, not a call.
    policies = PolicyBook.load(settings.policies_dir)
    # The command path exists once the lifespan has connected the store: asked per call.
    app.state.dispatch = Dispatch(runtime.commands, policies)
    app.include_router(router)
    return app
