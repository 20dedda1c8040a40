"""What the use cases read besides their own streams, as small protocols: the replicas of
dispatch and attendance kept in assessment's database (``zhucun.assessment.replicas``) and
the policy book. Tests pass in-memory stand-ins."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

from zhucun.assessment.replicas.dispatch import AssignmentRow
from zhucun.shared.policy import PolicyPack, PolicySection


class Assignments(Protocol):
    """The cadres' assignments as the replica of dispatch knows them, each answer ordered by
    term start (the latest last)."""

    async def assignments_of(self, cadre_id: str) -> Sequence[AssignmentRow]:
        """Every assignment of the cadre."""
        ...

    async def assignments_between(
        self, cadre_id: str, first: date, last: date
    ) -> Sequence[AssignmentRow]:
        """The cadre's assignments overlapping ``first..last``."""
        ...

    async def team_assignments(self, team_id: str) -> Sequence[AssignmentRow]:
        """Every assignment to the work team."""
        ...


class Absences(Protocol):
    """The cadres' unexcused spot-check absences as the replica of attendance knows them."""

    async def unexcused_absences(self, cadre_id: str, year: int) -> int: ...


class Policies(Protocol):
    """The policy packs (``zhucun.shared.policy.PolicyBook``)."""

    def pack_in_force(
        self, jurisdiction: str, on: date, section: type[PolicySection]
    ) -> PolicyPack:
        """The pack in force in the jurisdiction on a day, with the section's rules;
        ``NoPolicyInForce`` (the shared refusal) when none."""
        ...


__all__ = ["Absences", "Assignments", "Policies"]
