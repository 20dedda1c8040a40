"""The attendance service's published contracts: the AsyncAPI document of
``attendance.events.v1`` and the OpenAPI document of its HTTP API.

``services/attendance/asyncapi.json`` and ``openapi.json`` are these documents, committed;
regenerate them with ``uv run zhucun contracts write`` after changing an event or a route,
and bump ``CONTRACT_VERSION`` when an event changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zhucun.attendance.app import TOPIC
from zhucun.attendance.events import registry
from zhucun.shared.asyncapi import asyncapi_document

CONTRACT_VERSION = "1.0.0"
#: Where the committed documents live (the service package's root folder).
DOCUMENT_PATH = Path(__file__).resolve().parents[3] / "asyncapi.json"
OPENAPI_PATH = DOCUMENT_PATH.with_name("openapi.json")


def document() -> dict[str, Any]:
    assert TOPIC is not None
    return asyncapi_document(
        registry,
        service="attendance",
        topic=TOPIC,
        version=CONTRACT_VERSION,
        description=(
            "Attendance (管) of village-resident cadres: check-ins (location kept only as "
            "inside/outside the geofence and a distance rounded to 10 m), township "
            "confirmations of presence, leave, spot checks (四不两直), work diaries, household "
            "visits and month closes. Days are calendar days in Asia/Shanghai. Every event is "
            "keyed by cadre id."
        ),
    )


def openapi_document() -> dict[str, Any]:
    """The HTTP API's OpenAPI document, generated from the app (nothing connects)."""
    from zhucun.attendance.app import create_app

    return create_app().openapi()


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
