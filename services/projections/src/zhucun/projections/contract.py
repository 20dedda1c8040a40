"""The read side's published contracts: the AsyncAPI document of ``decisions.events.v1``
(recall decisions) and the OpenAPI document of the projections service's HTTP API.

``services/projections/asyncapi.json`` and ``openapi.json`` are these documents, committed;
regenerate them with ``uv run zhucun contracts write`` after changing an event or a route,
and bump ``CONTRACT_VERSION`` when an event changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zhucun.projections.decisions.events import TOPIC, registry
from zhucun.shared.asyncapi import asyncapi_document

CONTRACT_VERSION = "1.0.0"
#: Where the committed documents live (the service package's root folder).
DOCUMENT_PATH = Path(__file__).resolve().parents[3] / "asyncapi.json"
OPENAPI_PATH = DOCUMENT_PATH.with_name("openapi.json")


def document() -> dict[str, Any]:
    return asyncapi_document(
        registry,
        service="projections",
        topic=TOPIC,
        version=CONTRACT_VERSION,
        description=(
            "Recall decisions (召回) derived by the read side from the dispatch, attendance "
            "and assessment topics under the rules of docs/decisions.md: recommended (with "
            "the rule, the evidence event ids and the policy pack version), then executed "
            "(dispatch recalled the cadre citing the decision) or dismissed (an org_admin "
            "reviewed it, with a reason). One stream per decision; keyed by cadre id."
        ),
    )


def openapi_document() -> dict[str, Any]:
    """The HTTP API's OpenAPI document, generated from the app (nothing connects)."""
    from zhucun.projections.app import create_app

    return create_app().openapi()


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
