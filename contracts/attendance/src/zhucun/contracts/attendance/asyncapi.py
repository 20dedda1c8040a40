"""The AsyncAPI document of ``attendance.events.v1``, generated from the event classes.

``asyncapi.json`` beside this module is the document, committed and shipped with the
package; regenerate it with ``uv run zhucun contracts write`` after changing an event, and
bump ``CONTRACT_VERSION``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zhucun.contracts.attendance import CONTRACT_VERSION, TOPIC
from zhucun.contracts.attendance.events import registry
from zhucun.shared.asyncapi import asyncapi_document

#: The committed document.
DOCUMENT_PATH = Path(__file__).with_name("asyncapi.json")


def document() -> dict[str, Any]:
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
