"""The committed AsyncAPI and OpenAPI documents are the ones the code generates."""

from __future__ import annotations

import pytest

from zhucun.assessment.app import OPENAPI_PATH, create_app
from zhucun.contracts.assessment.asyncapi import DOCUMENT_PATH, document
from zhucun.contracts.assessment.events import registry
from zhucun.shared.asyncapi import render
from zhucun.shared.http import render_openapi
from zhucun.shared.testing import assert_committed, documented_events

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert_committed(DOCUMENT_PATH, render(document()))


def test_every_event_type_is_in_the_document() -> None:
    documented_events(document(), registry)
    # Keyed as docs/adr/0006 says: the cadre, else the village, else (rounds, lists) the county.
    assert {cls.key_field for cls in registry.classes()} == {"cadre_id", "village_id", "county"}


def test_committed_openapi_document_is_current() -> None:
    assert_committed(OPENAPI_PATH, render_openapi(create_app()))
