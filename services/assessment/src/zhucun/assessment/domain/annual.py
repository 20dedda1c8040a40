"""Deciders of a county's annual round (年终算总账): open, propose a grade per cadre, finalise.

A round is opened from 1 December of its year on (年终考核 is prepared in the year's last
month), never for a year that has not reached it; its grades are proposed and finalised from
the year's last day (31 December) on, as a quarter is assessed from its last day: a grade of
a year not over would grade months not lived yet. Both refusals are ``YearNotOver``
(``year_not_over``), decided on the command's ``today`` (the application's clock, China's
calendar); a repeat of what is already recorded stays a no-op.

A proposal is capped by the cadre's unexcused spot-check absences of the year; a later
proposal for the same cadre replaces the earlier one until the round is final. Finalising is
refused while more cadres are 优秀 than floor(share x cadres assessed); a final round issues
one result per cadre.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from zhucun.assessment.domain.commands import (
    FinaliseAnnualRound,
    OpenAnnualRound,
    ProposeAnnualGrade,
)
from zhucun.assessment.domain.errors import (
    ExcellentShareExceeded,
    NothingToFinalise,
    RoundAlreadyFinalised,
    RoundAlreadyOpen,
    RoundNotOpen,
    WrongRound,
    YearNotOver,
)
from zhucun.assessment.domain.guards import require_facts_of, require_overlaps
from zhucun.assessment.domain.periods import round_opens_on, year_bounds
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.assessment.domain.rules import capped_grade, excellent_cap
from zhucun.assessment.domain.state import AnnualState
from zhucun.contracts.assessment.events import (
    AnnualGrade,
    AnnualGradeProposed,
    AnnualResultIssued,
    AnnualRoundFinalised,
    AnnualRoundOpened,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack


def _require_round(state: AnnualState, round_id: str | None, county: str, year: int) -> str:
    """The open round of the state, which the command names; its id."""
    if (state.county, state.year) != (county, year):
        raise WrongRound(round_id or "", county, year, None)
    if state.round_id is None:
        raise RoundNotOpen(county, year)
    if state.round_id != round_id:
        raise WrongRound(round_id or "", county, year, state.round_id)
    return state.round_id


def _require_year_over(year: int, action: Literal["propose", "finalise"], today: date) -> None:
    """Grades of ``year`` from its last day on (``action``: propose, finalise)."""
    last = year_bounds(year)[1]
    if today < last:
        raise YearNotOver(year, action, last, today)


def open_annual_round(command: OpenAnnualRound, state: AnnualState) -> list[DomainEvent]:
    """Open the county's round for the year (once: the same round id again is a no-op),
    from 1 December of the year on."""
    if (state.county, state.year) != (command.county, command.year):
        raise ValueError(
            f"the decision needs the round of county {command.county} for {command.year},"
            f" not of county {state.county} for {state.year}"
        )
    if state.round_id is not None:
        if state.round_id == command.round_id:
            return []
        raise RoundAlreadyOpen(state.county, state.year, state.round_id)
    opens = round_opens_on(command.year)
    if command.today < opens:
        raise YearNotOver(command.year, "open", opens, command.today)
    return [
        AnnualRoundOpened(
            round_id=command.round_id,
            county=command.county,
            year=command.year,
            opened_on=command.today,
        )
    ]


def propose_annual_grade(
    command: ProposeAnnualGrade, state: AnnualState, pack: PolicyPack
) -> list[DomainEvent]:
    """A grade for a cadre on post in the county during the year, from the year's last day
    on, capped by the year's absences (the cap is recorded when it lowered the grade)."""
    rules = pack.rules(AssessmentPolicy)
    round_id = _require_round(state, command.round_id, command.county, command.year)
    post = command.post
    require_facts_of(command.attendance, post, state.year)
    grade, cap = capped_grade(command.grade, command.attendance.unexcused_absences, rules)
    known = state.proposals.get(post.cadre_id)
    if known is not None and (known.proposed_grade, known.grade, known.cap) == (
        command.grade,
        grade,
        cap,
    ):
        return []
    if state.finalised:
        raise RoundAlreadyFinalised(round_id)
    _require_year_over(state.year, "propose", command.today)
    first, last = year_bounds(state.year)
    require_overlaps(post, first, last, str(state.year), state.county)
    return [
        AnnualGradeProposed(
            round_id=round_id,
            county=state.county,
            year=state.year,
            cadre_id=post.cadre_id,
            proposed_grade=command.grade,
            grade=grade,
            cap=cap,
            policy_version=pack.version,
        )
    ]


def finalise_annual_round(
    command: FinaliseAnnualRound, state: AnnualState, pack: PolicyPack
) -> list[DomainEvent]:
    """The final round and one result per cadre (by cadre id), from the year's last day on;
    refused over the 优秀 cap. Finalising a final round again is a no-op."""
    rules = pack.rules(AssessmentPolicy)
    round_id = _require_round(state, command.round_id, command.county, command.year)
    if state.finalised:
        return []
    _require_year_over(state.year, "finalise", command.today)
    if not state.proposals:
        raise NothingToFinalise(round_id)
    assessed = len(state.proposals)
    excellent = sum(1 for p in state.proposals.values() if p.grade is AnnualGrade.EXCELLENT)
    cap = excellent_cap(assessed, rules)
    if excellent > cap:
        raise ExcellentShareExceeded(excellent, assessed, cap, rules.excellent_share_cap)
    events: list[DomainEvent] = [
        AnnualRoundFinalised(
            round_id=round_id,
            county=state.county,
            year=state.year,
            finalised_on=command.today,
            cadres_assessed=assessed,
            excellent=excellent,
            excellent_cap=cap,
            policy_version=pack.version,
        )
    ]
    events.extend(
        AnnualResultIssued(
            round_id=round_id,
            county=state.county,
            year=state.year,
            cadre_id=cadre_id,
            grade=proposal.grade,
            cap=proposal.cap,
        )
        for cadre_id, proposal in sorted(state.proposals.items())
    )
    return events
