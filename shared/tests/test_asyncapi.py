"""The AsyncAPI document generated from an event registry."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from zhucun.shared.asyncapi import asyncapi_document, render
from zhucun.shared.events import DomainEvent, EventRegistry

pytestmark = pytest.mark.unit

registry = EventRegistry()


@registry.register
class CadreRecalled(DomainEvent):
    """A cadre was recalled from their village.

    Ends the assignment and opens a replacement obligation.
    """

    event_type: ClassVar[str] = "test.CadreRecalled"
    schema_version: ClassVar[int] = 2
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    reason: str


@registry.register
class TeamFormed(DomainEvent):
    """A work team was opened for a village."""

    event_type: ClassVar[str] = "test.TeamFormed"
    key_field: ClassVar[str] = "village_id"
    village_id: str
    size_bounds: tuple[int, int]


def test_document_lists_the_topic_every_event_and_the_headers() -> None:
    doc = asyncapi_document(
        registry, service="dispatch", topic="dispatch.events.v1", version="1.2.0", description="d"
    )
    assert doc["asyncapi"] == "3.0.0"
    channel = doc["channels"]["dispatch_events_v1"]
    assert channel["address"] == "dispatch.events.v1"
    assert set(channel["messages"]) == {"test.CadreRecalled", "test.TeamFormed"}
    recalled = doc["components"]["messages"]["test.CadreRecalled"]
    assert recalled["summary"] == "A cadre was recalled from their village."
    assert recalled["x-schema-version"] == 2
    assert recalled["bindings"]["kafka"]["key"]["description"] == "the event's cadre_id"
    payload = doc["components"]["schemas"]["test.CadreRecalled"]
    assert set(payload["required"]) == {"cadre_id", "reason"}
    headers = doc["components"]["schemas"]["CloudEventHeaders"]
    assert "ce_id" in headers["required"]
    assert "ce_actor" not in headers["required"]
    operation = doc["operations"]["publish_dispatch_events_v1"]
    assert operation["action"] == "send"
    assert len(operation["messages"]) == 2


def test_rendering_is_stable() -> None:
    doc = asyncapi_document(
        registry, service="dispatch", topic="dispatch.events.v1", version="1", description="d"
    )
    text = render(doc)
    assert text == render(json.loads(text))
    assert text.endswith("\n")
