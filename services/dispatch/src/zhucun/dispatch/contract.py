"""The dispatch service's published contract: the AsyncAPI document of ``dispatch.events.v1``.

``services/dispatch/asyncapi.json`` is this document, committed; regenerate it with
``uv run zhucun contracts write`` after changing an event, and bump ``CONTRACT_VERSION``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zhucun.dispatch.app import TOPIC
from zhucun.dispatch.events import registry
from zhucun.shared.asyncapi import asyncapi_document

CONTRACT_VERSION = "1.0.0"
#: Where the committed document lives (the service package's root folder).
DOCUMENT_PATH = Path(__file__).resolve().parents[3] / "asyncapi.json"


def document() -> dict[str, Any]:
    assert TOPIC is not None
    return asyncapi_document(
        registry,
        service="dispatch",
        topic=TOPIC,
        version=CONTRACT_VERSION,
        description=(
            "Dispatch (派) of village-resident cadres: villages and their needs, cadres, "
            "rounds, teams, assignments, township team leaders, handovers (五个一), recalls, "
            "replacements and reinforcements. Keyed by cadre id where an event concerns a "
            "cadre, else by village id (round events: by county)."
        ),
    )
