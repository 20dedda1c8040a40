"""The committed OpenAPI documents, read as their users' tools read them (fast; the live
conformance run is ``test_schemathesis.py``): every error response a problem document,
every secured operation naming its roles, every read typed, every pattern one that
schemathesis (jsonschema-rs) can enforce as written; and every value a request or an event
carries bounded (``docs/domain.md``, "Bounds of the contracts")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from schemathesis.core.jsonschema.patterns import enforced_pattern

from zhucun.shared.openapi import operations
from zhucun.shared.testing import unbounded

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("dispatch", "attendance", "assessment", "projections")


def _document(service: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (ROOT / "services" / service / "openapi.json").read_text(encoding="utf-8")
    )
    return document


def _patterns(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


@pytest.mark.parametrize("service", SERVICES)
def test_every_pattern_is_one_a_validator_can_enforce(service: str) -> None:
    unusable = sorted({p for p in _patterns(_document(service)) if enforced_pattern(p) is None})
    assert unusable == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_is_a_problem_document_and_every_operation_says_who(service: str) -> None:
    document = _document(service)
    found = list(operations(document))
    assert found
    for method, path, operation in found:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("description"), where
        if operation.get("security"):
            assert "**Roles:**" in operation["description"], where
            assert {"401", "403"} <= set(operation["responses"]), where
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"], (where, status)
            else:
                schema = response["content"]["application/json"]["schema"]
                assert schema != {}, f"{where} {status} is untyped"
        assert "422" in operation["responses"] or not operation.get("parameters"), where
    assert "HTTPValidationError" not in document["components"]["schemas"]


def _asyncapi(contract: str) -> dict[str, Any]:
    path = ROOT / "contracts" / contract / "src" / "zhucun" / "contracts" / contract
    document: dict[str, Any] = json.loads((path / "asyncapi.json").read_text(encoding="utf-8"))
    return document


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _request_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The component schemas a request may carry (bodies and parameters), transitively."""
    schemas = document["components"]["schemas"]
    inputs = [
        part
        for _, _, operation in operations(document)
        for part in (operation.get("requestBody", {}), operation.get("parameters", []))
    ]
    seen: dict[str, Any] = {}
    waiting = list(_refs(inputs))
    while waiting:
        name = waiting.pop()
        if name not in seen and name in schemas:
            seen[name] = schemas[name]
            waiting.extend(_refs(schemas[name]))
    return seen


@pytest.mark.parametrize("contract", ["dispatch", "attendance", "assessment", "decisions"])
def test_every_field_of_every_event_is_bounded(contract: str) -> None:
    schemas = _asyncapi(contract)["components"]["schemas"]
    assert len(schemas) > 2
    found = {
        name: unbounded(schema, name)
        for name, schema in schemas.items()
        if name != "CloudEventHeaders" and unbounded(schema, name)
    }
    assert found == {}


@pytest.mark.parametrize("service", SERVICES)
def test_every_value_a_request_carries_is_bounded(service: str) -> None:
    document = _document(service)
    found = {
        name: unbounded(schema, name)
        for name, schema in _request_schemas(document).items()
        if unbounded(schema, name)
    }
    parameters = [
        f"{method.upper()} {path} {parameter['name']}"
        for method, path, operation in operations(document)
        for parameter in operation.get("parameters", [])
        if unbounded(parameter["schema"], parameter["name"])
    ]
    assert (found, parameters) == ({}, [])
