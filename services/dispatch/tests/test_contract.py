"""The committed AsyncAPI document is the one the code generates."""

from __future__ import annotations

import pytest

from zhucun.contracts.dispatch.asyncapi import DOCUMENT_PATH, document
from zhucun.contracts.dispatch.events import registry
from zhucun.dispatch.app import OPENAPI_PATH, create_app
from zhucun.shared.asyncapi import render
from zhucun.shared.http import render_openapi
from zhucun.shared.testing import assert_committed, documented_events

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert_committed(DOCUMENT_PATH, render(document()))


def test_every_event_type_is_in_the_document() -> None:
    documented_events(document(), registry)


def test_committed_openapi_document_is_current() -> None:
    assert_committed(OPENAPI_PATH, render_openapi(create_app()))


def test_openapi_has_a_route_per_command() -> None:
    paths = create_app().openapi()["paths"]
    writes = [op for path in paths.values() for method, op in path.items() if method != "get"]
    assert len(writes) == 15


def test_every_operation_says_what_it_does_and_every_read_is_typed() -> None:
    paths = create_app().openapi()["paths"]
    operations = [(path, method, op) for path, ops in paths.items() for method, op in ops.items()]
    for path, method, operation in operations:
        assert operation.get("summary"), (method, path)
        assert len(operation.get("description", "")) > 40, (method, path)
        if method == "get":
            schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
            assert "$ref" in schema or schema.get("items", {}).get("$ref"), (path, schema)
    lists = {"/villages", "/cadres", "/rounds", "/teams", "/assignments"}
    for name in lists:
        get = paths[f"/counties/{{county}}{name}"]["get"]
        assert get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].startswith(
            "#/components/schemas/Page_"
        )
        assert {p["name"] for p in get["parameters"]} >= {"county", "limit", "after"}
