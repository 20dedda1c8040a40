"""Matching cadres to a village: ranking by the rule of thumb and declared needs, with reasons."""

from __future__ import annotations

from datetime import date

import pytest

from zhucun.contracts.dispatch.events import (
    AssignmentKind,
    CadreAssigned,
    Expertise,
    Geofence,
    RoundOpened,
    TeamFormed,
    UnitKind,
    UnitLevel,
    VillageCategory,
)
from zhucun.dispatch.domain import (
    CountyDispatch,
    UnknownVillage,
    candidates_for,
    fold,
    rank_candidates,
)
from zhucun.dispatch.domain.state import Cadre, Village

pytestmark = pytest.mark.unit

FENCE = Geofence(latitude=27.9, longitude=102.3, radius_m=1000)


def village(*categories: VillageCategory, needs: tuple[Expertise, ...] = ()) -> Village:
    return Village(
        village_id="v1",
        name="村",
        township="t1",
        categories=frozenset(categories),
        geofence=FENCE,
        households=200,
        monitored_population=20,
        needs=frozenset(needs),
    )


def cadre(cadre_id: str, kind: UnitKind, *skills: Expertise) -> Cadre:
    return Cadre(
        cadre_id=cadre_id,
        sending_unit="unit",
        unit_kind=kind,
        unit_level=UnitLevel.CITY,
        birth_year=1988,
        party_member_since=None,
        rural_experience_years=0,
        skills=frozenset(skills),
    )


ECONOMIC = cadre("econ", UnitKind.ECONOMIC_DEPARTMENT)
PARTY = cadre("party", UnitKind.PARTY_MASS_ORGANISATION)
LINE = cadre("line", UnitKind.LINE_DEPARTMENT)
ENTERPRISE = cadre("soe", UnitKind.STATE_ENTERPRISE, Expertise.ECOMMERCE, Expertise.FINANCE)
ALL = [ENTERPRISE, LINE, PARTY, ECONOMIC]


@pytest.mark.parametrize(
    ("target", "best", "reason"),
    [
        (village(VillageCategory.LIFTED_OUT_OF_POVERTY), "econ", "经济部门驻穷村"),
        (village(VillageCategory.WEAK_PARTY_BRANCH), "party", "党群部门驻弱村"),
        (village(VillageCategory.DEMONSTRATION), "line", "业务部门驻产业村"),
        (village(needs=(Expertise.INDUSTRY,)), "line", "业务部门驻产业村"),
    ],
)
def test_the_rule_of_thumb_puts_the_fitting_unit_kind_first(
    target: Village, best: str, reason: str
) -> None:
    ranking = rank_candidates(target, ALL)
    assert ranking[0].cadre_id == best
    assert ranking[0].score == 3
    assert any(reason in r for r in ranking[0].reasons)
    assert all(score.score == 0 and score.reasons == () for score in ranking[1:])


def test_skills_meeting_declared_needs_outrank_a_unit_kind_fit() -> None:
    target = village(
        VillageCategory.WEAK_COLLECTIVE_ECONOMY, needs=(Expertise.ECOMMERCE, Expertise.FINANCE)
    )
    ranking = rank_candidates(target, ALL)
    assert [(s.cadre_id, s.score) for s in ranking] == [
        ("soe", 4),
        ("econ", 3),
        ("line", 0),
        ("party", 0),
    ]
    assert ranking[0].reasons == (
        "skill ecommerce meets a declared need",
        "skill finance meets a declared need",
    )


def test_candidates_exclude_cadres_on_post_or_already_sent_in_the_round() -> None:
    from zhucun.contracts.dispatch.events import CadreRegistered, VillageRegistered

    def registered(c: Cadre) -> CadreRegistered:
        return CadreRegistered(
            cadre_id=c.cadre_id,
            county="530102",
            sending_unit=c.sending_unit,
            unit_kind=c.unit_kind,
            unit_level=c.unit_level,
            birth_year=c.birth_year,
            party_member_since=None,
            rural_experience_years=0,
            skills=tuple(c.skills),
        )

    state = fold(
        CountyDispatch(county="530102"),
        [
            VillageRegistered(
                village_id="v1",
                county="530102",
                name="村",
                township="t1",
                categories=(VillageCategory.LIFTED_OUT_OF_POVERTY,),
                geofence=FENCE,
                households=1,
                monitored_population=0,
            ),
            *(registered(c) for c in ALL),
            RoundOpened(round_id="r1", county="530102", name="r1", opened_on=date(2025, 3, 1)),
            TeamFormed(
                team_id="team1",
                round_id="r1",
                county="530102",
                village_id="v1",
                formed_on=date(2025, 3, 1),
            ),
            CadreAssigned(
                assignment_id="a1",
                cadre_id="econ",
                team_id="team1",
                round_id="r1",
                county="530102",
                village_id="v1",
                role="member",
                kind=AssignmentKind.INITIAL,
                term_start=date(2025, 4, 1),
                term_end=date(2027, 4, 1),
                policy_version="reference-2021",
            ),
        ],
    )
    assert [s.cadre_id for s in candidates_for(state, "r1", "v1")] == ["line", "party", "soe"]
    with pytest.raises(UnknownVillage):
        candidates_for(state, "r1", "v404")
