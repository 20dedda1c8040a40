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
