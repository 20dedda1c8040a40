"""The bounds every contract uses (``zhucun.shared.bounds``), the request body limit, the
OpenAPI documents' error responses and roles, and the final 404 of a refusal once the
replicas have caught up."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, TypeAdapter, ValidationError

from zhucun.shared.auth import Principal, Role, require_roles
from zhucun.shared.bounds import (
    BusinessDate,
    Count,
    Flag,
    Id,
    Month,
    Name,
    Percent,
    Quarter,
    RadiusMetres,
    Text,
    Timestamp,
    Year,
)
from zhucun.shared.http import MAX_REQUEST_BODY_BYTES, create_http_app
from zhucun.shared.rules import RuleViolation
from zhucun.shared.service import ServiceRuntime, create_service_app, replicas_behind
from zhucun.shared.settings import ServiceSettings
from zhucun.shared.store import MAX_EVENT_BYTES, EventTooLarge
from zhucun.shared.testing import bearer

pytestmark = pytest.mark.unit


def _refuses(kind: Any, value: object) -> bool:
    try:
        TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return True
    return False


# --- the types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        '=HYPERLINK("http://x")',
        "+1",
        "-1",
        "@cmd",
        "a\u202eb",  # right-to-left override
        "a\u200bb",  # zero-width space
        "a\x00b",
        "a b",
        "c\n1",
        "张三",
        "x" * 129,
    ],
)
def test_an_id_refuses_what_the_pattern_excludes(value: str) -> None:
    assert _refuses(Id, value)


@pytest.mark.parametrize("value", ["c1", "new-c9:handover", "a.b_c-d:e", "X" * 128, "0"])
def test_an_id_takes_letters_digits_and_separators(value: str) -> None:
    assert TypeAdapter(Id).validate_python(value) == value


@pytest.mark.parametrize(
    "value", ["", "a\x00", "\u202eevil", "zero\u200bwidth", "line\u2028sep", "bom\ufeff", "x" * 201]
)
def test_a_name_refuses_invisible_characters_and_overlength(value: str) -> None:
    assert _refuses(Name, value)


def test_a_name_takes_chinese_and_the_message_names_the_character() -> None:
    assert TypeAdapter(Name).validate_python("大凉山 彝族 村") == "大凉山 彝族 村"
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(Name).validate_python("a\u202eb")
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in str(refused.value)


def test_a_text_takes_line_breaks_and_tabs_but_no_nul() -> None:
    assert TypeAdapter(Text).validate_python("第一行\n\t第二行\r\n") == "第一行\n\t第二行\r\n"
    assert _refuses(Text, "ok\x00")
    assert _refuses(Text, "x" * 10_001)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (BusinessDate, "0001-01-01"),
        (BusinessDate, "9999-12-31"),
        (BusinessDate, "1999-12-31"),
        (Timestamp, "9999-12-31T23:59:59Z"),
        (Timestamp, "0001-01-01T00:00:00+14:00"),
        (Timestamp, "2025-01-01T08:00:00"),  # no offset: no day in China's calendar
        (Month, "0000-01"),
        (Month, "9999-12"),
        (Month, "2025-13"),
        (Quarter, "0000-Q1"),
        (Quarter, "2025-Q5"),
        (Year, 0),
        (Year, 2100),
        (Year, True),
    ],
)
def test_periods_and_instants_stay_in_the_window(kind: Any, value: object) -> None:
    assert _refuses(kind, value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (Count, True),
        (Count, "3"),
        (Count, 3.0),
        (Count, 10**30),
        (Count, -1),
        (RadiusMetres, 10**12),
        (RadiusMetres, 0),
        (Percent, float("nan")),
        (Percent, 100.5),
        (Percent, False),
        (Flag, 1),
        (Flag, "true"),
    ],
)
def test_numbers_are_strict_and_bounded(kind: Any, value: object) -> None:
    assert _refuses(kind, value)


def test_the_name_pattern_in_the_schema_agrees_with_the_validator() -> None:
    """The documented pattern (for schemathesis and clients) refuses what the validator
    refuses in the basic plane, and takes what it takes."""

    class Sample(BaseModel):
        name: Name

    pattern = re.compile(Sample.model_json_schema()["properties"]["name"]["pattern"])
    for point in range(0x20, 0x10000):
        if 0xD800 <= point <= 0xDFFF:
            continue
        character = chr(point)
        documented = pattern.fullmatch(character) is not None
        assert documented is not _refuses(Name, character), f"U+{point:04X}"


# --- the request body limit -----------------------------------------------------------------


class Body(BaseModel):
    text: str


Writer = Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN, Role.AUDITOR))]


def _app() -> FastAPI:
    app = create_http_app(ServiceSettings(), title="bounds-test")

    @app.post("/things/{thing_id}", summary="Make a thing", description="Makes a thing.")
    async def make(thing_id: Id, body: Body, principal: Writer) -> dict[str, int]:
        return {"length": len(body.text)}

    @app.get("/open")
    async def open_read() -> dict[str, str]:
        return {"ok": "yes"}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_a_body_above_the_limit_is_413_before_any_handler(
    client: httpx.AsyncClient,
) -> None:
    headers = bearer("org_admin", county="530102")
    big = json.dumps({"text": "x" * MAX_REQUEST_BODY_BYTES})
    response = await client.post("/things/t1", content=big, headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "https://zhucun.dev/problems/body-too-large"
    assert problem["limit_bytes"] == MAX_REQUEST_BODY_BYTES


async def test_a_chunked_body_above_the_limit_is_413_too(client: httpx.AsyncClient) -> None:
    headers = bearer("org_admin", county="530102")
    chunk = b"x" * 65_536

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(MAX_REQUEST_BODY_BYTES // len(chunk) + 1):
            yield chunk
        yield b'"}'

    response = await client.post("/things/t1", content=chunks(), headers=headers)
    assert response.status_code == 413


async def test_a_body_under_the_limit_reaches_the_handler(client: httpx.AsyncClient) -> None:
    headers = bearer("org_admin", county="530102")
    text = "x" * (MAX_REQUEST_BODY_BYTES - 100)
    response = await client.post("/things/t1", json={"text": text}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"length": len(text)}


# --- the OpenAPI document -------------------------------------------------------------------


def test_each_operation_documents_its_problems_and_roles() -> None:
    document = _app().openapi()
    make = document["paths"]["/things/{thing_id}"]["post"]
    assert sorted(make["responses"]) == [
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "422",
        "500",
    ]
    for status in ("400", "401", "403", "404", "409", "413", "500"):
        content = make["responses"][status]["content"]
        assert content == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    assert make["responses"]["422"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationProblem"
    }
    assert "Retry-After" in make["responses"]["409"]["headers"]
    assert make["description"].startswith("Makes a thing.")
    assert "**Roles:** `auditor`, `org_admin`" in make["description"]
    open_read = document["paths"]["/open"]["get"]
    assert sorted(open_read["responses"]) == ["200", "500"]
    assert "description" not in open_read
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ValidationProblem"]["properties"]["errors"]["items"] == {
        "$ref": "#/components/schemas/FieldError"
    }
    assert make["parameters"][0]["schema"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


# --- unknown versus not yet replicated ------------------------------------------------------


@dataclass
class FakeProjection:
    topics: tuple[str, ...] = ("dispatch.events.v1",)


@dataclass
class FakeRunner:
    lags: Mapping[tuple[str, int], int]
    projection: FakeProjection = field(default_factory=FakeProjection)

    async def lag(self) -> Mapping[tuple[str, int], int]:
        return self.lags


class NotKnownYet(RuleViolation):
    code = "no_active_assignment"
    kind = "retryable"

    def __init__(self) -> None:
        super().__init__("cadre 'c-typo' has no assignment covering 2025-03-01 in the replica")
        self.cadre_id = "c-typo"


def _service_app(lags: Mapping[tuple[str, int], int] | None) -> FastAPI:
    app = create_service_app(
        ServiceSettings(), title="replica-test", topic=None, source="test", problems="attendance"
    )
    runtime: ServiceRuntime = app.state.runtime
    if lags is not None:
        runtime.projections["dispatch-replica"] = FakeRunner(lags)  # type: ignore[assignment]

    @app.get("/refuse")
    async def refuse() -> None:
        raise NotKnownYet

    @app.post("/huge")
    async def huge() -> None:
        raise EventTooLarge("dispatch.VillageRegistered", 2_000_610)

    return app


async def _refusal(lags: Mapping[tuple[str, int], int] | None) -> httpx.Response:
    transport = httpx.ASGITransport(app=_service_app(lags))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get("/refuse")


async def test_a_replica_gap_is_a_retryable_409_while_the_replica_is_behind() -> None:
    response = await _refusal({("dispatch.events.v1", 0): 0, ("dispatch.events.v1", 1): 3})
    assert response.status_code == 409
    assert response.headers["retry-after"] == "5"
    problem = response.json()
    assert problem["retryable"] is True
    assert problem["detail"].endswith("(the replica is 3 record(s) behind)")


async def test_a_replica_gap_is_a_final_404_once_every_replica_has_caught_up() -> None:
    response = await _refusal({("dispatch.events.v1", 0): 0, ("dispatch.events.v1", 1): 0})
    assert response.status_code == 404
    assert "retry-after" not in response.headers
    problem = response.json()
    assert problem["type"] == "https://zhucun.dev/problems/attendance/no-active-assignment"
    assert problem["retryable"] is False
    assert problem["replica_caught_up"] is True
    assert problem["code"] == "no_active_assignment"
    assert problem["cadre_id"] == "c-typo"
    assert "caught up with dispatch.events.v1" in problem["detail"]


async def test_without_a_replica_to_ask_the_refusal_stays_retryable() -> None:
    assert (await _refusal(None)).status_code == 409
    # A topic whose partitions are not known yet: cannot tell, so retryable.
    assert (await _refusal({})).status_code == 409


async def test_an_event_above_the_store_limit_is_a_413_problem() -> None:
    transport = httpx.ASGITransport(app=_service_app(None))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/huge")
    assert response.status_code == 413
    problem = response.json()
    assert problem["type"] == "https://zhucun.dev/problems/event-too-large"
    assert (problem["size_bytes"], problem["limit_bytes"]) == (2_000_610, MAX_EVENT_BYTES)
    assert problem["event_type"] == "dispatch.VillageRegistered"


async def test_replicas_behind_sums_every_partition_of_every_replica() -> None:
    app = _service_app({("t", 0): 2, ("t", 1): 5})
    runtime: ServiceRuntime = app.state.runtime
    runtime.projections["other"] = FakeRunner({("u", 0): 4})  # type: ignore[assignment]
    assert await replicas_behind(runtime) == 11


async def test_a_burst_of_refusals_asks_kafka_once() -> None:
    """The end offsets cost a round trip: a client retrying a typo in a loop must not turn
    each request into a question to the broker."""
    asked: list[int] = []

    @dataclass
    class CountingRunner(FakeRunner):
        async def lag(self) -> Mapping[tuple[str, int], int]:
            asked.append(1)
            return self.lags

    app = _service_app(None)
    runtime: ServiceRuntime = app.state.runtime
    runtime.projections["r"] = CountingRunner({("t", 0): 0})  # type: ignore[assignment]
    answers = [await replicas_behind(runtime) for _ in range(20)]
    assert answers == [0] * 20
    assert len(asked) == 1
