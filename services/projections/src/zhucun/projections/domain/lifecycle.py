"""A recall decision's lifecycle, as a decider: recommended -> executed or dismissed.

The ``decisions`` projection appends ``RecallRecommended`` and ``RecallExecuted`` itself
(they follow from facts); people only dismiss. :func:`decide_dismissal` is the one command:
an org_admin of the cadre's county reviews an open decision and dismisses it with a reason.
Pure: no I/O, no clock (the use case passes the day); refusals are the read side's
``RuleViolation`` subclasses (``zhucun.projections.domain.errors``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from zhucun.contracts.decisions.events import (
    RecallDismissed,
    RecallExecuted,
    RecallRecommended,
)
from zhucun.projections.domain.errors import AlreadyDismissed, AlreadyExecuted, UnknownDecision
from zhucun.shared.events import DomainEvent

Status = Literal["unknown", "recommended", "executed", "dismissed"]


@dataclass(frozen=True, slots=True)
class DecisionState:
    decision_id: str
    status: Status = "unknown"
    cadre_id: str | None = None
    dismissal_reason: str | None = None


def evolve(state: DecisionState, event: DomainEvent) -> DecisionState:
    match event:
        case RecallRecommended():
            return replace(state, status="recommended", cadre_id=event.cadre_id)
        case RecallExecuted():
            return replace(state, status="executed")
        case RecallDismissed():
            return replace(state, status="dismissed", dismissal_reason=event.reason)
    return state


@dataclass(frozen=True, slots=True)
class DismissRecall:
    decision_id: str
    reason: str
    day: date


def decide_dismissal(command: DismissRecall, state: DecisionState) -> list[DomainEvent]:
    """Dismiss an open decision. Dismissing it again with the same reason changes nothing
    (a retried request); with another reason it is refused, since the first review stands."""
    if state.status == "unknown" or state.cadre_id is None:
        raise UnknownDecision(command.decision_id)
    if state.status == "executed":
        raise AlreadyExecuted(command.decision_id)
    if state.status == "dismissed":
        if state.dismissal_reason == command.reason:
            return []
        raise AlreadyDismissed(command.decision_id)
    return [
        RecallDismissed(
            decision_id=command.decision_id,
            cadre_id=state.cadre_id,
            dismissed_on=command.day,
            reason=command.reason,
        )
    ]
