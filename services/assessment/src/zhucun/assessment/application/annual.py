"""Use cases of a county's annual round (年终算总账): open it, propose each cadre's grade
(capped by the year's unexcused spot-check absences), finalise it (refused over the share of
优秀), and read it.

Each command's consistency boundary is the round's stream
(``assessment-annual-{county}-{YYYY}``): the 优秀 share is counted over every proposal in it,
so a proposal appended concurrently makes the finalisation decide again. A round's rules are
those of the pack in force on the year's last day. Only the county (an org admin) runs it,
on the application's today (China's calendar): a round opens from 1 December of its year,
its grades from 31 December (the decider's ``YearNotOver``).
"""

from __future__ import annotations

from zhucun.assessment import domain
from zhucun.assessment.application.context import (
    Application,
    annual_model,
    ensure_county,
    ensure_reads_county,
)
from zhucun.assessment.application.views import AnnualRoundRecord
from zhucun.assessment.domain import (
    AnnualState,
    FinaliseAnnualRound,
    OpenAnnualRound,
    ProposeAnnualGrade,
    year_bounds,
)
from zhucun.contracts.assessment.events import AnnualGrade
from zhucun.shared.auth import Principal
from zhucun.shared.commands import CommandAccepted
from zhucun.shared.events import DomainEvent


async def open_annual_round(
    app: Application, principal: Principal, county: str, year: int, *, round_id: str
) -> CommandAccepted:
    """Open the county's round of the year."""
    ensure_county(principal, county)
    command = OpenAnnualRound(round_id=round_id, county=county, year=year, today=app.today())
    return await app.run(
        principal, annual_model(county, year), lambda s: domain.open_annual_round(command, s)
    )


async def propose_annual_grade(
    app: Application,
    principal: Principal,
    county: str,
    year: int,
    cadre_id: str,
    grade: AnnualGrade,
) -> CommandAccepted:
    """Propose the grade of a cadre on post in the county during the year, in the round
    open (the round id is the stream's)."""
    ensure_county(principal, county)
    post = await app.post_between(principal, cadre_id, *year_bounds(year))
    facts = await app.attendance(cadre_id, year)
    pack = app.pack_of_year(county, year)

    def decide(state: AnnualState) -> list[DomainEvent]:
        command = ProposeAnnualGrade(
            round_id=state.round_id,
            county=county,
            year=year,
            post=post,
            grade=grade,
            attendance=facts,
            today=app.today(),
        )
        return domain.propose_annual_grade(command, state, pack)

    return await app.run(principal, annual_model(county, year), decide)


async def finalise_annual_round(
    app: Application, principal: Principal, county: str, year: int
) -> CommandAccepted:
    """Finalise the round open (the round id is the stream's): one result per cadre."""
    ensure_county(principal, county)
    pack = app.pack_of_year(county, year)

    def decide(state: AnnualState) -> list[DomainEvent]:
        command = FinaliseAnnualRound(
            round_id=state.round_id, county=county, year=year, today=app.today()
        )
        return domain.finalise_annual_round(command, state, pack)

    return await app.run(principal, annual_model(county, year), decide)


async def annual_round(
    app: Application, principal: Principal, county: str, year: int
) -> AnnualRoundRecord:
    """The county's round of the year."""
    ensure_reads_county(principal, county)
    return AnnualRoundRecord.model_validate(await app.state(annual_model(county, year)))


__all__ = ["annual_round", "finalise_annual_round", "open_annual_round", "propose_annual_grade"]
