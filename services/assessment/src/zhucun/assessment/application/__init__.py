"""The use cases of assessment (考), one handler (an async function) per use case:

* ``records``: inspections of cadres and teams, villager evaluations, sanctions, the
  term-end assessment; reads of a cadre's record and attendance facts;
* ``quarters``: quarterly assessments, admonition talks, red and blue lists; reads of a
  quarter and its open obligations;
* ``annual``: the annual round (open, propose, finalise); its read.

Each handler takes the wired ``Application`` (``context``: the command path, the replicas as
the ``ports`` protocols, the policy book, the clock) and the caller, and owns its
consistency boundary (the one stream it decides on), the policy pack that applies (on which
day), the enrichment of the command from the replicas (the cadre's post, the year's
unexcused absences) and the jurisdiction rules (the caller's reach over the post or
county). It answers ``CommandAccepted`` or a typed read model (``views``) and refuses with a
``RuleViolation`` (the decider's, or ``refusals``). No web framework here: the HTTP edge
parses, authenticates by role and calls one handler.
"""

from zhucun.assessment.application.context import Application, today_in_china
from zhucun.assessment.application.ports import Absences, Assignments, Policies
from zhucun.assessment.application.refusals import (
    NoAssignment,
    UnknownTeam,
    VillageNotReplicated,
)
from zhucun.assessment.application.views import (
    AnnualRoundRecord,
    CadreRecord,
    ObligationRecord,
    OpenObligation,
    QuarterRecord,
)

__all__ = [
    "Absences",
    "AnnualRoundRecord",
    "Application",
    "Assignments",
    "CadreRecord",
    "NoAssignment",
    "ObligationRecord",
    "OpenObligation",
    "Policies",
    "QuarterRecord",
    "UnknownTeam",
    "VillageNotReplicated",
    "today_in_china",
]
