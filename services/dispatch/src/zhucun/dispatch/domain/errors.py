"""Typed refusals of the dispatch decider and of the reads of its state.

Each error has a stable ``code`` slug (the HTTP edge turns it into the problem ``type``
``dispatch/<code>``), a ``kind`` that sets the status (an unknown id is ``not_found``, 404;
dates out of order are ``invalid``, 422; any other broken rule is a ``conflict``, 409) and a
message for people. Soft rules never raise: they become warnings in the events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from zhucun.shared import rules
from zhucun.shared.rules import RuleKind, RuleViolation


class DispatchRuleViolation(RuleViolation):
    """A command breaks a dispatch rule; nothing was decided (a ``conflict`` unless the
    refusal says otherwise)."""


class _Unknown(DispatchRuleViolation):
    kind: ClassVar[RuleKind] = "not_found"
    what: ClassVar[str]

    def __init__(self, identifier: str) -> None:
        super().__init__(f"unknown {self.what} {identifier!r}")
        self.identifier = identifier


class UnknownVillage(_Unknown):
    code = "unknown_village"
    what = "village"


class UnknownCadre(_Unknown):
    code = "unknown_cadre"
    what = "cadre"


class UnknownRound(_Unknown):
    code = "unknown_round"
    what = "round"


class UnknownTeam(_Unknown):
    code = "unknown_team"
    what = "team"


class UnknownAssignment(_Unknown):
    code = "unknown_assignment"
    what = "assignment"


class UnknownHandover(_Unknown):
    code = "unknown_handover"
    what = "handover"


class UnknownObligation(_Unknown):
    code = "unknown_obligation"
    what = "replacement obligation"


class DuplicateId(rules.DuplicateId, DispatchRuleViolation):
    """A new thing's id is taken (dispatch refuses a repeated registration too)."""


class WrongCounty(DispatchRuleViolation):
    """The command names another county than the stream it was sent to."""

    code = "wrong_county"


class RoundAlreadyOpen(DispatchRuleViolation):
    code = "round_already_open"


class RoundAlreadyClosed(DispatchRuleViolation):
    code = "round_closed"


class VillageAlreadyHasTeam(DispatchRuleViolation):
    code = "village_already_has_team"


class CadreAlreadyAssigned(DispatchRuleViolation):
    code = "cadre_already_assigned"


class TeamAlreadyHasFirstSecretary(DispatchRuleViolation):
    code = "team_already_has_first_secretary"


class FirstSecretaryNotEligible(DispatchRuleViolation):
    code = "first_secretary_not_eligible"


class TeamSizeOutOfBounds(DispatchRuleViolation):
    code = "team_size_out_of_bounds"


class WeakBranchVillageNeedsFirstSecretary(DispatchRuleViolation):
    code = "weak_branch_village_needs_first_secretary"

    def __init__(self, village_ids: Iterable[str]) -> None:
        self.village_ids = tuple(sorted(village_ids))
        super().__init__(
            "weak-party-branch villages without a first secretary: " + ", ".join(self.village_ids)
        )


class TeamNotRunning(DispatchRuleViolation):
    """Reinforcement is for a team at work: one with at least one active member."""

    code = "team_not_running"


class TownshipTooSmallForLeader(DispatchRuleViolation):
    code = "township_too_small_for_leader"


class TownshipAlreadyHasLeader(DispatchRuleViolation):
    code = "township_already_has_leader"


class CadreNotInTownship(DispatchRuleViolation):
    code = "cadre_not_in_township"


class AssignmentNotActive(DispatchRuleViolation):
    code = "assignment_not_active"


class TermNotOver(DispatchRuleViolation):
    code = "term_not_over"


class DatesOutOfOrder(rules.DatesOutOfOrder, DispatchRuleViolation):
    """A term, a round or a handover whose dates contradict each other (``invalid``)."""


class BeyondCalendar(DispatchRuleViolation):
    """A date a rule derives (a term's planned end) falls after the last day of the system's
    calendar (``zhucun.shared.bounds.DATE_MAX``): sent again as it is, the command always
    fails (``invalid``)."""

    kind: ClassVar[RuleKind] = "invalid"
    code = "beyond_calendar"


class HandoverItemAlreadyCompleted(DispatchRuleViolation):
    code = "handover_item_already_completed"


class ObligationAlreadyClosed(DispatchRuleViolation):
    code = "obligation_already_closed"


class RoundNotClosed(DispatchRuleViolation):
    """A round's report is made when it closes: asked for while the round is open."""

    code = "round_not_closed"

    def __init__(self, round_id: str) -> None:
        super().__init__(f"round {round_id!r} is open: its report is made when it closes")
        self.round_id = round_id
