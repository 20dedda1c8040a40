"""The committed AsyncAPI and OpenAPI documents are the ones the code generates, and the HTTP
API offers nothing the law forbids (no ranking or listing of people by check-ins)."""

from __future__ import annotations

import pytest

from zhucun.attendance.app import OPENAPI_PATH, create_app
from zhucun.contracts.attendance.asyncapi import DOCUMENT_PATH, document
from zhucun.contracts.attendance.events import registry
from zhucun.shared.asyncapi import render
from zhucun.shared.http import render_openapi

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert DOCUMENT_PATH.read_text() == render(document()), (
        "the asyncapi.json of the attendance contract is stale: run `uv run zhucun contracts write`"
    )


def test_every_event_type_is_in_the_document_and_keyed_by_cadre() -> None:
    messages = document()["components"]["messages"]
    assert set(messages) == {cls.event_type for cls in registry.classes()}
    assert all(m["summary"] for m in messages.values()), "every event needs a docstring"
    assert {cls.key_field for cls in registry.classes()} == {"cadre_id"}


def test_no_event_can_carry_coordinates() -> None:
    for cls in registry.classes():
        fields = str(cls.model_json_schema())
        assert "latitude" not in fields, cls.event_type
        assert "longitude" not in fields, cls.event_type


def test_committed_openapi_document_is_current() -> None:
    assert OPENAPI_PATH.read_text() == render_openapi(create_app()), (
        "services/attendance/openapi.json is stale: run `uv run zhucun contracts write`"
    )


def test_reads_are_about_one_cadre_never_a_ranking() -> None:
    """The law (2024, 2026) forbids ranking people by check-ins or time online: every read
    is one cadre's own file, and no read lists cadres."""
    paths = create_app().openapi()["paths"]
    reads = [path for path, ops in paths.items() if "get" in ops]
    assert reads
    assert all(path.startswith("/cadres/{cadre_id}/") for path in reads), reads
