"""Who sends each action: the role and jurisdiction of the caller.

The HTTP driver mints a token for it (the services check the role and the jurisdiction); the
topics writer records the same ``subject:role`` as the events' actor, as the services do from
the token (``zhucun.shared.http.command_metadata``).

* the county organisation department (``org_admin`` of the county): dispatch, spot checks
  (四不两直 are the county's), month closes, leave beyond the township's limit, the sending
  unit's admonition talk (recorded by the county), team reviews, lists, annual rounds, term
  assessments, sanctions;
* the township party committee (``township``): presence confirmations, leave within its
  limit, inspections of cadres, villagers' evaluations, quarterly inputs, its own talk;
* the cadre (``cadre``, for themselves): check-ins, leave requests and withdrawals, diaries,
  household visits.
"""

from __future__ import annotations

from dataclasses import dataclass

from zhucun.contracts.assessment.events import TalkBy
from zhucun.shared.auth import Role
from zhucun.sim import actions as a


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    subject: str
    county: str | None = None
    township: str | None = None
    cadre: str | None = None

    @property
    def actor(self) -> str:
        """What the services record as the events' actor."""
        return f"{self.subject}:{self.role.value}"


def org_admin(prefix: str, county: str) -> Principal:
    return Principal(Role.ORG_ADMIN, f"{prefix}-orgadmin-{county}", county=county)


def township(county: str, township_id: str) -> Principal:
    return Principal(Role.TOWNSHIP, f"{township_id}-secretary", county=county, township=township_id)


def cadre(cadre_id: str) -> Principal:
    return Principal(Role.CADRE, cadre_id, cadre=cadre_id)


def auditor(prefix: str) -> Principal:
    return Principal(Role.AUDITOR, f"{prefix}-auditor")


def principal_for(action: a.Action, prefix: str) -> Principal:
    """The caller of ``action``."""
    match action:
        case a.CheckInBatch() | a.RequestLeave() | a.WriteDiary() | a.VisitHousehold():
            return cadre(action.cadre_id)
        case a.DecideLeave():
            if action.by == "cadre":
                return cadre(action.cadre_id)
            if action.by == "township":
                return township(action.county, action.township)
            return org_admin(prefix, action.county)
        case a.ConfirmPresence() | a.InspectCadre() | a.EvaluateByVillagers() | a.AssessQuarter():
            return township(action.county, action.township)
        case a.HoldTalk():
            if action.by is TalkBy.TOWNSHIP:
                return township(action.county, action.township)
            return org_admin(prefix, action.county)
        case (
            a.DispatchAction()
            | a.SpotCheck()
            | a.CloseCountyMonth()
            | a.InspectTeam()
            | a.PublishLists()
            | a.OpenAnnualRound()
            | a.ProposeAnnualGrade()
            | a.FinaliseAnnualRound()
            | a.AssessTerm()
            | a.RecordSanction()
        ):
            return org_admin(prefix, action.county)
    raise TypeError(f"no principal for {type(action).__name__}")
