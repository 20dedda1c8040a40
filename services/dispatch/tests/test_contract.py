"""The committed AsyncAPI document is the one the code generates."""

from __future__ import annotations

import pytest

from zhucun.contracts.dispatch.asyncapi import DOCUMENT_PATH, document
from zhucun.contracts.dispatch.events import registry
from zhucun.dispatch.app import OPENAPI_PATH, create_app
from zhucun.shared.asyncapi import render
from zhucun.shared.http import render_openapi

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert DOCUMENT_PATH.read_text() == render(document()), (
        "the asyncapi.json of the dispatch contract is stale: run `uv run zhucun contracts write`"
    )


def test_every_event_type_is_in_the_document() -> None:
    messages = document()["components"]["messages"]
    assert set(messages) == {cls.event_type for cls in registry.classes()}
    assert all(m["summary"] for m in messages.values()), "every event needs a docstring"


def test_committed_openapi_document_is_current() -> None:
    assert OPENAPI_PATH.read_text() == render_openapi(create_app()), (
        "services/dispatch/openapi.json is stale: run `uv run zhucun contracts write`"
    )


def test_openapi_has_a_route_per_command() -> None:
    paths = create_app().openapi()["paths"]
    writes = [op for path in paths.values() for method, op in path.items() if method != "get"]
    assert len(writes) == 15
