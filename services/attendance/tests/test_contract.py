"""The committed AsyncAPI and OpenAPI documents are the ones the code generates, and the HTTP
API offers nothing the law forbids (no ranking or listing of people by check-ins)."""

from __future__ import annotations

import pytest

from zhucun.attendance.app import OPENAPI_PATH, create_app
from zhucun.contracts.attendance.asyncapi import DOCUMENT_PATH, document
from zhucun.contracts.attendance.events import registry
from zhucun.shared.asyncapi import render
from zhucun.shared.http import render_openapi
from zhucun.shared.testing import assert_committed, documented_events

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert_committed(DOCUMENT_PATH, render(document()))


def test_every_event_type_is_in_the_document_and_keyed_by_cadre() -> None:
    documented_events(document(), registry)
    assert {cls.key_field for cls in registry.classes()} == {"cadre_id"}


def test_no_event_can_carry_coordinates() -> None:
    for cls in registry.classes():
        fields = str(cls.model_json_schema())
        assert "latitude" not in fields, cls.event_type
        assert "longitude" not in fields, cls.event_type


def test_committed_openapi_document_is_current() -> None:
    assert_committed(OPENAPI_PATH, render_openapi(create_app()))


def test_reads_are_about_one_cadre_never_a_ranking() -> None:
    """The law (2024, 2026) forbids ranking people by check-ins or time online: every read
    is one cadre's own file, except the county's leave requests (the approvers' queue, in
    the order of their first day), and no read lists cadres."""
    paths = create_app().openapi()["paths"]
    reads = [path for path, ops in paths.items() if "get" in ops]
    assert reads
    county_lists = [path for path in reads if not path.startswith("/cadres/{cadre_id}/")]
    assert county_lists == ["/counties/{county}/leave"], reads
    listed = paths["/counties/{county}/leave"]["get"]["responses"]["200"]["content"]
    item = listed["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert item == "Page_CountyLeaveView_"
