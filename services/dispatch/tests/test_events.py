"""The published contract: every dispatch event is documented, named and keyed as
docs/adr/0006 and 0014 say."""

from __future__ import annotations

from datetime import date

import pytest

from zhucun.contracts.dispatch.events import (
    AssignmentKind,
    CadreAssigned,
    Role,
    RoundClosed,
    RoundOpened,
    RuleWarning,
    VillageRegistered,
    registry,
)
from zhucun.shared.bounds import ID_PATTERN
from zhucun.shared.events import EventContractError

pytestmark = pytest.mark.unit


def test_every_event_is_documented_named_and_keyed() -> None:
    classes = registry.classes()
    assert len(classes) == 17
    for cls in classes:
        assert cls.event_type == f"dispatch.{cls.__name__}"
        assert cls.__doc__ is not None, cls.__name__
        assert len(cls.__doc__.strip()) > 20, cls.__name__
        assert cls.key_field in {"cadre_id", "village_id", "county"}
        if "cadre_id" in cls.model_fields:
            assert cls.key_field == "cadre_id", cls.__name__


def test_assignment_round_trips_through_the_registry_with_its_warnings() -> None:
    event = CadreAssigned(
        assignment_id="a1",
        cadre_id="c1",
        team_id="t1",
        round_id="r1",
        county="530102",
        village_id="v1",
        role=Role.FIRST_SECRETARY,
        kind=AssignmentKind.INITIAL,
        term_start=date(2025, 4, 1),
        term_end=date(2027, 4, 1),
        warnings=(RuleWarning(code="no_age_mix", message="一老一新"),),
        policy_version="reference-2021",
    )
    data = event.to_data()
    assert data["warnings"] == [{"code": "no_age_mix", "message": "一老一新"}]
    assert data["role"] == "first_secretary"
    assert registry.decode("dispatch.CadreAssigned", 1, data) == event


def test_a_round_closed_of_contract_1_0_0_decodes_without_warnings() -> None:
    report: dict[str, object] = {
        "round_id": "r1",
        "previous_round_id": None,
        "teams": 0,
        "levels": [],
    }
    old = {"round_id": "r1", "county": "530102", "closed_on": "2025-04-30", "report": report,
           "policy_version": "reference-2021"}  # fmt: skip
    event = registry.decode("dispatch.RoundClosed", 1, old)
    assert isinstance(event, RoundClosed)
    assert event.warnings == ()


def test_the_bounds_are_in_the_event_schemas() -> None:
    village = VillageRegistered.model_json_schema()
    properties = village["properties"]
    assert properties["name"]["maxLength"] == 200
    assert properties["village_id"]["pattern"] == ID_PATTERN
    assert properties["county"]["pattern"] == r"^\d{2}(\d{2}){0,2}$"
    assert (properties["households"]["minimum"], properties["households"]["maximum"]) == (
        0,
        10_000_000,
    )
    assert (properties["categories"]["maxItems"], properties["categories"]["uniqueItems"]) == (
        7,
        True,
    )
    fence = village["$defs"]["Geofence"]["properties"]
    assert (fence["radius_m"]["minimum"], fence["radius_m"]["maximum"]) == (1, 50_000)
    assert fence["latitude"]["maximum"] == 90
    opened = {"round_id": "r1", "county": "530102", "name": "2025", "opened_on": "2099-12-31"}
    assert isinstance(registry.decode("dispatch.RoundOpened", 1, opened), RoundOpened)
    with pytest.raises(EventContractError):
        registry.decode("dispatch.RoundOpened", 1, {**opened, "opened_on": "2100-01-01"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("households", 10**30),
        ("households", True),
        ("name", "x" * 201),
        ("village_id", '=HYPERLINK("x")'),
        ("county", "c1"),
        ("categories", ("border", "border")),
    ],
)
def test_an_event_out_of_bounds_does_not_decode(field: str, value: object) -> None:
    data = {"village_id": "v1", "county": "530102", "name": "村", "township": "t1",
            "categories": [], "geofence": {"latitude": 25.0, "longitude": 102.0, "radius_m": 1},
            "households": 1, "monitored_population": 0}  # fmt: skip
    assert registry.decode("dispatch.VillageRegistered", 1, data).kafka_key() == "v1"
    with pytest.raises(EventContractError):
        registry.decode("dispatch.VillageRegistered", 1, {**data, field: value})
