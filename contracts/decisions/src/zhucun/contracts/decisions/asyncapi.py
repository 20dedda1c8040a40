"""The AsyncAPI document of ``decisions.events.v1``, generated from the event classes.

``asyncapi.json`` beside this module is the document, committed and shipped with the
package; regenerate it with ``uv run zhucun contracts write`` after changing an event, and
bump ``CONTRACT_VERSION``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zhucun.contracts.decisions import CONTRACT_VERSION, TOPIC
from zhucun.contracts.decisions.events import registry
from zhucun.shared.asyncapi import asyncapi_document

#: The committed document.
DOCUMENT_PATH = Path(__file__).with_name("asyncapi.json")


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
