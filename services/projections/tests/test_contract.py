"""The committed AsyncAPI (``decisions.events.v1``) and OpenAPI documents are the ones the
code generates."""

from __future__ import annotations

import pytest

from zhucun.contracts.decisions.asyncapi import DOCUMENT_PATH, document
from zhucun.contracts.decisions.events import registry
from zhucun.projections.app import OPENAPI_PATH, create_app
from zhucun.shared.asyncapi import render
from zhucun.shared.http import render_openapi

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert DOCUMENT_PATH.read_text() == render(document()), (
        "the asyncapi.json of the decisions contract is stale: run `uv run zhucun contracts write`"
    )


def test_every_decision_event_is_in_the_document_and_keyed_by_cadre() -> None:
    messages = document()["components"]["messages"]
    assert set(messages) == {cls.event_type for cls in registry.classes()}
    assert set(messages) == {
        "decisions.RecallRecommended",
        "decisions.RecallExecuted",
        "decisions.RecallDismissed",
    }
    assert all(m["summary"] for m in messages.values()), "every event needs a docstring"
    assert {cls.key_field for cls in registry.classes()} == {"cadre_id"}


def test_committed_openapi_document_is_current() -> None:
    assert OPENAPI_PATH.read_text() == render_openapi(create_app()), (
        "services/projections/openapi.json is stale: run `uv run zhucun contracts write`"
    )
