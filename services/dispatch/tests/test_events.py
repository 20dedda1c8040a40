"""The published contract: every dispatch event is documented, named and keyed as
docs/adr/0006 and 0014 say."""

from __future__ import annotations

from datetime import date

import pytest

from zhucun.contracts.dispatch.events import (
    AssignmentKind,
    CadreAssigned,
    Role,
    RuleWarning,
    registry,
)

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
