"""Use cases of leave: a request (the cadre), an approval or a rejection (the township up to
the pack's limit, the county any), a cancellation (the cadre or a supervisor).

Consistency boundary: the cadre's leave stream and every month the leave touches (leave may
not change a closed month, and two requests may not overlap). A decision on known leave
reads the leave first to learn its months, then decides on the leave and those months.

The pack is the one in force for the post's county on the leave's first day.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from zhucun.attendance.application.context import Actor, Context, leave_model, month_model
from zhucun.attendance.domain import (
    ApproveLeave,
    CancelLeave,
    LeaveState,
    MonthState,
    RejectLeave,
    RequestLeave,
    UnknownLeave,
    approve_leave,
    cancel_leave,
    months_touched,
    reject_leave,
    request_leave,
)
from zhucun.contracts.attendance.events import ApprovalLevel, LeaveKind
from zhucun.shared.auth import Principal, Role
from zhucun.shared.commands import CommandAccepted, StreamModel
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack

#: A decision on one known leave, given the leave, the months it touches and the pack.
LeaveDecision = Callable[[LeaveState, dict[str, MonthState], PolicyPack], list[DomainEvent]]


def approver_level(principal: Principal) -> ApprovalLevel:
    """The level the caller decides leave at: the county's organisation department, or the
    township."""
    return ApprovalLevel.COUNTY if principal.role is Role.ORG_ADMIN else ApprovalLevel.TOWNSHIP


async def request_cadre_leave(
    ctx: Context,
    actor: Actor,
    cadre_id: str,
    *,
    leave_id: str,
    kind: LeaveKind,
    first_day: date,
    last_day: date,
    purpose: str,
) -> CommandAccepted:
    """A cadre asks for leave (personal, sick, or village business 公出)."""
    post = await ctx.post_on(actor.principal, cadre_id, first_day)
    pack = ctx.pack(post.county, first_day)
    command = RequestLeave(
        leave_id=leave_id,
        cadre_id=cadre_id,
        kind=kind,
        first_day=first_day,
        last_day=last_day,
        purpose=purpose,
        post=post,
    )
    # Dates out of order touch no month: the decider refuses them with a clear error.
    months = months_touched(first_day, last_day) if first_day <= last_day else []
    leave = leave_model(cadre_id)
    models: list[StreamModel[Any]] = [leave, *(month_model(cadre_id, m) for m in months)]
    return await ctx.commands.execute(
        models,
        lambda states: {
            leave.stream_id: request_leave(
                command, states[0], dict(zip(months, states[1:], strict=True)), pack
            )
        },
        actor.metadata,
    )


async def approve_cadre_leave(
    ctx: Context, actor: Actor, cadre_id: str, leave_id: str
) -> CommandAccepted:
    command = ApproveLeave(
        leave_id=leave_id, cadre_id=cadre_id, approver_level=approver_level(actor.principal)
    )
    return await _on_leave(
        ctx,
        actor,
        cadre_id,
        leave_id,
        lambda leave, months, pack: approve_leave(command, leave, months, pack),
    )


async def reject_cadre_leave(
    ctx: Context, actor: Actor, cadre_id: str, leave_id: str, *, reason: str
) -> CommandAccepted:
    command = RejectLeave(
        leave_id=leave_id,
        cadre_id=cadre_id,
        approver_level=approver_level(actor.principal),
        reason=reason,
    )
    return await _on_leave(
        ctx, actor, cadre_id, leave_id, lambda leave, _m, _p: reject_leave(command, leave)
    )


async def cancel_cadre_leave(
    ctx: Context, actor: Actor, cadre_id: str, leave_id: str, *, reason: str
) -> CommandAccepted:
    command = CancelLeave(leave_id=leave_id, cadre_id=cadre_id, reason=reason)
    return await _on_leave(
        ctx,
        actor,
        cadre_id,
        leave_id,
        lambda leave, months, _p: cancel_leave(command, leave, months),
    )


async def _on_leave(
    ctx: Context, actor: Actor, cadre_id: str, leave_id: str, decide: LeaveDecision
) -> CommandAccepted:
    """Run a decision on one known leave: read the leave to learn the months it touches,
    then decide on the leave and those months together."""
    post = await ctx.latest_post(actor.principal, cadre_id)
    leave = leave_model(cadre_id)
    known = (await ctx.commands.state(leave)).leaves.get(leave_id)
    if known is None:
        raise UnknownLeave(leave_id)
    months = months_touched(known.first_day, known.last_day)
    pack = ctx.pack(post.county, known.first_day)
    models: list[StreamModel[Any]] = [leave, *(month_model(cadre_id, m) for m in months)]
    return await ctx.commands.execute(
        models,
        lambda states: {
            leave.stream_id: decide(states[0], dict(zip(months, states[1:], strict=True)), pack)
        },
        actor.metadata,
    )
