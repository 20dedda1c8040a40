"""Refusals of the attendance use cases, beside the decider's (``domain.errors``): what the
application finds before it can build a command, from the replica of dispatch and the
caller's token. A day no policy pack covers is the shared refusal
``zhucun.shared.policy.NoPolicyInForce``.

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
            " of dispatch; if the cadre was assigned just now, retry shortly"
        )
        self.cadre_id = cadre_id


class VillageNotReplicated(AttendanceRuleViolation):
    """The assignment is in the replica but its village is not yet (its event travels on
    another partition of dispatch's topic): retryable."""

    code = "village_not_replicated"
    kind = "retryable"

    def __init__(self, village_id: str) -> None:
        super().__init__(
            f"village {village_id!r} of the assignment is not in the replica yet; retry"
        )
        self.village_id = village_id


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
