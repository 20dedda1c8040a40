"""Reads of one cadre's file: a month (closed, or counted so far), their leave (all of it, or
one request), and the household visit coverage of their current village; and the one list
of a county: its leave requests by status (the approvers' queue).

A cadre's read is their own, in the caller's jurisdiction over the cadre's latest post; the
county's list holds the leave of the posts in the caller's county (or township). None ranks
or lists people by check-ins or time online (the law forbids it): the list is of requests,
in the order of their first day. States come through the command path's state cache, so a
read folds only the events appended since the last command or read of the stream.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from zhucun.attendance.application.context import (
    Context,
    leave_model,
    month_model,
    work_model,
)
from zhucun.attendance.domain import (
    Leave,
    LeaveStatus,
    Post,
    UnknownLeave,
    month_bounds,
    month_tally,
    visit_coverage,
)
from zhucun.contracts.attendance.events import ApprovalLevel, LeaveKind
from zhucun.shared.auth import Principal, Scope
from zhucun.shared.pages import Page, paginate


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class MonthFigures(View):
    """The counts of a month (see ``MonthClosed`` in the attendance contract)."""

    #: Narrowed by each kind of month (the discriminator of ``MonthView``).
    status: Literal["closed", "open"]
    cadre_id: str
    month: str
    assignment_ids: list[str]
    village_id: str
    days_in_month: int
    days_in_post: int
    presence_days: int
    business_days: int
    in_village_days: int
    personal_leave_days: int
    sick_leave_days: int
    eligible_days: int
    required_days: int
    shortfall: int
    spot_checks: int
    unexcused_absences: int
    policy_version: str


class ClosedMonth(MonthFigures):
    """A closed month: the figures decided at the close."""

    status: Literal["closed"]


class OpenMonth(MonthFigures):
    """A month not closed yet: the figures as the streams stand now, under the pack in force
    on its last day, and the days behind them."""

    status: Literal["open"]
    #: The days counted in the village, sorted.
    in_village_dates: list[date]
    #: The days on personal or sick leave in post, sorted.
    excused_dates: list[date]


MonthView = Annotated[ClosedMonth | OpenMonth, Field(discriminator="status")]


class LeaveView(View):
    """One leave request and where it stands."""

    leave_id: str
    assignment_id: str
    village_id: str
    kind: LeaveKind
    first_day: date
    last_day: date
    days: int
    purpose: str
    #: Who must approve it (fixed when requested, under ``policy_version``).
    approval_level: ApprovalLevel
    policy_version: str
    status: LeaveStatus
    approved_at_level: ApprovalLevel | None
    #: Why it was rejected or cancelled.
    reason: str


class CountyLeaveView(LeaveView):
    """A leave request in a county's list: whose it is, the township of its post, and its
    place in the list."""

    cadre_id: str
    township: str
    #: Its place in the list: the first day, then a digest of the cadre's and the leave's
    #: ids (a page's ``next`` is its last item's). The list is in this order: the soonest
    #: leave first.
    cursor: str


def leave_cursor(cadre_id: str, leave: Leave) -> str:
    """The place of ``leave`` in a county's list: by its first day, then by a digest of the
    two ids (a leave id is the cadre's own, so only the pair is unique, and the two together
    may be longer than a cursor may be)."""
    digest = hashlib.sha256(f"{cadre_id}\n{leave.leave_id}".encode()).hexdigest()[:32]
    return f"{leave.first_day.isoformat()}.{digest}"


class VisitCoverageView(View):
    """How far the cadre has come visiting every household of the village in the current
    assignment (see ``VisitCoverage``)."""

    assignment_id: str
    households: int
    visited: int
    share: float
    deadline: date
    all_visited_on: date | None
    within_deadline: bool | None


async def read_cadre_month(
    ctx: Context, principal: Principal, cadre_id: str, month: str
) -> ClosedMonth | OpenMonth:
    await ctx.latest_post(principal, cadre_id)
    state = await ctx.commands.state(month_model(cadre_id, month))
    if state.closed is not None:
        return ClosedMonth.model_validate({"status": "closed", **state.closed.to_data()})
    posts = await ctx.posts_in(cadre_id, month)
    leave = await ctx.commands.state(leave_model(cadre_id))
    pack = ctx.pack(posts[-1].county, month_bounds(month)[1])
    tally = month_tally(state, leave, posts, pack)
    return OpenMonth.model_validate({"status": "open", **asdict(tally)})


async def read_cadre_leave(ctx: Context, principal: Principal, cadre_id: str) -> list[LeaveView]:
    await ctx.latest_post(principal, cadre_id)
    state = await ctx.commands.state(leave_model(cadre_id))
    return [
        LeaveView.model_validate(leave, from_attributes=True) for leave in state.leaves.values()
    ]


async def read_cadre_leave_request(
    ctx: Context, principal: Principal, cadre_id: str, leave_id: str
) -> LeaveView:
    """One leave request of the cadre (``UnknownLeave``: the cadre has none of that id)."""
    await ctx.latest_post(principal, cadre_id)
    state = await ctx.commands.state(leave_model(cadre_id))
    leave = state.leaves.get(leave_id)
    if leave is None:
        raise UnknownLeave(leave_id)
    return LeaveView.model_validate(leave, from_attributes=True)


async def list_county_leave(
    ctx: Context,
    principal: Principal,
    county: str,
    *,
    status: LeaveStatus,
    approval_level: ApprovalLevel | None,
    after: str | None,
    limit: int,
) -> Page[CountyLeaveView]:
    """The leave requests of ``status`` (and ``approval_level``, if given) of the posts in
    ``county`` (in the caller's township only, for a township), soonest first.

    The leave lives in each cadre's stream: this reads the stream of every cadre with a post
    in the county (through the state cache), not an index."""
    township = principal.jurisdiction.township
    principal.ensure_covers(Scope(county=county, township=township))
    posts = {post.assignment_id: post for post in await ctx.posts.county_posts(county, township)}
    items: list[CountyLeaveView] = []
    for cadre_id in sorted({post.cadre_id for post in posts.values()}):
        state = await ctx.commands.state(leave_model(cadre_id))
        for leave in state.leaves.values():
            post = posts.get(leave.assignment_id)
            wanted = approval_level is None or leave.approval_level is approval_level
            if post is not None and leave.status is status and wanted:
                items.append(_county_leave(post, leave))
    return paginate(items, key=lambda item: item.cursor, after=after, limit=limit)


def _county_leave(post: Post, leave: Leave) -> CountyLeaveView:
    return CountyLeaveView.model_validate(
        {
            **asdict(leave),
            "cadre_id": post.cadre_id,
            "township": post.township,
            "cursor": leave_cursor(post.cadre_id, leave),
        }
    )


async def read_visit_coverage(
    ctx: Context, principal: Principal, cadre_id: str
) -> VisitCoverageView:
    post = await ctx.latest_post(principal, cadre_id)
    work = await ctx.commands.state(work_model(cadre_id))
    pack = ctx.pack(post.county, post.term_start)
    coverage = visit_coverage(work, post, pack)
    return VisitCoverageView.model_validate(coverage, from_attributes=True)
