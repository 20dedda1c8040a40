"""The committed AsyncAPI and OpenAPI documents are the ones the code generates, and every
field of the contract is bounded in them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from zhucun.assessment.app import OPENAPI_PATH, create_app
from zhucun.contracts.assessment.asyncapi import DOCUMENT_PATH, document
from zhucun.contracts.assessment.events import (
    AnnualRoundOpened,
    ListEntry,
    RedBlueListsPublished,
    VillagerEvaluationRecorded,
    registry,
)
from zhucun.shared.asyncapi import render
from zhucun.shared.http import render_openapi
from zhucun.shared.testing import assert_committed, documented_events

pytestmark = pytest.mark.unit


def test_committed_asyncapi_document_is_current() -> None:
    assert_committed(DOCUMENT_PATH, render(document()))


def test_every_event_type_is_in_the_document() -> None:
    documented_events(document(), registry)
    # Keyed as docs/adr/0006 says: the cadre, else the village, else (rounds, lists) the county.
    assert {cls.key_field for cls in registry.classes()} == {"cadre_id", "village_id", "county"}


def test_committed_openapi_document_is_current() -> None:
    assert_committed(OPENAPI_PATH, render_openapi(create_app()))


def test_every_field_of_every_event_is_bounded_in_the_document() -> None:
    # Every field bounded: tests/test_openapi_documents.py walks every contract; here, the
    # bounds this contract's own rules set.
    schemas = document()["components"]["schemas"]
    cadre = schemas["assessment.CadreInspected"]["properties"]
    assert cadre["findings"]["maxLength"] == 10_000
    assert cadre["cadre_id"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
    lists = schemas["assessment.RedBlueListsPublished"]["properties"]
    assert lists["red"]["maxItems"] == 10_000


def _lists(*cadres: str) -> dict[str, Any]:
    return {
        "list_id": "l1",
        "county": "530102",
        "quarter": "2025-Q2",
        "red": [ListEntry(rank=1, cadre_id=c, score=90.0) for c in cadres],
        "blue": [],
        "cadres_ranked": len(cadres),
        "published_on": date(2025, 7, 5),
        "policy_version": "reference-2021",
    }


@pytest.mark.parametrize(
    ("event", "data", "location"),
    [
        (AnnualRoundOpened, {"year": 2100}, ("year",)),
        (AnnualRoundOpened, {"year": "2025"}, ("year",)),
        (AnnualRoundOpened, {"county": "53010x"}, ("county",)),
        (AnnualRoundOpened, {"opened_on": date(9999, 12, 31)}, ("opened_on",)),
        (VillagerEvaluationRecorded, {"period": "0000"}, ("period",)),
        (VillagerEvaluationRecorded, {"satisfaction": 100.01}, ("satisfaction",)),
        (VillagerEvaluationRecorded, {"cadre_id": "-c1"}, ("cadre_id",)),
    ],
)
def test_an_event_out_of_its_bounds_does_not_decode(
    event: type[AnnualRoundOpened | VillagerEvaluationRecorded],
    data: dict[str, Any],
    location: tuple[str, ...],
) -> None:
    valid: dict[type[Any], dict[str, Any]] = {
        AnnualRoundOpened: {
            "round_id": "r",
            "county": "530102",
            "year": 2025,
            "opened_on": "2025-12-01",
        },
        VillagerEvaluationRecorded: {
            "evaluation_id": "e1",
            "cadre_id": "c1",
            "county": "530102",
            "period": "2025-Q2",
            "satisfaction": 95,
            "respondents": 40,
        },
    }
    event.model_validate(valid[event])
    with pytest.raises(ValidationError) as refused:
        event.model_validate(valid[event] | data)
    assert [error["loc"] for error in refused.value.errors()] == [location]


def test_a_list_holds_each_cadre_once() -> None:
    RedBlueListsPublished(**_lists("c1", "c2"))
    with pytest.raises(ValidationError, match="cadre 'c1' is on the list twice"):
        RedBlueListsPublished(**_lists("c1", "c1"))
