"""The published contract of the read side's decisions (topic ``decisions.events.v1``).

A recall decision (召回) lives in its own stream, ``recall-decision-{decision_id}``, in the
projections service's event store: recommended once by the ``decisions`` projection when a
rule of ``docs/decisions.md`` triggers, then executed (dispatch recalled the cadre citing it)
or dismissed (an org_admin reviewed it, with a reason). Key: the cadre id, so one cadre's
decisions reach a consumer in order. Downstream systems (a provincial dashboard, payroll)
subscribe here; change a field only by adding a schema version and an upcaster.

Every field is bounded with the types of ``zhucun.shared.bounds`` (ids, texts, dates of the
window), so the AsyncAPI document shows each bound. The bounds were tightened without a
schema version bump, Zhucun not being in production yet: what the read side decided before
decodes as before when its values lie within them.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Final

from pydantic import AfterValidator, Field, Strict, StringConstraints

from zhucun.shared.bounds import ID_MAX_LENGTH, BusinessDate, Id, Name, Note
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


#: A rule's number.
RuleNumber = Annotated[int, Strict(), Field(ge=min(RULE_NAMES), le=max(RULE_NAMES))]
#: The longest prefix a trigger's key puts before an id (``quarter:``, ``term:``...).
KEY_PREFIX_MAX_LENGTH: Final = 16
#: What triggered a decision: an id's characters, optionally after a short prefix
#: (``term:<assignment id>``), so at most an id and its prefix long.
DecisionKey = Annotated[
    str,
    StringConstraints(
        pattern=rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{ID_MAX_LENGTH + KEY_PREFIX_MAX_LENGTH - 1}}}$",
        max_length=ID_MAX_LENGTH + KEY_PREFIX_MAX_LENGTH,
    ),
]
#: The most facts one decision cites: a run of consecutive months is the longest evidence,
#: and the window (2000 to 2099) has 1,200 months.
EVIDENCE_MAX: Final = 1_200


def _distinct(ids: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(ids)) != len(ids):
        raise ValueError("lists an event twice")
    return ids


#: Ids of the events behind a decision: at least one, each once.
Evidence = Annotated[
    tuple[Id, ...],
    Field(min_length=1, max_length=EVIDENCE_MAX, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_distinct),
]
#: A dismissal's reason: a note, not empty.
Reason = Annotated[Note, Field(min_length=1)]


@registry.register
class RecallRecommended(DomainEvent):
    """A cadre became a recall candidate: ``rule`` triggered on ``evidence``, under the
    policy pack ``policy_version``. The decision id is derived from the cadre, the rule and
    ``key`` (the period or item that triggered it), so a rebuild recognises it."""

    event_type: ClassVar[str] = "decisions.RecallRecommended"
    key_field: ClassVar[str] = "cadre_id"
    decision_id: Id
    cadre_id: Id
    rule: RuleNumber
    rule_name: Name
    #: What triggered it: a month (``2025-04``), a year (``2025``), ``annual:2025``,
    #: ``term:<assignment>``, ``quarter:2025-Q2``, a quarter, or a sanction id.
    key: DecisionKey
    #: The business date of the trigger (the month's, quarter's or year's last day, a term's
    #: end, a sanction's date).
    triggered_on: BusinessDate
    #: A sentence from structured fields only (no names): why.
    reason: Note
    #: Ids of the events that triggered it (month closes, grades, a sanction).
    evidence: Evidence
    #: The version of the policy pack the rule applied, as its file gives it.
    policy_version: Name


@registry.register
class RecallExecuted(DomainEvent):
    """Dispatch recalled the cadre citing the decision (``dispatch.CadreRecalled``)."""

    event_type: ClassVar[str] = "decisions.RecallExecuted"
    key_field: ClassVar[str] = "cadre_id"
    decision_id: Id
    cadre_id: Id
    assignment_id: Id
    recalled_on: BusinessDate
    #: The id of dispatch's ``CadreRecalled`` event.
    recall_event_id: Id


@registry.register
class RecallDismissed(DomainEvent):
    """An org_admin of the cadre's county reviewed the decision and dismissed it."""

    event_type: ClassVar[str] = "decisions.RecallDismissed"
    key_field: ClassVar[str] = "cadre_id"
    decision_id: Id
    cadre_id: Id
    dismissed_on: BusinessDate
    reason: Reason
