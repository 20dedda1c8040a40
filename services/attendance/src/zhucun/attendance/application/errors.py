"""Refusals of the attendance use cases, beside the decider's (``domain.errors``): what the
application finds before it can build a command, from the replica of dispatch and the
caller's token. A day no policy pack covers is the shared refusal
``zhucun.shared.policy.NoPolicyInForce``.

The replica's gaps (``NoActiveAssignment``, ``VillageNotReplicated``) are ``retryable``: from
the replica alone, a cadre dispatch never assigned looks like one whose assignment has not
reached it yet. Their messages name the cadre, the village and the day by id, never a
person's name; the service adds the rest (while the replica is behind its source the answer
is retryable, with ``Retry-After``; once it has caught up, a final 404).

They are ``AttendanceRuleViolation``s like the decider's, so the service answers them the
same way (problem type ``attendance/<code-with-dashes>``, the status of their kind) and a
county-wide close tells them apart by class, not by reading a problem document. A post
outside the caller's jurisdiction is the shared ``zhucun.shared.rules.OutsideJurisdiction``
(``Principal.ensure_covers``), answered alike by every service.
"""

from __future__ import annotations

from zhucun.attendance.domain.errors import AttendanceRuleViolation


class NoActiveAssignment(AttendanceRuleViolation):
    """The replica knows no post of the cadre covering the day. Dispatch may have assigned
    the cadre a moment ago (the replica lags behind it): retryable."""

    code = "no_active_assignment"
    kind = "retryable"

    def __init__(self, cadre_id: str, when: str) -> None:
        super().__init__(
            f"cadre {cadre_id!r} has no assignment covering {when} in this service's replica"
            " of dispatch"
        )
        self.cadre_id = cadre_id
        #: The day (``YYYY-MM-DD``), or the days (``any day of 2025-04``), asked about.
        self.when = when


class VillageNotReplicated(AttendanceRuleViolation):
    """The assignment is in the replica but its village is not yet (its event travels on
    another partition of dispatch's topic): retryable."""

    code = "village_not_replicated"
    kind = "retryable"

    def __init__(self, village_id: str, *, cadre_id: str, when: str) -> None:
        super().__init__(
            f"the village {village_id!r} of the assignment of cadre {cadre_id!r} covering"
            f" {when} is not in this service's replica of dispatch yet"
        )
        self.village_id = village_id
        self.cadre_id = cadre_id
        #: The day (``YYYY-MM-DD``), or the days (``any day of 2025-04``), asked about.
        self.when = when


class NotYourself(AttendanceRuleViolation):
    """A cadre acts for themselves only (their token's ``cadre`` claim)."""

    code = "not_yourself"
    kind = "forbidden"

    def __init__(self) -> None:
        super().__init__(
            "a cadre may record evidence, leave, diaries and visits only for themselves"
        )


__all__ = [
    "NoActiveAssignment",
    "NotYourself",
    "VillageNotReplicated",
]
