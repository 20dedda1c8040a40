"""The committed AsyncAPI (``decisions.events.v1``) and OpenAPI documents are the ones the
code generates, and every field of the decisions contract is bounded in them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from zhucun.contracts.decisions.asyncapi import DOCUMENT_PATH, document
from zhucun.contracts.decisions.events import RecallDismissed, RecallRecommended, registry
from zhucun.projections.app import OPENAPI_PATH, create_app
from zhucun.shared.asyncapi import render
from zhucun.shared.http import render_openapi
from zhucun.shared.testing import assert_committed, documented_events

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert_committed(DOCUMENT_PATH, render(document()))


def test_every_decision_event_is_in_the_document_and_keyed_by_cadre() -> None:
    messages = documented_events(document(), registry)
    assert set(messages) == {
        "decisions.RecallRecommended",
        "decisions.RecallExecuted",
        "decisions.RecallDismissed",
    }
    assert {cls.key_field for cls in registry.classes()} == {"cadre_id"}


def test_committed_openapi_document_is_current() -> None:
    assert_committed(OPENAPI_PATH, render_openapi(create_app()))


def test_every_field_of_every_decision_event_is_bounded_in_the_document() -> None:
    # Every field bounded: tests/test_openapi_documents.py walks every contract; here, the
    # bounds this contract's own rules set.
    schemas = document()["components"]["schemas"]
    evidence = schemas["decisions.RecallRecommended"]["properties"]["evidence"]
    assert (evidence["minItems"], evidence["maxItems"], evidence["uniqueItems"]) == (1, 1200, True)


RECOMMENDED: dict[str, Any] = {
    "decision_id": "0b6f6c1e-8a4e-5f2e-9a53-2f1c6c0c6d11",
    "cadre_id": "c1",
    "rule": 4,
    "rule_name": "a recalling annual, term or quarterly grade",
    "key": "term:" + "a" * 128,
    "triggered_on": "2026-02-28",
    "reason": "rule 4: the term's grade is 不称职",
    "evidence": ["e1", "e2"],
    "policy_version": "reference-2021",
}


@pytest.mark.parametrize(
    ("data", "location"),
    [
        ({"rule": 7}, ("rule",)),
        ({"rule": True}, ("rule",)),
        ({"evidence": []}, ("evidence",)),
        ({"evidence": ["e1", "e1"]}, ("evidence",)),
        ({"evidence": ["=e1"]}, ("evidence", 0)),
        ({"key": "term:" + "a" * 140}, ("key",)),
        ({"triggered_on": "9999-12-31"}, ("triggered_on",)),
        ({"reason": "a\x00b"}, ("reason",)),
    ],
)
def test_a_recommendation_out_of_its_bounds_does_not_decode(
    data: dict[str, Any], location: tuple[str | int, ...]
) -> None:
    RecallRecommended.model_validate(RECOMMENDED)
    with pytest.raises(ValidationError) as refused:
        RecallRecommended.model_validate(RECOMMENDED | data)
    # (A bad item also makes pydantic count the tuple short: the item is named first.)
    assert refused.value.errors()[0]["loc"] == location


def test_a_dismissal_needs_a_reason() -> None:
    dismissal = {"decision_id": "d1", "cadre_id": "c1", "dismissed_on": "2026-03-01"}
    assert RecallDismissed.model_validate(dismissal | {"reason": "hospitalised"})
    with pytest.raises(ValidationError):
        RecallDismissed.model_validate(dismissal | {"reason": ""})
