"""The ``[dispatch]`` section of a policy pack: the rules of 派 and their arithmetic.

The pack's format and the book that says which pack is in force live in
``zhucun.shared.policy``; this is what dispatch reads from the pack's ``[dispatch]`` table
(``pack.rules(DispatchPolicy)``). ``docs/domain.md`` cites the source of every rule.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from zhucun.shared.policy import PolicySection


class DispatchPolicy(PolicySection):
    """Rules of 派 (dispatch): team composition, eligibility, terms, township leaders."""

    section = "dispatch"

    #: Team size (first secretary + members), normally 3..5.
    team_size_min: int = Field(ge=1)
    team_size_max: int = Field(ge=1)
    #: Villages with at least this many people under poverty-relapse monitoring get a larger
    #: team (Yunnan: 200 people -> 1 + 4).
    large_village_monitored_population: int = Field(ge=0)
    large_village_team_size_min: int = Field(ge=1)
    #: Years of party standing a first secretary needs at the start of the term
    #: (1 = past the probationary year, a full member).
    first_secretary_min_party_years: int = Field(ge=0)
    #: Age normally not exceeded ("45 or under"); above it the assignment is accepted with a
    #: warning.
    normal_max_age: int = Field(ge=18)
    #: "一老一新": a team should have someone at least this old and someone younger.
    age_mix_threshold: int = Field(ge=18)
    #: "一深一浅": someone with at least this many years of rural work and someone with fewer.
    experienced_rural_years: int = Field(ge=1)
    #: A term normally lasts at least this long ("at least 2 years").
    min_term_months: int = Field(ge=1)
    #: A township needs this many assigned cadres before one is appointed leader.
    township_leader_min_cadres: int = Field(ge=1)
    township_leader_term_months: int = Field(ge=1)
    #: Every weak-party-branch village (党组织软弱涣散村) gets a first secretary.
    weak_branch_village_requires_first_secretary: bool

    @model_validator(mode="after")
    def _sizes_are_consistent(self) -> Self:
        if not self.team_size_min <= self.large_village_team_size_min <= self.team_size_max:
            raise ValueError(
                "team sizes must satisfy team_size_min <= large_village_team_size_min"
                " <= team_size_max"
            )
        return self

    def team_size_bounds(self, monitored_population: int) -> tuple[int, int]:
        """(minimum, maximum) team size for a village with this monitored population."""
        if monitored_population >= self.large_village_monitored_population:
            return self.large_village_team_size_min, self.team_size_max
        return self.team_size_min, self.team_size_max


__all__ = ["DispatchPolicy"]
