"""Log lines: one JSON object each, correlation ids on every line, no personal data ever."""

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
import structlog
from fastapi import Depends
from pydantic import BaseModel

from zhucun.shared.auth import Principal, authenticated, mint_token
from zhucun.shared.http import create_http_app
from zhucun.shared.logging import PERSONAL_DATA_KEYS, configure_logging
from zhucun.shared.settings import LogSettings, ServiceSettings

pytestmark = pytest.mark.unit

JSON = LogSettings(format="json", level="DEBUG")
PERSONAL_VALUES = ("张三", "李四", "29.5630", "106.5516", "13800000000")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A log sink; logging and structlog are put back afterwards for the other tests."""
    sink = io.StringIO()
    yield sink
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__name__ == "_ZhucunHandler":
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in all_keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in all_keys(item)}
    return set()


def assert_no_personal_data(stream: io.StringIO) -> None:
    text = stream.getvalue()
    for value in PERSONAL_VALUES:
        assert value not in text
    for line in lines(stream):
        assert not all_keys(line) & PERSONAL_DATA_KEYS


class Cadre(BaseModel):
    cadre_id: str
    name: str
    home_latitude: float


@dataclass
class Visit:
    village_id: str
    coordinates: tuple[float, float]


def test_json_line_has_correlation_id_and_no_personal_keys(stream: io.StringIO) -> None:
    configure_logging(JSON, service_name="dispatch", stream=stream)
    structlog.contextvars.bind_contextvars(correlation_id="c0ffee")

    structlog.get_logger("zhucun.test").info(
        "cadre.checked_in",
        cadre_id="k-1",
        name="张三",
        full_name="张三",
        latitude=29.5630,
        Longitude=106.5516,
        phone="13800000000",
        evidence={"village_id": "v-1", "location": {"lat": 29.5630, "lon": 106.5516}},
        people=[{"name": "李四", "role": "cadre"}],
        cadre=Cadre(cadre_id="k-1", name="张三", home_latitude=29.5630),
        visit=Visit(village_id="v-1", coordinates=(29.5630, 106.5516)),
    )

    [line] = lines(stream)
    assert line["event"] == "cadre.checked_in"
    assert line["correlation_id"] == "c0ffee"
    assert line["service"] == "dispatch"
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")
    assert line["cadre_id"] == "k-1"
    assert line["evidence"] == {"village_id": "v-1"}
    assert line["people"] == [{"role": "cadre"}]
    assert line["cadre"] == {"cadre_id": "k-1"}
    assert line["visit"] == {"village_id": "v-1"}
    assert "name" in line["redacted"]
    assert "evidence.location" in line["redacted"]
    assert_no_personal_data(stream)


def test_stdlib_records_use_the_same_format_and_context(stream: io.StringIO) -> None:
    configure_logging(JSON, service_name="attendance", stream=stream)
    structlog.contextvars.bind_contextvars(correlation_id="abc123")

    logging.getLogger("aiokafka.consumer").warning(
        "rebalance %s", "done", extra={"full_name": "张三", "partition": 3}
    )

    [line] = lines(stream)
    assert line["event"] == "rebalance done"
    assert line["logger"] == "aiokafka.consumer"
    assert line["correlation_id"] == "abc123"
    assert line["partition"] == 3
    assert_no_personal_data(stream)


def test_uvicorn_access_lines_lose_their_query_string(stream: io.StringIO) -> None:
    configure_logging(JSON, service_name="dispatch", stream=stream)

    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET", "/cadres?name=张三", "1.1", 200
    )

    [line] = lines(stream)
    assert "/cadres" in line["event"]
    assert_no_personal_data(stream)


def test_extra_redacted_keys_extend_the_list(stream: io.StringIO) -> None:
    configure_logging(JSON, service_name="dispatch", stream=stream, extra_redacted_keys=["Spouse"])

    structlog.get_logger().info("x", spouse="李四", village_id="v-1")

    [line] = lines(stream)
    assert "spouse" not in line
    assert line["village_id"] == "v-1"


def test_configuring_twice_keeps_one_handler(stream: io.StringIO) -> None:
    configure_logging(LogSettings(format="console"), service_name="a", stream=io.StringIO())
    configure_logging(JSON, service_name="b", stream=stream)

    structlog.get_logger().info("once")

    [line] = lines(stream)
    assert line["service"] == "b"


def test_level_filters_lines(stream: io.StringIO) -> None:
    configure_logging(LogSettings(format="json", level="WARNING"), service_name="a", stream=stream)

    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("loud")

    assert [line["event"] for line in lines(stream)] == ["loud"]


def test_auto_format_is_json_when_not_a_tty(stream: io.StringIO) -> None:
    configure_logging(LogSettings(format="auto"), service_name="a", stream=stream)

    structlog.get_logger().info("hello")

    assert lines(stream)[0]["event"] == "hello"


def test_console_format_also_redacts(stream: io.StringIO) -> None:
    configure_logging(LogSettings(format="console"), service_name="a", stream=stream)

    structlog.get_logger().info("hello", name="张三", village_id="v-1")

    text = stream.getvalue()
    assert "hello" in text
    assert "v-1" in text
    assert "张三" not in text


def test_exceptions_are_logged_without_locals(stream: io.StringIO) -> None:
    configure_logging(JSON, service_name="a", stream=stream)

    def fail(name: str) -> None:
        raise ValueError("bad input")

    try:
        fail("张三")
    except ValueError:
        structlog.get_logger().exception("failed")

    [line] = lines(stream)
    assert line["exception"][0]["exc_type"] == "ValueError"
    assert "张三" not in stream.getvalue()


async def test_request_lines_carry_correlation_id_and_actor(stream: io.StringIO) -> None:
    configure_logging(JSON, service_name="dispatch", stream=stream)
    settings = ServiceSettings()
    app = create_http_app(settings, title="t")

    @app.get("/me")
    async def me(principal: Annotated[Principal, Depends(authenticated)]) -> dict[str, str]:
        structlog.get_logger().info("me.read", name="张三")
        return {"subject": principal.subject}

    token = mint_token(settings.auth, subject="u-1", role="org_admin", county="c-1")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        await client.get("/health/live")  # a later request must not inherit the actor

    correlation_id = response.headers["x-correlation-id"]
    by_event: dict[str, list[dict[str, Any]]] = {}
    for line in lines(stream):
        by_event.setdefault(line["event"], []).append(line)
    [endpoint_line] = by_event["me.read"]
    assert endpoint_line["correlation_id"] == correlation_id
    assert endpoint_line["actor"] == {"subject": "u-1", "role": "org_admin"}
    first_request, second_request = by_event["http.request"]
    assert first_request["correlation_id"] == correlation_id
    assert first_request["route"] == "/me"
    assert first_request["status"] == 200
    assert "actor" not in second_request
    assert second_request["correlation_id"] != correlation_id
    assert "correlation_id" not in structlog.contextvars.get_contextvars()
    assert_no_personal_data(stream)
