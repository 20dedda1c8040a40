"""The service runtime's HTTP mapping of event-store errors (no I/O: the lifespan is not run)."""

from __future__ import annotations

import httpx
import pytest

from zhucun.shared.service import create_service_app
from zhucun.shared.settings import ServiceSettings
from zhucun.shared.store import EventIdConflict, WrongExpectedVersion

pytestmark = pytest.mark.unit


async def test_store_conflicts_are_409_problems() -> None:
    app = create_service_app(ServiceSettings(), title="t", topic=None, source="/zhucun/test")

    @app.post("/version")
    async def version() -> None:
        raise WrongExpectedVersion("team-7", 3, 4)

    @app.post("/event-id")
    async def event_id() -> None:
        raise EventIdConflict("e-1", "already stored with different content")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        version_response = await client.post("/version")
        event_id_response = await client.post("/event-id")

    assert version_response.status_code == 409
    assert version_response.headers["content-type"] == "application/problem+json"
    body = version_response.json()
    assert body["type"].endswith("/version-conflict")
    assert (body["stream_id"], body["expected_version"], body["actual_version"]) == ("team-7", 3, 4)
    assert event_id_response.status_code == 409
    assert event_id_response.json()["type"].endswith("/event-id-conflict")
