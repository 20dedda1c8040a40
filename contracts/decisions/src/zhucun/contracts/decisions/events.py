"""The published contract of the read side's decisions (topic ``decisions.events.v1``).

A recall decision (召回) lives in its own stream, ``recall-decision-{decision_id}``, in the
projections service's event store: recommended once by the ``decisions`` projection when a
rule of ``docs/decisions.md`` triggers, then executed (dispatch recalled the cadre citing it)
or dismissed (an org_admin reviewed it, with a reason). Key: the cadre id, so one cadre's
decisions reach a consumer in order. Downstream systems (a provincial dashboard, payroll)
subscribe here; change a field only by adding a schema version and an upcaster.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import Field

from zhucun.shared.events import DomainEvent, EventRegistry

registry = EventRegistry()


#: The six recall rules (用) of docs/domain.md#decisions-recall-rules, by number.
RULE_NAMES: dict[int, str] = {
    1: "attendance short of the required days in consecutive closed months",
    2: "more leave in a calendar year than the pack allows",
    3: "unexcused spot-check absences in a calendar year",
    4: "a recalling annual, term or quarterly grade",
    5: "a quarterly 一般 in consecutive quarters",
    6: "a disciplinary sanction",
}


def decision_stream(decision_id: str) -> str:
    return f"recall-decision-{decision_id}"


@registry.register
class RecallRecommended(DomainEvent):
    """A cadre became a recall candidate: ``rule`` triggered on ``evidence``, under the
    policy pack ``policy_version``. The decision id is derived from the cadre, the rule and
    ``key`` (the period or item that triggered it), so a rebuild recognises it."""

    event_type: ClassVar[str] = "decisions.RecallRecommended"
    key_field: ClassVar[str] = "cadre_id"
    decision_id: str
    cadre_id: str
    rule: int = Field(ge=1, le=6)
    rule_name: str
    #: What triggered it: a month (``2025-04``), a year (``2025``), ``annual:2025``,
    #: ``term:<assignment>``, ``quarter:2025-Q2``, a quarter, or a sanction id.
    key: str
    #: The business date of the trigger (the month's, quarter's or year's last day, a term's
    #: end, a sanction's date).
    triggered_on: date
    #: A sentence from structured fields only (no names): why.
    reason: str
    #: Ids of the events that triggered it (month closes, grades, a sanction).
    evidence: tuple[str, ...] = Field(min_length=1)
    policy_version: str


@registry.register
class RecallExecuted(DomainEvent):
    """Dispatch recalled the cadre citing the decision (``dispatch.CadreRecalled``)."""

    event_type: ClassVar[str] = "decisions.RecallExecuted"
    key_field: ClassVar[str] = "cadre_id"
    decision_id: str
    cadre_id: str
    assignment_id: str
    recalled_on: date
    #: The id of dispatch's ``CadreRecalled`` event.
    recall_event_id: str


@registry.register
class RecallDismissed(DomainEvent):
    """An org_admin of the cadre's county reviewed the decision and dismissed it."""

    event_type: ClassVar[str] = "decisions.RecallDismissed"
    key_field: ClassVar[str] = "cadre_id"
    decision_id: str
    cadre_id: str
    dismissed_on: date
    reason: str = Field(min_length=1, max_length=5_000)
