"""Use cases of a county's quarter (一季一考核): the quarterly assessment of a cadre (a 一般
opens the 双约谈), its admonition talks, the red and blue lists (红蓝榜), and the reads of
the quarter and of its open obligations.

Each command's consistency boundary is the county's quarter stream
(``assessment-quarter-{county}-{YYYY-Qn}``): the lists rank every assessment in it, and an
assessment after the lists is refused by the same stream. A quarter's rules are those of the
pack in force on its last day.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date

from zhucun.assessment import domain
from zhucun.assessment.application.context import (
    Application,
    ensure_county,
    ensure_reads_county,
    quarter_model,
)
from zhucun.assessment.application.views import OpenObligation, QuarterRecord
from zhucun.assessment.domain import (
    AssessQuarter,
    PublishLists,
    RecordAdmonitionTalk,
    quarter_bounds,
)
from zhucun.contracts.assessment.events import TalkBy
from zhucun.shared.auth import Principal
from zhucun.shared.bounds import ID_MAX_LENGTH
from zhucun.shared.commands import CommandAccepted


def obligation_id(cadre_id: str, quarter: str) -> str:
    """The id of the 双约谈 obligation a cadre's quarterly 一般 opens: one per cadre and
    quarter (a repeated command opens the same one), ``talks-{cadre}-{quarter}``; a cadre id
    too long for that to be an id is replaced by its digest (still one per cadre)."""
    readable = f"talks-{cadre_id}-{quarter}"
    if len(readable) <= ID_MAX_LENGTH:
        return readable
    digest = hashlib.sha256(cadre_id.encode()).hexdigest()[:32]
    return f"talks-{digest}-{quarter}"


async def assess_quarter(
    app: Application,
    principal: Principal,
    cadre_id: str,
    quarter: str,
    *,
    township_score: float,
    villager_score: float,
    county_panel_score: float,
) -> CommandAccepted:
    """The quarterly assessment of a cadre on post during the quarter, in the quarter of the
    post's county."""
    first, last = quarter_bounds(quarter)
    post = await app.post_between(principal, cadre_id, first, last)
    pack = app.pack(post.county, last)
    command = AssessQuarter(
        post=post,
        quarter=quarter,
        township_score=township_score,
        villager_score=villager_score,
        county_panel_score=county_panel_score,
        obligation_id=obligation_id(cadre_id, quarter),
        today=app.today(),
    )
    return await app.run(
        principal,
        quarter_model(post.county, quarter),
        lambda s: domain.assess_quarter(command, s, pack),
    )


async def record_admonition_talk(
    app: Application,
    principal: Principal,
    county: str,
    quarter: str,
    obligation_id: str,
    *,
    cadre_id: str,
    by: TalkBy,
    held_on: date,
    note: str = "",
) -> CommandAccepted:
    """One talk of a 双约谈 obligation, with a cadre on post during the quarter (within the
    caller's reach)."""
    first, last = quarter_bounds(quarter)
    await app.post_between(principal, cadre_id, first, last)
    command = RecordAdmonitionTalk(
        obligation_id=obligation_id,
        cadre_id=cadre_id,
        by=by,
        held_on=held_on,
        note=note,
        today=app.today(),
    )
    return await app.run(
        principal,
        quarter_model(county, quarter),
        lambda s: domain.record_admonition_talk(command, s),
    )


async def publish_lists(
    app: Application, principal: Principal, county: str, quarter: str, *, list_id: str
) -> CommandAccepted:
    """The quarter's red and blue lists, ranked over every assessment of the quarter."""
    ensure_county(principal, county)
    pack = app.pack(county, quarter_bounds(quarter)[1])
    command = PublishLists(list_id=list_id, county=county, quarter=quarter, today=app.today())
    return await app.run(
        principal,
        quarter_model(county, quarter),
        lambda s: domain.publish_lists(command, s, pack),
    )


async def open_obligations(
    app: Application, principal: Principal, county: str, quarter: str
) -> list[OpenObligation]:
    """The quarter's obligations not completed yet, flagged when past their due date."""
    ensure_reads_county(principal, county)
    state = await app.state(quarter_model(county, quarter))
    today = app.today()
    return [
        OpenObligation.model_validate(replace(o, overdue=o.is_overdue_on(today)))
        for o in state.obligations.values()
        if not o.completed
    ]


async def quarter_record(
    app: Application, principal: Principal, county: str, quarter: str
) -> QuarterRecord:
    """The county's quarter."""
    ensure_reads_county(principal, county)
    return QuarterRecord.model_validate(await app.state(quarter_model(county, quarter)))


__all__ = [
    "assess_quarter",
    "obligation_id",
    "open_obligations",
    "publish_lists",
    "quarter_record",
    "record_admonition_talk",
]
