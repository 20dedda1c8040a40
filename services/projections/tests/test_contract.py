"""The committed AsyncAPI (``decisions.events.v1``) and OpenAPI documents are the ones the
code generates."""

from __future__ import annotations

import pytest

from zhucun.contracts.decisions.asyncapi import DOCUMENT_PATH, document
from zhucun.contracts.decisions.events import registry
from zhucun.projections.app import OPENAPI_PATH, create_app
from zhucun.shared.asyncapi import render
from zhucun.shared.http import render_openapi
from zhucun.shared.testing import assert_committed, documented_events

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert_committed(DOCUMENT_PATH, render(document()))


def test_every_decision_event_is_in_the_document_and_keyed_by_cadre() -> None:
    messages = documented_events(document(), registry)
    assert set(messages) == {
        "decisions.RecallRecommended",
        "decisions.RecallExecuted",
        "decisions.RecallDismissed",
    }
    assert {cls.key_field for cls in registry.classes()} == {"cadre_id"}


def test_committed_openapi_document_is_current() -> None:
    assert_committed(OPENAPI_PATH, render_openapi(create_app()))
