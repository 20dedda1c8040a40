"""Deciders of a county's quarter: the quarterly assessment (一季一考核), the 双约谈 that a
一般 requires, and the red and blue lists (红蓝榜).

A quarter is assessed from its last day on. Each cadre is assessed once a quarter: the same
assessment again is a no-op, another one is ``AlreadyAssessed``. Once the lists are
published the quarter takes no new assessment (the lists would no longer be its ranking).
"""

from __future__ import annotations

from datetime import date, timedelta

from zhucun.assessment.domain.commands import AssessQuarter, PublishLists, RecordAdmonitionTalk
from zhucun.assessment.domain.errors import (
    AlreadyAssessed,
    DuplicateId,
    DuplicateTalk,
    ListsAlreadyPublished,
    NothingToRank,
    QuarterNotOver,
    UnknownObligation,
)
from zhucun.assessment.domain.guards import require_not_after, require_overlaps
from zhucun.assessment.domain.periods import quarter_bounds
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.assessment.domain.rules import quarterly_grade, quarterly_score, rank_lists
from zhucun.assessment.domain.state import Obligation, QuarterState
from zhucun.contracts.assessment.events import (
    AdmonitionTalkHeld,
    AdmonitionTalksCompleted,
    AdmonitionTalksRequired,
    QuarterlyAssessed,
    QuarterlyGrade,
    RedBlueListsPublished,
    TalkBy,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack


def _require_quarter_stream(state: QuarterState, county: str, quarter: str) -> None:
    if (state.county, state.quarter) != (county, quarter):
        raise ValueError(
            f"the decision needs the quarter {quarter} of county {county}, not the quarter"
            f" {state.quarter} of county {state.county}"
        )


def _same_assessment(known: QuarterlyAssessed, command: AssessQuarter, state: QuarterState) -> bool:
    if (
        known.township,
        known.township_score,
        known.villager_score,
        known.county_panel_score,
    ) != (
        command.post.township,
        command.township_score,
        command.villager_score,
        command.county_panel_score,
    ):
        return False
    opened = state.obligations_of(known.cadre_id)
    return not opened or any(o.obligation_id == command.obligation_id for o in opened)


def assess_quarter(
    command: AssessQuarter, state: QuarterState, pack: PolicyPack
) -> list[DomainEvent]:
    """The cadre's quarterly score and grade; a 一般 also opens the 双约谈 obligation, due
    ``admonition_talk_days`` after today."""
    rules = pack.rules(AssessmentPolicy)
    post = command.post
    if command.quarter != state.quarter:
        raise ValueError(f"the decision needs the quarter {command.quarter}, not {state.quarter}")
    known = state.assessments.get(post.cadre_id)
    if known is not None:
        if _same_assessment(known, command, state):
            return []
        raise AlreadyAssessed(post.cadre_id, command.quarter)
    published = state.published
    if published is not None:
        raise ListsAlreadyPublished(command.quarter, published.list_id, "no new assessment")
    first, last = quarter_bounds(command.quarter)
    if command.today < last:
        raise QuarterNotOver(command.quarter, last)
    require_overlaps(post, first, last, command.quarter, state.county)
    score = quarterly_score(
        command.township_score, command.villager_score, command.county_panel_score, rules
    )
    grade = quarterly_grade(score, rules)
    events: list[DomainEvent] = [
        QuarterlyAssessed(
            cadre_id=post.cadre_id,
            county=state.county,
            township=post.township,
            quarter=command.quarter,
            township_score=command.township_score,
            villager_score=command.villager_score,
            county_panel_score=command.county_panel_score,
            score=score,
            grade=grade,
            policy_version=pack.version,
        )
    ]
    if grade is QuarterlyGrade.AVERAGE:
        if command.obligation_id in state.obligations:
            raise DuplicateId("admonition-talk obligation", command.obligation_id)
        events.append(
            AdmonitionTalksRequired(
                obligation_id=command.obligation_id,
                cadre_id=post.cadre_id,
                quarter=command.quarter,
                due_on=command.today + timedelta(days=rules.admonition_talk_days),
            )
        )
    return events


def record_admonition_talk(command: RecordAdmonitionTalk, state: QuarterState) -> list[DomainEvent]:
    """One party's talk; the second party's also completes the obligation (``overdue`` when
    the later talk was after the due date). The same party again on the same day is a no-op,
    on another day a ``DuplicateTalk``."""
    obligation = state.obligations.get(command.obligation_id)
    if obligation is None or obligation.cadre_id != command.cadre_id:
        raise UnknownObligation(command.obligation_id, command.cadre_id)
    held_on = obligation.talks.get(command.by)
    if held_on is not None:
        if held_on == command.held_on:
            return []
        raise DuplicateTalk(command.obligation_id, command.by, held_on)
    require_not_after(command.held_on, command.today, "an admonition talk")
    events: list[DomainEvent] = [
        AdmonitionTalkHeld(
            obligation_id=obligation.obligation_id,
            cadre_id=obligation.cadre_id,
            by=command.by,
            held_on=command.held_on,
            note=command.note,
        )
    ]
    talks = {**obligation.talks, command.by: command.held_on}
    if all(by in talks for by in TalkBy):
        completed_on = max(talks.values())
        events.append(
            AdmonitionTalksCompleted(
                obligation_id=obligation.obligation_id,
                cadre_id=obligation.cadre_id,
                completed_on=completed_on,
                overdue=completed_on > obligation.due_on,
            )
        )
    return events


def open_obligations(state: QuarterState) -> list[Obligation]:
    """Obligations not completed yet, by due date then id."""
    return sorted(
        (o for o in state.obligations.values() if not o.completed),
        key=lambda o: (o.due_on, o.obligation_id),
    )


def overdue_obligations(state: QuarterState, today: date) -> list[Obligation]:
    """Open obligations whose due date is before ``today``, by due date then id."""
    return [o for o in open_obligations(state) if o.due_on < today]


def publish_lists(
    command: PublishLists, state: QuarterState, pack: PolicyPack
) -> list[DomainEvent]:
    """The quarter's red and blue lists from the quarterly scores, once a quarter (the same
    ``list_id`` again is a no-op)."""
    rules = pack.rules(AssessmentPolicy)
    _require_quarter_stream(state, command.county, command.quarter)
    if command.list_id in state.lists:
        return []
    published = state.published
    if published is not None:
        raise ListsAlreadyPublished(command.quarter, published.list_id)
    if not state.assessments:
        raise NothingToRank(command.county, command.quarter)
    red, blue = rank_lists(state.scores(), rules)
    return [
        RedBlueListsPublished(
            list_id=command.list_id,
            county=command.county,
            quarter=command.quarter,
            red=red,
            blue=blue,
            cadres_ranked=len(state.assessments),
            published_on=command.today,
            policy_version=pack.version,
        )
    ]
