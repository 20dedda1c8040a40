"""The ``[assessment]`` section of a policy pack: the numbers of 考.

The pack's format and the book that says which pack is in force live in
``zhucun.shared.policy``; this is what assessment reads from the pack's ``[assessment]``
table (``pack.rules(AssessmentPolicy)``). The arithmetic over these numbers is in
``rules.py``; ``docs/domain.md`` cites the source of every rule.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from zhucun.shared.policy import PolicySection


class AssessmentPolicy(PolicySection):
    """Rules of 考 (assessment): score weights, grade bands, caps, shares and lists."""

    section = "assessment"

    #: Weights of the quarterly score's parts (Pu County: township 70, villagers' secret
    #: ballot 20, county panel 10); each part is scored 0-100 and the weights sum to 100.
    township_weight: int = Field(ge=0, le=100)
    villager_weight: int = Field(ge=0, le=100)
    county_panel_weight: int = Field(ge=0, le=100)
    #: Lowest composite score (0-100) of each quarterly grade: 好, 较好, 一般; below: 差.
    quarterly_good_min: float = Field(ge=0, le=100)
    quarterly_fairly_good_min: float = Field(ge=0, le=100)
    quarterly_average_min: float = Field(ge=0, le=100)
    #: Days within which both admonition talks (双约谈) follow a quarterly 一般.
    admonition_talk_days: int = Field(ge=1)
    #: Most 优秀 in a county's annual round: floor(share x cadres assessed).
    excellent_share_cap: float = Field(ge=0, le=1)
    #: Unexcused spot-check absences in the year that cap the annual grade: from this many,
    #: no 优秀; at most 基本称职; 不称职.
    absences_bar_excellent: int = Field(ge=1)
    absences_cap_basic: int = Field(ge=1)
    absences_incompetent: int = Field(ge=1)
    #: Sizes of the red (best) and blue (worst) lists of a period (ties at the edge all go in).
    red_list_size: int = Field(ge=0)
    blue_list_size: int = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.township_weight + self.villager_weight + self.county_panel_weight != 100:
            raise ValueError("the quarterly score weights must sum to 100")
        if not (
            self.quarterly_good_min >= self.quarterly_fairly_good_min >= self.quarterly_average_min
        ):
            raise ValueError("quarterly grade bands must satisfy good >= fairly good >= average")
        if not self.absences_bar_excellent <= self.absences_cap_basic <= self.absences_incompetent:
            raise ValueError("absence caps must satisfy bar_excellent <= cap_basic <= incompetent")
        return self


__all__ = ["AssessmentPolicy"]
