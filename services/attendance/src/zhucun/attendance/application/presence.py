"""Use cases of presence evidence: a check-in, an offline batch of check-ins, a township
confirmation of days, a spot check.

Consistency boundaries (the streams each decision reads; those it does not write guard it):

* a check-in: the month of its day (Asia/Shanghai);
* a batch: each month its items fall in, one decision (and one append) per month;
* a confirmation: every month of its days;
* a spot check: the month of its day, guarded by the cadre's leave (an absence is excused
  by leave approved at the time, so a concurrent approval re-runs the decision).

The pack is the one in force for the post's county on the day of the evidence (a batch: on
the first day of each month).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from zhucun.attendance.application.context import (
    Actor,
    Context,
    covering,
    ensure_covers_post,
    ensure_self,
    leave_model,
    month_model,
)
from zhucun.attendance.application.errors import NoActiveAssignment, VillageNotReplicated
from zhucun.attendance.domain import (
    AttendanceRuleViolation,
    CheckIn,
    ConfirmPresence,
    Coordinates,
    EvidenceFromTheFuture,
    ItemOutcome,
    Post,
    RecordSpotCheck,
    check_in,
    check_in_batch,
    confirm_presence,
    local_day,
    month_bounds,
    month_key,
    month_stream,
    record_spot_check,
    require_not_ahead,
)
from zhucun.contracts.attendance.events import (
    CheckInRecorded,
    LocationEvidence,
    SpotCheckResult,
    TravelFlag,
)
from zhucun.shared.commands import CommandAccepted
from zhucun.shared.events import DomainEvent

#: The most check-ins one offline upload may carry.
MAX_BATCH = 500


@dataclass(frozen=True, slots=True)
class CheckInItem:
    """One check-in as the cadre's app sends it (``occurred_at`` may be long past: the app
    may have been offline). ``location`` is evidence: checked against the geofence, not
    kept."""

    check_in_id: str
    occurred_at: datetime
    location: Coordinates | None = None

    def command(self, cadre_id: str, post: Post, received_at: datetime) -> CheckIn:
        """The decider's command: the check-in on ``post``, received at ``received_at``."""
        return CheckIn(
            check_in_id=self.check_in_id,
            cadre_id=cadre_id,
            occurred_at=self.occurred_at,
            location=self.location,
            post=post,
            received_at=received_at,
        )


@dataclass(frozen=True, slots=True)
class InvalidItem:
    """An item of a batch that is not a check-in at all; the edge found why (``errors``, as
    it will answer them) and the application only keeps its place in the answer."""

    check_in_id: str | None
    errors: Sequence[Mapping[str, Any]]


class CheckInAccepted(CommandAccepted):
    """What a check-in stored, and what the service made of it: its day (Asia/Shanghai),
    the location evidence (inside the geofence, distance) and a travel flag if any."""

    check_in_id: str
    day: date
    location: LocationEvidence | None = None
    travel_flag: TravelFlag | None = None


@dataclass(frozen=True, slots=True)
class BatchItem:
    """What became of one item of a batch: ``recorded``, ``duplicate`` (stored before, or
    earlier in the batch) or ``refused``, with why (``refusal`` or ``invalid``)."""

    index: int
    check_in_id: str | None
    status: Literal["recorded", "duplicate", "refused"]
    refusal: AttendanceRuleViolation | None = None
    invalid: InvalidItem | None = None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Every item of a batch, in the order sent."""

    items: tuple[BatchItem, ...]

    def count(self, status: Literal["recorded", "duplicate", "refused"]) -> int:
        return sum(1 for item in self.items if item.status == status)


async def record_check_in(
    ctx: Context, actor: Actor, cadre_id: str, item: CheckInItem
) -> CheckInAccepted:
    """A cadre checks in, for themselves."""
    ensure_self(actor.principal, cadre_id)
    received_at = ctx.now()
    require_not_ahead(item.check_in_id, item.occurred_at, received_at)
    day = local_day(item.occurred_at)
    post = await ctx.post_on(actor.principal, cadre_id, day)
    pack = ctx.pack(post.county, day)
    command = item.command(cadre_id, post, received_at=received_at)
    model = month_model(cadre_id, month_key(day))
    decided: list[DomainEvent] = []

    def decide(states: list[Any]) -> dict[str, list[DomainEvent]]:
        events = check_in(command, states[0], pack)
        decided[:] = events  # the last run's events (decide re-runs after a conflict)
        return {model.stream_id: events}

    accepted = await ctx.commands.execute([model], decide, actor.metadata)
    recorded = next((e for e in decided if isinstance(e, CheckInRecorded)), None)
    return CheckInAccepted(
        **accepted.model_dump(),
        check_in_id=item.check_in_id,
        day=day,
        location=None if recorded is None else recorded.location,
        travel_flag=None if recorded is None else recorded.travel_flag,
    )


async def record_check_in_batch(
    ctx: Context, actor: Actor, cadre_id: str, items: Sequence[CheckInItem | InvalidItem]
) -> BatchOutcome:
    """Check-ins a cadre's phone recorded offline, answered item by item: an invalid item,
    one off post or one the decider refuses never stops the others."""
    ensure_self(actor.principal, cadre_id)
    answers: dict[int, BatchItem] = {}
    posts = await ctx.posts.posts_of(cadre_id)
    received_at = ctx.now()
    by_month: dict[str, list[tuple[int, CheckIn]]] = defaultdict(list)
    for index, item in enumerate(items):
        if isinstance(item, InvalidItem):
            answers[index] = BatchItem(index, item.check_in_id, "refused", invalid=item)
            continue
        refusal = _refusal(cadre_id, item, posts, received_at)
        if refusal is not None:
            answers[index] = BatchItem(index, item.check_in_id, "refused", refusal=refusal)
            continue
        day = local_day(item.occurred_at)
        post = covering(posts, day)
        assert post is not None  # ``_refusal`` found it
        ensure_covers_post(actor.principal, post)
        by_month[month_key(day)].append((index, item.command(cadre_id, post, received_at)))
    for month, entries in sorted(by_month.items()):
        outcomes = await _check_in_month(ctx, actor, month, [command for _, command in entries])
        for (index, _), outcome in zip(entries, outcomes, strict=True):
            answers[index] = BatchItem(
                index, outcome.check_in_id, outcome.status, refusal=outcome.error
            )
    return BatchOutcome(tuple(answers[index] for index in range(len(items))))


def _refusal(
    cadre_id: str, item: CheckInItem, posts: Sequence[Post], received_at: datetime
) -> AttendanceRuleViolation | None:
    """Why an item of a batch is refused before its month is decided: from the future, or no
    post of the replica covers its day (or the post's village is not replicated yet)."""
    try:
        require_not_ahead(item.check_in_id, item.occurred_at, received_at)
    except EvidenceFromTheFuture as refusal:
        return refusal
    day = local_day(item.occurred_at)
    post = covering(posts, day)
    if post is None:
        return NoActiveAssignment(cadre_id, str(day))
    if not post.township:
        return VillageNotReplicated(post.village_id, cadre_id=cadre_id, when=str(day))
    return None


async def _check_in_month(
    ctx: Context, actor: Actor, month: str, commands: list[CheckIn]
) -> list[ItemOutcome]:
    """One decision on the month for the batch's items of that month."""
    pack = ctx.pack(commands[0].post.county, month_bounds(month)[0])
    model = month_model(commands[0].cadre_id, month)
    outcomes: list[ItemOutcome] = []

    def decide(states: list[Any]) -> dict[str, list[DomainEvent]]:
        events, decided = check_in_batch(commands, states[0], pack)
        outcomes[:] = decided  # the last run's outcomes (decide re-runs after a conflict)
        return {model.stream_id: events}

    await ctx.commands.execute([model], decide, actor.metadata)
    return outcomes


async def confirm_cadre_presence(
    ctx: Context,
    actor: Actor,
    cadre_id: str,
    *,
    confirmation_id: str,
    days: Sequence[date],
    note: str,
) -> CommandAccepted:
    """The township confirms the cadre was in the village on ``days`` (of any months)."""
    ordered = sorted(set(days))
    ctx.ensure_has_come(ordered[-1], "presence confirmed")
    post = await ctx.post_on(actor.principal, cadre_id, ordered[0])
    command = ConfirmPresence(
        confirmation_id=confirmation_id,
        cadre_id=cadre_id,
        days=tuple(ordered),
        note=note,
        post=post,
        today=ctx.today(),
    )
    months = sorted({month_key(day) for day in ordered})
    models = [month_model(cadre_id, month) for month in months]

    def decide(states: list[Any]) -> dict[str, list[DomainEvent]]:
        decided = confirm_presence(command, dict(zip(months, states, strict=True)))
        return {month_stream(cadre_id, month): events for month, events in decided.items()}

    return await ctx.commands.execute(models, decide, actor.metadata)


async def record_cadre_spot_check(
    ctx: Context,
    actor: Actor,
    cadre_id: str,
    *,
    spot_check_id: str,
    day: date,
    result: SpotCheckResult,
    findings: str,
) -> CommandAccepted:
    """An unannounced spot check (四不两直) by the township or the county."""
    ctx.ensure_has_come(day, "a spot check")
    post = await ctx.post_on(actor.principal, cadre_id, day)
    command = RecordSpotCheck(
        spot_check_id=spot_check_id,
        cadre_id=cadre_id,
        day=day,
        result=result,
        findings=findings,
        post=post,
        today=ctx.today(),
    )
    month = month_model(cadre_id, month_key(day))
    leave = leave_model(cadre_id)
    return await ctx.commands.execute(
        [month, leave],
        lambda states: {month.stream_id: record_spot_check(command, states[0], states[1])},
        actor.metadata,
    )
