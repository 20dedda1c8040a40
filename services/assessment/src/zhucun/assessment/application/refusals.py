"""Refusals of the use cases (not of the decider): what the replicas do not know yet (a day
no policy pack covers is the shared ``zhucun.shared.policy.NoPolicyInForce``). Answered by
the service's problem handler like any ``RuleViolation``; the retryable ones with
``Retry-After``, since a replica catching up with its source may make the same command
succeed."""

from __future__ import annotations

from zhucun.assessment.domain.errors import AssessmentRuleViolation


class NoAssignment(AssessmentRuleViolation):
    """The replica of dispatch knows no assignment of the cadre where the command needs one
    (``when``: "at all", "between ... and ...", "called ...")."""

    code = "no_assignment"
    kind = "retryable"

    def __init__(self, cadre_id: str, when: str) -> None:
        super().__init__(
            f"cadre {cadre_id!r} has no assignment {when} in this service's replica of dispatch;"
            " if the cadre was assigned just now, retry shortly"
        )
        self.cadre_id = cadre_id


class UnknownTeam(AssessmentRuleViolation):
    """The replica of dispatch knows no assignment to the work team yet."""

    code = "unknown_team"
    kind = "retryable"

    def __init__(self, team_id: str) -> None:
        super().__init__(
            f"team {team_id!r} has no assignment in the replica of dispatch; retry shortly"
        )
        self.team_id = team_id


class VillageNotReplicated(AssessmentRuleViolation):
    """The assignment is known but its village's own event (its township) is not yet: it
    travels on another partition."""

    code = "village_not_replicated"
    kind = "retryable"

    def __init__(self, village_id: str) -> None:
        super().__init__(f"village {village_id!r} is not in the replica of dispatch yet; retry")
        self.village_id = village_id


__all__ = ["NoAssignment", "UnknownTeam", "VillageNotReplicated"]
