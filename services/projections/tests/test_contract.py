"""The committed AsyncAPI (``decisions.events.v1``) and OpenAPI documents are the ones the
code generates."""

from __future__ import annotations

import pytest

from zhucun.projections.contract import DOCUMENT_PATH, OPENAPI_PATH, document, render_openapi
from zhucun.projections.decisions.events import registry
from zhucun.shared.asyncapi import render

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert DOCUMENT_PATH.read_text() == render(document()), (
        "services/projections/asyncapi.json is stale: run `uv run zhucun contracts write`"
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
    assert OPENAPI_PATH.read_text() == render_openapi(), (
        "services/projections/openapi.json is stale: run `uv run zhucun contracts write`"
    )
