"""The service app skeleton: health, readiness, metrics, problem details, correlation ids."""

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from zhucun.shared.http import ReadinessCheck, create_http_app, postgres_ready
from zhucun.shared.problems import ProblemError
from zhucun.shared.settings import ServiceSettings

pytestmark = pytest.mark.unit

PROBLEM_JSON = "application/problem+json"
PROBLEMS = "https://zhucun.dev/problems/"


class NewItem(BaseModel):
    name: str
    quantity: int


def build_app(checks: Mapping[str, ReadinessCheck] | None = None) -> FastAPI:
    app = create_http_app(
        ServiceSettings(),
        title="http-test",
        readiness_checks=checks,
        readiness_timeout_seconds=0.2,
    )

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/items")
    async def create_item(item: NewItem) -> dict[str, int]:
        return {"quantity": item.quantity}

    @app.get("/conflict")
    async def conflict() -> None:
        raise ProblemError(409, "version-conflict", "Version conflict", "stale", expected=3)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 at db-internal-host:5432")

    return app


async def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(build_app()) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    assert body["title"]
    return body


async def test_live_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


async def test_ready_without_checks_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {}, "components": {}, "attention": []}


async def passing() -> None:
    return None


async def failing() -> None:
    raise ConnectionRefusedError("connection refused")


async def hanging() -> None:
    await asyncio.sleep(30)


async def test_ready_with_passing_checks_is_200() -> None:
    async with await client_for(build_app({"postgres": passing, "kafka": passing})) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"postgres": "ok", "kafka": "ok"},
        "components": {},
        "attention": [],
    }


async def test_reports_describe_components_without_deciding_readiness() -> None:
    """A stalled relay, an unreachable broker or a report that fails are in the body and
    under ``attention``; readiness is decided by the checks alone."""
    app = build_app({"postgres": passing})

    async def stalled() -> dict[str, Any]:
        return {"state": "stalled", "lag": 3}

    async def mixed() -> dict[str, Any]:
        return {"replica": {"state": "ok"}, "audit": {"state": "stopped"}}

    async def broken() -> dict[str, Any]:
        raise ConnectionRefusedError("connection refused")

    async def slow() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"state": "ok"}

    app.state.health_reports.update(relay=stalled, projections=mixed, kafka=broken, x=slow)
    async with await client_for(app) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"postgres": "ok"},
        "components": {
            "relay": {"state": "stalled", "lag": 3},
            "projections": {"replica": {"state": "ok"}, "audit": {"state": "stopped"}},
            "kafka": {"state": "failing", "error": "ConnectionRefusedError: connection refused"},
            "x": {"state": "failing", "error": "timed out after 0.2s"},
        },
        "attention": ["relay", "projections.audit", "kafka", "x"],
    }


async def test_ready_with_failing_checks_is_503_problem() -> None:
    app = build_app({"postgres": passing, "kafka": failing, "slow": hanging})

    async with await client_for(app) as client:
        started = asyncio.get_running_loop().time()
        response = await client.get("/health/ready")
        elapsed = asyncio.get_running_loop().time() - started

    body = assert_problem(response, 503, "not-ready")
    assert body["checks"] == {
        "postgres": "ok",
        "kafka": "ConnectionRefusedError: connection refused",
        "slow": "timed out after 0.2s",
    }
    assert "kafka" in body["detail"]
    assert "slow" in body["detail"]
    assert elapsed < 2  # checks run concurrently under a timeout, not one after another


async def test_checks_added_after_creation_are_run() -> None:
    app = build_app()
    app.state.readiness_checks["late"] = failing

    async with await client_for(app) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 503


async def test_postgres_ready_runs_select_1() -> None:
    class FakePool:
        queries: list[str] = []  # noqa: RUF012

        async def fetchval(self, query: str) -> int:
            self.queries.append(query)
            return 1

    pool = FakePool()

    await postgres_ready(pool)()  # type: ignore[arg-type]  # a fake of asyncpg's Pool

    assert pool.queries == ["SELECT 1"]


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/items/1")
    await client.get("/items/2")
    await client.get("/nowhere")

    response = await client.get("/metrics")

    assert response.status_code == 200
    text = response.text
    assert 'http_requests_total{method="GET",route="/items/{item_id}",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert "http_request_duration_seconds_bucket{" in text


async def test_two_apps_have_separate_metrics() -> None:
    first, second = build_app(), build_app()
    async with await client_for(first) as client:
        await client.get("/items/1")
    async with await client_for(second) as client:
        text = (await client.get("/metrics")).text

    assert 'route="/items/{item_id}"' not in text


async def test_invalid_body_is_422_with_field_errors(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", json={"name": "张三", "quantity": "many"})

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"] == [
        {
            "location": ["body", "quantity"],
            "message": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]
    assert "张三" not in response.text  # submitted values are never echoed
    assert "many" not in response.text


async def test_missing_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", json={"quantity": 1})

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["location"] == ["body", "name"]
    assert body["errors"][0]["type"] == "missing"


async def test_malformed_json_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/items", content=b'{"name": "x", "quantity":', headers={"content-type": "application/json"}
    )

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["type"] == "json_invalid"
    assert "Traceback" not in response.text


async def test_invalid_path_parameter_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/abc")

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["location"] == ["path", "item_id"]


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")

    body = assert_problem(response, 404, "not-found")
    assert body["instance"] == "/nowhere"


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/items/1")

    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"]


async def test_problem_error_keeps_its_extensions(client: httpx.AsyncClient) -> None:
    response = await client.get("/conflict")

    body = assert_problem(response, 409, "version-conflict")
    assert body["detail"] == "stale"
    assert body["expected"] == 3


async def test_unhandled_exception_is_500_without_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")

    body = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    assert body["correlation_id"] == response.headers["x-correlation-id"]


async def test_unhandled_exception_is_counted_as_500(client: httpx.AsyncClient) -> None:
    await client.get("/boom")

    text = (await client.get("/metrics")).text

    assert 'http_requests_total{method="GET",route="/boom",status="500"} 1.0' in text


async def test_correlation_id_is_echoed(client: httpx.AsyncClient) -> None:
    given = "0f6c1e4a9b7d4c2e8a1b3c5d7e9f1a2b"

    response = await client.get("/items/1", headers={"X-Correlation-ID": given})

    assert response.headers["x-correlation-id"] == given


async def test_correlation_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/items/1")
    second = await client.get("/items/1")

    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-correlation-id"])
    assert first.headers["x-correlation-id"] != second.headers["x-correlation-id"]


async def test_problems_carry_the_correlation_id(client: httpx.AsyncClient) -> None:
    given = "1f6c1e4a9b7d4c2e8a1b3c5d7e9f1a2b"

    response = await client.get("/nowhere", headers={"X-Correlation-ID": given})

    assert response.json()["correlation_id"] == given


def test_app_state_is_set() -> None:
    settings = ServiceSettings(service_name="dispatch")

    app = create_http_app(settings, title="dispatch", version="1.2.3")

    assert app.state.settings is settings
    assert app.state.token_verifier is not None
    assert app.version == "1.2.3"
