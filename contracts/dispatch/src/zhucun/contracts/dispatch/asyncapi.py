"""The AsyncAPI document of ``dispatch.events.v1``, generated from the event classes.

``asyncapi.json`` beside this module is the document, committed and shipped with the
package; regenerate it with ``uv run zhucun contracts write`` after changing an event, and
bump ``CONTRACT_VERSION``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zhucun.contracts.dispatch import CONTRACT_VERSION, TOPIC
from zhucun.contracts.dispatch.events import registry
from zhucun.shared.asyncapi import asyncapi_document

#: The committed document.
DOCUMENT_PATH = Path(__file__).with_name("asyncapi.json")


def document() -> dict[str, Any]:
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
