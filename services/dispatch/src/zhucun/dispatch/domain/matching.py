"""Matching cadres to a village (村"点菜"、县"配菜" done right): a ranked list with reasons.

The rule of thumb (Sichuan): 经济部门驻穷村、党群部门驻弱村、业务部门驻产业村 — economic
departments to poor villages, party/mass organisations to weak-branch villages, line
departments to industry villages; and skills should meet the needs the village declared.

The weights are a ranking heuristic for staff to read, not a rule that refuses anything, so
they live here rather than in a policy pack: a fitting unit kind counts more than any single
skill, and every point comes with the sentence that explains it.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from zhucun.contracts.dispatch.events import Expertise, UnitKind, VillageCategory
from zhucun.dispatch.domain.errors import UnknownRound, UnknownVillage
from zhucun.dispatch.domain.state import Cadre, CountyDispatch, Village

UNIT_KIND_FIT_POINTS = 3
NEED_MET_POINTS = 2

#: "穷村": villages whose problem is poverty or a weak economy.
POOR_VILLAGE_CATEGORIES = frozenset(
    {
        VillageCategory.LIFTED_OUT_OF_POVERTY,
        VillageCategory.KEY_ASSISTANCE,
        VillageCategory.RELOCATION_SETTLEMENT,
        VillageCategory.WEAK_COLLECTIVE_ECONOMY,
    }
)
#: "产业村": a demonstration village, or one that asked for industry or farming technique.
INDUSTRY_NEEDS = frozenset({Expertise.INDUSTRY, Expertise.FARMING_TECHNIQUE})


class CandidateScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    cadre_id: str
    score: int
    reasons: tuple[str, ...]


def is_poor_village(village: Village) -> bool:
    return bool(village.categories & POOR_VILLAGE_CATEGORIES)


def is_industry_village(village: Village) -> bool:
    return VillageCategory.DEMONSTRATION in village.categories or bool(
        village.needs & INDUSTRY_NEEDS
    )


def score_candidate(village: Village, cadre: Cadre) -> CandidateScore:
    score = 0
    reasons: list[str] = []
    if cadre.unit_kind is UnitKind.ECONOMIC_DEPARTMENT and is_poor_village(village):
        score += UNIT_KIND_FIT_POINTS
        reasons.append("经济部门驻穷村: economic department for a poor village")
    if cadre.unit_kind is UnitKind.PARTY_MASS_ORGANISATION and village.weak_party_branch:
        score += UNIT_KIND_FIT_POINTS
        reasons.append("党群部门驻弱村: party/mass organisation for a weak-branch village")
    if cadre.unit_kind is UnitKind.LINE_DEPARTMENT and is_industry_village(village):
        score += UNIT_KIND_FIT_POINTS
        reasons.append("业务部门驻产业村: line department for an industry village")
    for need in sorted(village.needs & cadre.skills):
        score += NEED_MET_POINTS
        reasons.append(f"skill {need.value} meets a declared need")
    return CandidateScore(cadre_id=cadre.cadre_id, score=score, reasons=tuple(reasons))


def rank_candidates(village: Village, cadres: Iterable[Cadre]) -> list[CandidateScore]:
    """Best fit first; equal scores in cadre id order, so the ranking is reproducible."""
    scores = [score_candidate(village, cadre) for cadre in cadres]
    return sorted(scores, key=lambda s: (-s.score, s.cadre_id))


def candidates_for(state: CountyDispatch, round_id: str, village_id: str) -> list[CandidateScore]:
    """Rank the county's cadres who are free: not assigned in this round, not on post."""
    if village_id not in state.villages:
        raise UnknownVillage(village_id)
    if round_id not in state.rounds:
        raise UnknownRound(round_id)
    taken = state.cadres_assigned_in_round(round_id) | set(state.active_by_cadre)
    free = (cadre for cadre in state.cadres.values() if cadre.cadre_id not in taken)
    return rank_candidates(state.villages[village_id], free)
