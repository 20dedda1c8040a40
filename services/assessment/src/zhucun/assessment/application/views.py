"""What the reads answer: typed read models of the assessment streams (they are the HTTP
API's response models and appear in its OpenAPI document).

Each is built from a folded state (``model_validate(state)``, attribute by attribute), so the
JSON is the state's: its mappings by id, and the recorded events themselves.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from zhucun.contracts.assessment.events import (
    AnnualGradeProposed,
    AnnualResultIssued,
    AnnualRoundFinalised,
    CadreInspected,
    QuarterlyAssessed,
    RedBlueListsPublished,
    SanctionRecorded,
    TalkBy,
    TermAssessed,
    VillagerEvaluationRecorded,
)


class View(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class CadreRecord(View):
    """A cadre's inspections, villager evaluations, term assessments and sanctions."""

    cadre_id: str
    inspections: dict[str, CadreInspected] = Field(description="By inspection id.")
    evaluations: dict[str, VillagerEvaluationRecorded] = Field(description="By evaluation id.")
    term_assessments: dict[str, TermAssessed] = Field(description="By assignment id.")
    sanctions: dict[str, SanctionRecorded] = Field(description="By sanction id.")


class ObligationRecord(View):
    """A 双约谈 obligation: the township and the sending unit each talk to the cadre by
    the due date."""

    obligation_id: str
    cadre_id: str
    quarter: str
    due_on: date
    talks: dict[TalkBy, date] = Field(description="The day each party held its talk.")
    completed_on: date | None = Field(
        description="The day of the later of the two talks, once both were held."
    )
    overdue: bool | None = Field(
        description="Whether it was completed after due_on (null while open)."
    )


class OpenObligation(ObligationRecord):
    """An obligation not completed yet."""

    overdue: bool = Field(description="Past its due date today.")


class QuarterRecord(View):
    """A county's quarter: the latest assessment of each cadre, the 双约谈 obligations, the
    red and blue lists."""

    county: str
    quarter: str
    assessments: dict[str, QuarterlyAssessed] = Field(description="By cadre id.")
    obligations: dict[str, ObligationRecord] = Field(description="By obligation id.")
    lists: dict[str, RedBlueListsPublished] = Field(
        description="By list id (one publication a quarter)."
    )


class AnnualRoundRecord(View):
    """A county's annual round of a year: its proposals and, once final, its results."""

    county: str
    year: int
    round_id: str | None = Field(description="The round's id once opened.")
    opened_on: date | None
    proposals: dict[str, AnnualGradeProposed] = Field(
        description="By cadre id: the latest proposal."
    )
    finalisation: AnnualRoundFinalised | None
    results: dict[str, AnnualResultIssued] = Field(
        description="By cadre id: the final grade, once finalised."
    )


__all__ = [
    "AnnualRoundRecord",
    "CadreRecord",
    "ObligationRecord",
    "OpenObligation",
    "QuarterRecord",
]
