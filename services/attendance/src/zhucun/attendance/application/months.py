"""Use cases of the month close: one cadre's month, or every cadre on post in a county (or
in the caller's township) for a month.

Consistency boundary of a close: the cadre's month, guarded by their leave (the tally counts
approved leave, so a leave decision racing the close re-runs it). Every post of the month
must be in the caller's jurisdiction. The pack is the one in force for the county of the
month's last post on the month's last day.

A month not over yet is refused before anything is looked up (``MonthNotOver``), for one
cadre or the whole county. A county-wide close is one close per cadre, each its own
decision: a refusal for one cadre (a retryable replica gap, a rule) is reported for that
cadre and never stops the others; a month closed before is ``already_closed``, not a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from zhucun.attendance.application.context import (
    Actor,
    Context,
    ensure_covers_post,
    known_village,
    leave_model,
    month_model,
)
from zhucun.attendance.domain import (
    AttendanceRuleViolation,
    CloseMonth,
    MonthAlreadyClosed,
    MonthNotOver,
    close_month,
    month_bounds,
)
from zhucun.shared.auth import Scope
from zhucun.shared.commands import CommandAccepted
from zhucun.shared.policy import NoPolicyInForce
from zhucun.shared.rules import OutsideJurisdiction, RuleViolation


def ensure_over(ctx: Context, month: str, last: date) -> None:
    """The month is over (today is after its ``last`` day): ``MonthNotOver``. The decider
    holds the rule; a use case asks first, so a month to come is refused as such whatever
    the replica knows of the cadres' posts in it, and a county-wide close of it as a whole."""
    if ctx.today() <= last:
        raise MonthNotOver(month, last)


@dataclass(frozen=True, slots=True)
class CadreClose:
    """What the county-wide close did for one cadre (``refusal``: why it did not)."""

    cadre_id: str
    status: Literal["closed", "already_closed", "refused"]
    refusal: RuleViolation | None = None


@dataclass(frozen=True, slots=True)
class CountyClose:
    """The county-wide close of ``month``: every cadre it concerned, sorted by id."""

    month: str
    cadres: tuple[CadreClose, ...]

    def count(self, status: Literal["closed", "already_closed", "refused"]) -> int:
        return sum(1 for cadre in self.cadres if cadre.status == status)


async def close_cadre_month(
    ctx: Context, actor: Actor, cadre_id: str, month: str
) -> CommandAccepted:
    """Close a cadre's month: days in the village, leave, required days, shortfall."""
    _, last = month_bounds(month)
    ensure_over(ctx, month, last)
    when = f"any day of {month}"
    posts = [known_village(post, when) for post in await ctx.posts_in(cadre_id, month)]
    for post in posts:
        ensure_covers_post(actor.principal, post)
    pack = ctx.pack(posts[-1].county, last)
    command = CloseMonth(cadre_id=cadre_id, month=month, posts=tuple(posts), today=ctx.today())
    month_stream = month_model(cadre_id, month)
    leave = leave_model(cadre_id)
    return await ctx.commands.execute(
        [month_stream, leave],
        lambda states: {month_stream.stream_id: close_month(command, states[0], states[1], pack)},
        actor.metadata,
    )


async def close_county_month(ctx: Context, actor: Actor, county: str, month: str) -> CountyClose:
    """Close ``month`` for every cadre on post in the county on some day of it (only those
    of the caller's township, for a township)."""
    township = actor.principal.jurisdiction.township
    actor.principal.ensure_covers(Scope(county=county, township=township))
    first, last = month_bounds(month)
    ensure_over(ctx, month, last)
    outcomes: list[CadreClose] = []
    for cadre_id in await ctx.posts.cadres_between(county, first, last, township=township):
        try:
            await close_cadre_month(ctx, actor, cadre_id, month)
        except MonthAlreadyClosed:
            outcomes.append(CadreClose(cadre_id, "already_closed"))
        except (AttendanceRuleViolation, NoPolicyInForce, OutsideJurisdiction) as refusal:
            outcomes.append(CadreClose(cadre_id, "refused", refusal))
        else:
            outcomes.append(CadreClose(cadre_id, "closed"))
    return CountyClose(month, tuple(outcomes))
