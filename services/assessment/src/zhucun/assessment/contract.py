"""The assessment service's published contracts: the AsyncAPI document of
``assessment.events.v1`` and the OpenAPI document of its HTTP API.

``services/assessment/asyncapi.json`` and ``openapi.json`` are these documents, committed;
regenerate them with ``uv run zhucun contracts write`` after changing an event or a route,
and bump ``CONTRACT_VERSION`` when an event changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zhucun.assessment.app import TOPIC
from zhucun.assessment.events import registry
from zhucun.shared.asyncapi import asyncapi_document

CONTRACT_VERSION = "1.0.0"
#: Where the committed documents live (the service package's root folder).
DOCUMENT_PATH = Path(__file__).resolve().parents[3] / "asyncapi.json"
OPENAPI_PATH = DOCUMENT_PATH.with_name("openapi.json")


def document() -> dict[str, Any]:
    assert TOPIC is not None
    return asyncapi_document(
        registry,
        service="assessment",
        topic=TOPIC,
        version=CONTRACT_VERSION,
        description=(
            "Assessment (考) of village-resident cadres: weekly inspections and monthly "
            "reviews, villager evaluations, quarterly assessments (好/较好/一般/差) with the "
            "双约谈 they require, red and blue lists, annual rounds (优秀/称职/基本称职/不称职, "
            "capped by unexcused spot-check absences, at most a share of 优秀), term-end "
            "assessments and sanctions. Keyed by cadre id; team inspections by village id; "
            "round and list events by county."
        ),
    )


def openapi_document() -> dict[str, Any]:
    """The HTTP API's OpenAPI document, generated from the app (nothing connects)."""
    from zhucun.assessment.app import create_app

    return create_app().openapi()


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
