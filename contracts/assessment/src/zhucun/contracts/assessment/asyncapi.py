"""The AsyncAPI document of ``assessment.events.v1``, generated from the event classes.

``asyncapi.json`` beside this module is the document, committed and shipped with the
package; regenerate it with ``uv run zhucun contracts write`` after changing an event, and
bump ``CONTRACT_VERSION``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zhucun.contracts.assessment import CONTRACT_VERSION, TOPIC
from zhucun.contracts.assessment.events import registry
from zhucun.shared.asyncapi import asyncapi_document

#: The committed document.
DOCUMENT_PATH = Path(__file__).with_name("asyncapi.json")


def document() -> dict[str, Any]:
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
