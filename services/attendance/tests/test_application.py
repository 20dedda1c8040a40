"""The attendance use cases without HTTP, Kafka or PostgreSQL: each handler on the in-memory
event store, with an in-memory stand-in for the replica of dispatch and the real policy
packs. What they read and guard (the streams of each append), which pack applies, what they
take from the replica, and how they refuse."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from zhucun.attendance import application
from zhucun.attendance.application import (
    Actor,
    CheckInItem,
    ClosedMonth,
    Context,
    InvalidItem,
    LeaveView,
    NoActiveAssignment,
    NotYourself,
    OpenMonth,
    VillageNotReplicated,
    VisitCoverageView,
)
from zhucun.attendance.domain import (
    SHANGHAI,
    ApprovalBeyondLevel,
    Coordinates,
    DuplicateId,
    EvidenceFromTheFuture,
    Geofence,
    Leave,
    LeaveNotPending,
    MonthAlreadyClosed,
    MonthNotOver,
    MonthTally,
    Post,
    UnknownLeave,
    VisitCoverage,
    leave_stream,
    month_stream,
    work_stream,
)
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.contracts.attendance.events import (
    ApprovalLevel,
    CheckInRecorded,
    LeaveApproved,
    LeaveKind,
    LeaveRequested,
    MonthClosed,
    SpotCheckRecorded,
    SpotCheckResult,
    registry,
)
from zhucun.shared.auth import Jurisdiction, Principal, Role
from zhucun.shared.commands import CommandAccepted, CommandPath, StateCache
from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.events import DomainEvent
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.policy import NoPolicyInForce, PolicyBook
from zhucun.shared.problems import rule_problem
from zhucun.shared.rules import OutsideJurisdiction, RuleViolation
from zhucun.shared.store import AppendResult, StreamWrite

pytestmark = pytest.mark.unit

POLICIES = PolicyBook.load(
    Path(__file__).resolve().parents[3] / "policies", sections=[AttendancePolicy]
)
COUNTY = "530102"  # the reference pack
LIANGSHAN = "513427"  # Ningyuan, under the Liangshan pack from 2025
CENTRE = Geofence(latitude=25.04, longitude=102.71, radius_m=1000)
INSIDE = Coordinates(latitude=25.045, longitude=102.71)  # ~556 m north
#: 1 May 2025, 10:00 in Shanghai.
NOW = datetime(2025, 5, 1, 2, 0, tzinfo=UTC)

#: One write of an append: (stream, events appended, version expected).
Write = tuple[str, int, int]


class Store(InMemoryEventStore):
    """The in-memory store, remembering the writes of every append, and able to let a
    concurrent writer in just before the next one."""

    def __init__(self) -> None:
        super().__init__()
        self.appends: list[list[Write]] = []
        self.before_next_append: Callable[[], Awaitable[None]] | None = None

    async def append_streams(self, writes: Sequence[StreamWrite]) -> AppendResult:
        self.appends.append([(w.stream_id, len(w.events), w.expected_version) for w in writes])
        hook, self.before_next_append = self.before_next_append, None
        if hook is not None:
            await hook()
        return await super().append_streams(writes)

    async def write(self, stream_id: str, *events: DomainEvent) -> None:
        """Another writer appends ``events`` (not recorded as this test's appends)."""
        version = await self.stream_version(stream_id)
        new = [NewEvent(event=e, metadata=EventMetadata(occurred_at=NOW)) for e in events]
        await InMemoryEventStore.append_streams(self, [StreamWrite(stream_id, new, version)])

    async def events(self, stream_id: str) -> list[DomainEvent]:
        return [r.decode(registry) for r in await self.read_stream(stream_id)]


class FakePosts:
    """The replica of dispatch: posts by cadre, as ``replicas.posts.PostDirectory`` gives
    them (ordered by term start)."""

    def __init__(self, *posts: Post) -> None:
        self.posts = list(posts)
        self.asked: list[tuple[str, date, date, str | None]] = []

    async def posts_of(self, cadre_id: str) -> list[Post]:
        return sorted(
            (p for p in self.posts if p.cadre_id == cadre_id),
            key=lambda p: (p.term_start, p.assignment_id),
        )

    async def cadres_between(
        self, county: str, first: date, last: date, township: str | None = None
    ) -> list[str]:
        self.asked.append((county, first, last, township))
        return sorted(
            {
                p.cadre_id
                for p in self.posts
                if p.county == county
                and p.overlaps(first, last)
                and (township is None or p.township == township)
            }
        )

    async def county_posts(self, county: str, township: str | None = None) -> list[Post]:
        return sorted(
            (p for p in self.posts if p.county == county and township in (None, p.township)),
            key=lambda p: (p.cadre_id, p.term_start, p.assignment_id),
        )


def post(
    cadre_id: str = "c1",
    *,
    county: str = COUNTY,
    township: str = "t1",
    term_start: date = date(2025, 3, 1),
    ended_on: date | None = None,
    households: int = 2,
) -> Post:
    return Post(
        assignment_id=f"a-{cadre_id}-{term_start}",
        cadre_id=cadre_id,
        village_id=f"v-{township}",
        township=township,
        county=county,
        term_start=term_start,
        ended_on=ended_on,
        geofence=CENTRE,
        households=households,
    )


def cadre(cadre_id: str = "c1") -> Principal:
    return Principal(subject=cadre_id, role=Role.CADRE, jurisdiction=Jurisdiction(cadre=cadre_id))


def township(county: str = COUNTY, name: str = "t1") -> Principal:
    return Principal(
        subject=f"{name}-staff",
        role=Role.TOWNSHIP,
        jurisdiction=Jurisdiction(county=county, township=name),
    )


def county_admin(county: str = COUNTY) -> Principal:
    return Principal(subject="org", role=Role.ORG_ADMIN, jurisdiction=Jurisdiction(county=county))


AUDITOR = Principal(subject="audit", role=Role.AUDITOR)


def actor(principal: Principal) -> Actor:
    return Actor(principal, EventMetadata(occurred_at=NOW, actor=f"{principal.subject}:x"))


def at(day: date, hour: int = 9) -> datetime:
    """``hour`` o'clock in Shanghai on ``day``."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


class World:
    """A context on a fresh store, with the clock at ``now``."""

    def __init__(self, *posts: Post, now: datetime = NOW) -> None:
        self.store = Store()
        self.posts = FakePosts(*posts)
        self.now = now
        self.ctx = Context(
            commands=CommandPath(self.store, registry, StateCache()),
            posts=self.posts,
            policies=POLICIES,
            clock=lambda: self.now,
        )

    async def check_in(
        self, day: date, check_in_id: str = "ci", cadre_id: str = "c1", **extra: Any
    ) -> application.CheckInAccepted:
        return await application.record_check_in(
            self.ctx,
            actor(cadre(cadre_id)),
            cadre_id,
            CheckInItem(check_in_id, extra.pop("occurred_at", at(day)), **extra),
        )

    async def request_leave(
        self, leave_id: str, first: date, last: date, cadre_id: str = "c1"
    ) -> CommandAccepted:
        return await application.request_cadre_leave(
            self.ctx,
            actor(cadre(cadre_id)),
            cadre_id,
            leave_id=leave_id,
            kind=LeaveKind.PERSONAL,
            first_day=first,
            last_day=last,
            purpose="",
        )


# --- check-ins ------------------------------------------------------------------------------


async def test_a_check_in_is_decided_on_the_month_of_its_day_in_shanghai() -> None:
    world = World(post())
    # 23:30 UTC on 31 March is 07:30 on 1 April in Shanghai.
    late = datetime(2025, 3, 31, 23, 30, tzinfo=UTC)
    accepted = await world.check_in(date(2025, 4, 1), occurred_at=late, location=INSIDE)

    april = month_stream("c1", "2025-04")
    assert world.store.appends == [[(april, 1, 0)]]
    assert (accepted.duplicate, accepted.stream_id, accepted.stream_version) == (False, april, 1)
    assert accepted.day == date(2025, 4, 1)
    assert accepted.location is not None
    assert (accepted.location.inside_geofence, accepted.location.distance_m) == (True, 560)
    [event] = await world.store.events(april)
    assert isinstance(event, CheckInRecorded)
    assert (event.assignment_id, event.village_id) == ("a-c1-2025-03-01", "v-t1")
    assert accepted.event_ids == [r.event_id for r in await world.store.read_stream(april)]


async def test_a_repeated_check_in_stores_nothing_and_says_so() -> None:
    world = World(post())
    await world.check_in(date(2025, 4, 2), "ci-1")
    again = await world.check_in(date(2025, 4, 2), "ci-1")
    assert (again.duplicate, again.event_ids, again.location) == (True, [], None)
    assert len(world.store.appends) == 1
    assert len(await world.store.events(month_stream("c1", "2025-04"))) == 1


async def test_a_check_in_takes_the_post_covering_its_day_from_the_replica() -> None:
    first = post(term_start=date(2025, 3, 1), ended_on=date(2025, 3, 31))
    second = post(term_start=date(2025, 4, 1), township="t2")
    world = World(second, first)  # the replica's order does not matter
    await world.check_in(date(2025, 3, 20), "march")
    await world.check_in(date(2025, 4, 20), "april")
    [march] = await world.store.events(month_stream("c1", "2025-03"))
    [april] = await world.store.events(month_stream("c1", "2025-04"))
    assert isinstance(march, CheckInRecorded)
    assert isinstance(april, CheckInRecorded)
    assert (march.village_id, april.village_id) == ("v-t1", "v-t2")


async def test_a_check_in_off_post_is_refused_retryably_and_stores_nothing() -> None:
    world = World(post(term_start=date(2025, 4, 1)))
    with pytest.raises(NoActiveAssignment) as refused:
        await world.check_in(date(2025, 3, 20))
    assert refused.value.retryable
    assert refused.value.code == "no_active_assignment"
    with pytest.raises(NoActiveAssignment):
        await world.check_in(date(2025, 4, 2), cadre_id="nobody")
    assert world.store.appends == []


async def test_a_village_not_yet_replicated_is_retryable() -> None:
    world = World(post(township=""))
    with pytest.raises(VillageNotReplicated) as refused:
        await world.check_in(date(2025, 4, 2))
    assert (refused.value.kind, refused.value.village_id) == ("retryable", "v-")
    assert world.store.appends == []


async def test_a_cadre_checks_in_for_themselves_only() -> None:
    world = World(post("c1"), post("c2"))
    with pytest.raises(NotYourself) as refused:
        await application.record_check_in(
            world.ctx, actor(cadre("c1")), "c2", CheckInItem("x", at(date(2025, 4, 2)))
        )
    assert refused.value.kind == "forbidden"
    assert world.store.appends == []


async def test_no_pack_in_force_on_the_day_is_invalid_input() -> None:
    # The reference pack takes effect on 1 January 2021.
    world = World(post(term_start=date(2020, 1, 1)))
    with pytest.raises(NoPolicyInForce) as refused:
        await world.check_in(date(2020, 6, 1))
    assert (refused.value.kind, refused.value.county) == ("invalid", COUNTY)


# --- a batch of check-ins -------------------------------------------------------------------


async def test_a_batch_decides_once_per_month_and_answers_every_item_in_order() -> None:
    world = World(post(term_start=date(2025, 3, 1)))
    await world.check_in(date(2025, 3, 3), "stored")
    world.store.appends.clear()
    items: list[CheckInItem | InvalidItem] = [
        CheckInItem("stored", at(date(2025, 3, 3))),
        CheckInItem("a", at(date(2025, 4, 1)), INSIDE),
        InvalidItem("bad", [{"location": ["occurred_at"], "message": "no", "type": "x"}]),
        CheckInItem("early", at(date(2025, 2, 27))),  # before the term
        CheckInItem("b", at(date(2025, 3, 4))),
        CheckInItem("future", NOW + timedelta(hours=1)),
        CheckInItem("a", at(date(2025, 4, 1)), INSIDE),  # repeated in the batch
    ]
    outcome = await application.record_check_in_batch(world.ctx, actor(cadre()), "c1", items)

    answers = [(i.index, i.check_in_id, i.status) for i in outcome.items]
    assert answers == [
        (0, "stored", "duplicate"),
        (1, "a", "recorded"),
        (2, "bad", "refused"),
        (3, "early", "refused"),
        (4, "b", "recorded"),
        (5, "future", "refused"),
        (6, "a", "duplicate"),
    ]
    assert [outcome.count(s) for s in ("recorded", "duplicate", "refused")] == [2, 2, 3]
    assert outcome.items[2].invalid is items[2]
    assert isinstance(outcome.items[3].refusal, NoActiveAssignment)
    assert isinstance(outcome.items[5].refusal, EvidenceFromTheFuture)
    # One append per month, in month order; March was at version 1 (the earlier check-in).
    march, april, may = (month_stream("c1", m) for m in ("2025-03", "2025-04", "2025-05"))
    assert world.store.appends == [[(march, 1, 1)], [(april, 1, 0)]]
    assert [e.check_in_id for e in await world.store.events(april)] == ["a"]  # type: ignore[attr-defined]
    assert await world.store.events(may) == []


async def test_a_batch_with_nothing_valid_stores_nothing() -> None:
    world = World(post())
    outcome = await application.record_check_in_batch(
        world.ctx, actor(cadre()), "c1", [InvalidItem(None, [])]
    )
    assert [(i.check_in_id, i.status) for i in outcome.items] == [(None, "refused")]
    assert world.store.appends == []


async def test_a_batch_is_for_the_cadre_themselves() -> None:
    world = World(post("c2"))
    with pytest.raises(NotYourself):
        await application.record_check_in_batch(
            world.ctx, actor(cadre("c1")), "c2", [CheckInItem("x", at(date(2025, 4, 2)))]
        )


# --- confirmations and spot checks ----------------------------------------------------------


async def test_a_confirmation_appends_to_every_month_of_its_days_at_once() -> None:
    world = World(post())
    accepted = await application.confirm_cadre_presence(
        world.ctx,
        actor(township()),
        "c1",
        confirmation_id="conf",
        days=[date(2025, 4, 2), date(2025, 3, 30), date(2025, 4, 2)],
        note="",
    )
    march, april = month_stream("c1", "2025-03"), month_stream("c1", "2025-04")
    assert world.store.appends == [[(march, 1, 0), (april, 1, 0)]]
    assert accepted.stream_id == march
    assert accepted.event_types == ["attendance.PresenceConfirmed"] * 2


async def test_a_township_confirms_only_in_its_own_township() -> None:
    world = World(post(township="t1"))
    with pytest.raises(OutsideJurisdiction) as refused:
        await application.confirm_cadre_presence(
            world.ctx,
            actor(township(name="t2")),
            "c1",
            confirmation_id="conf",
            days=[date(2025, 4, 2)],
            note="",
        )
    assert (refused.value.kind, refused.value.code) == ("forbidden", "forbidden_jurisdiction")
    assert world.store.appends == []


async def spot_check(world: World, day: date, spot_check_id: str = "sc") -> None:
    await application.record_cadre_spot_check(
        world.ctx,
        actor(township()),
        "c1",
        spot_check_id=spot_check_id,
        day=day,
        result=SpotCheckResult.ABSENT,
        findings="",
    )


async def test_a_spot_check_writes_the_month_guarded_by_the_leave() -> None:
    world = World(post())
    await world.request_leave("L", date(2025, 4, 10), date(2025, 4, 11))
    world.store.appends.clear()
    await spot_check(world, date(2025, 4, 10))
    assert world.store.appends == [
        [(month_stream("c1", "2025-04"), 1, 0), (leave_stream("c1"), 0, 1)]
    ]


async def test_leave_approved_while_a_spot_check_is_decided_excuses_the_absence() -> None:
    """The leave is read and guarded: the approval that gets in first makes the append fail,
    and the decision, run again on the approved leave, records the absence as excused."""
    world = World(post())
    await world.request_leave("L", date(2025, 4, 10), date(2025, 4, 11))

    async def approve() -> None:
        approval = LeaveApproved(
            leave_id="L", cadre_id="c1", approved_at_level=ApprovalLevel.TOWNSHIP
        )
        await world.store.write(leave_stream("c1"), approval)

    world.store.before_next_append = approve
    await spot_check(world, date(2025, 4, 10))
    [check] = await world.store.events(month_stream("c1", "2025-04"))
    assert isinstance(check, SpotCheckRecorded)
    assert check.excused_by_leave_id == "L"
    assert world.store.appends[-1] == [
        (month_stream("c1", "2025-04"), 1, 0),
        (leave_stream("c1"), 0, 2),
    ]


# --- leave ----------------------------------------------------------------------------------


async def test_a_leave_request_writes_the_leave_guarded_by_every_month_it_touches() -> None:
    world = World(post())
    accepted = await world.request_leave("L", date(2025, 4, 29), date(2025, 5, 2))
    assert world.store.appends == [
        [
            (leave_stream("c1"), 1, 0),
            (month_stream("c1", "2025-04"), 0, 0),
            (month_stream("c1", "2025-05"), 0, 0),
        ]
    ]
    assert (accepted.stream_id, accepted.stream_version) == (leave_stream("c1"), 1)


async def test_leave_in_a_closed_month_is_refused() -> None:
    world = World(post())
    await application.close_cadre_month(world.ctx, actor(township()), "c1", "2025-04")
    with pytest.raises(MonthAlreadyClosed):
        await world.request_leave("L", date(2025, 4, 29), date(2025, 5, 2))


@pytest.mark.parametrize(
    ("county", "level"),
    [(COUNTY, ApprovalLevel.COUNTY), (LIANGSHAN, ApprovalLevel.TOWNSHIP)],
    ids=["reference pack: over 3 days", "Liangshan pack: up to 5 days"],
)
async def test_who_approves_leave_follows_the_pack_of_the_posts_county(
    county: str, level: ApprovalLevel
) -> None:
    world = World(post(county=county))
    await world.request_leave("L", date(2025, 5, 5), date(2025, 5, 8))  # four days
    [requested] = await world.store.events(leave_stream("c1"))
    assert isinstance(requested, LeaveRequested)
    assert requested.approval_level is level
    assert requested.policy_version == ("reference-2021" if county == COUNTY else "liangshan-2025")

    approve = application.approve_cadre_leave(world.ctx, actor(township(county)), "c1", "L")
    if level is ApprovalLevel.COUNTY:
        with pytest.raises(ApprovalBeyondLevel):
            await approve
        await application.approve_cadre_leave(world.ctx, actor(county_admin(county)), "c1", "L")
    else:
        await approve
    decided = (await world.store.events(leave_stream("c1")))[-1]
    assert isinstance(decided, LeaveApproved)
    assert decided.approved_at_level is level


async def test_a_decision_on_leave_reads_the_leave_then_guards_its_months() -> None:
    world = World(post())
    await world.request_leave("L", date(2025, 4, 29), date(2025, 5, 2))
    world.store.appends.clear()
    accepted = await application.approve_cadre_leave(world.ctx, actor(county_admin()), "c1", "L")
    assert world.store.appends == [
        [
            (leave_stream("c1"), 1, 1),
            (month_stream("c1", "2025-04"), 0, 0),
            (month_stream("c1", "2025-05"), 0, 0),
        ]
    ]
    assert accepted.event_types == ["attendance.LeaveApproved"]
    again = await application.approve_cadre_leave(world.ctx, actor(county_admin()), "c1", "L")
    assert again.duplicate


async def test_rejected_leave_cannot_be_approved_and_its_refusal_is_a_problem() -> None:
    world = World(post())
    await world.request_leave("L", date(2025, 4, 20), date(2025, 4, 21))
    await application.reject_cadre_leave(world.ctx, actor(township()), "c1", "L", reason="no")
    with pytest.raises(LeaveNotPending) as refused:
        await application.approve_cadre_leave(world.ctx, actor(township()), "c1", "L")
    document = rule_problem(refused.value, service="attendance").to_problem()
    assert document.status == 409
    assert document.model_extra is not None
    assert document.model_extra["leave_status"] == "rejected"


async def test_unknown_leave_is_not_found() -> None:
    world = World(post())
    with pytest.raises(UnknownLeave) as refused:
        await application.cancel_cadre_leave(world.ctx, actor(cadre()), "c1", "nope", reason="")
    assert refused.value.kind == "not_found"
    assert world.store.appends == []


# --- work record ----------------------------------------------------------------------------


async def test_a_diary_entry_touches_only_the_work_stream_even_in_a_closed_month() -> None:
    world = World(post())
    await application.close_cadre_month(world.ctx, actor(township()), "c1", "2025-04")
    world.store.appends.clear()
    await application.write_cadre_diary_entry(
        world.ctx, actor(cadre()), "c1", entry_id="d1", day=date(2025, 4, 3), text="开会"
    )
    with pytest.raises(DuplicateId):
        await application.write_cadre_diary_entry(
            world.ctx, actor(cadre()), "c1", entry_id="d1", day=date(2025, 4, 3), text="other"
        )
    assert world.store.appends == [[(work_stream("c1"), 1, 0)]]


# --- month close ----------------------------------------------------------------------------


async def test_a_close_writes_the_month_guarded_by_the_leave_under_the_pack_of_its_end() -> None:
    world = World(post(county=LIANGSHAN))
    await world.check_in(date(2025, 4, 2), "ci-1")
    world.store.appends.clear()
    accepted = await application.close_cadre_month(
        world.ctx, actor(township(LIANGSHAN)), "c1", "2025-04"
    )
    april = month_stream("c1", "2025-04")
    assert world.store.appends == [[(april, 1, 1), (leave_stream("c1"), 0, 0)]]
    assert accepted.event_types == ["attendance.MonthClosed"]
    closed = (await world.store.events(april))[-1]
    assert isinstance(closed, MonthClosed)
    assert (closed.policy_version, closed.presence_days) == ("liangshan-2025", 1)
    assert closed.assignment_ids == ("a-c1-2025-03-01",)


async def test_a_month_is_closed_once_it_is_over() -> None:
    world = World(post(), now=datetime(2025, 4, 30, 2, tzinfo=UTC))
    with pytest.raises(MonthNotOver):
        await application.close_cadre_month(world.ctx, actor(township()), "c1", "2025-04")


async def test_every_post_of_the_month_must_be_in_the_callers_jurisdiction() -> None:
    moved = post(term_start=date(2025, 4, 15), township="t2")
    world = World(post(ended_on=date(2025, 4, 14)), moved)
    with pytest.raises(OutsideJurisdiction):
        await application.close_cadre_month(world.ctx, actor(township()), "c1", "2025-04")
    await application.close_cadre_month(world.ctx, actor(county_admin()), "c1", "2025-04")
    closed = (await world.store.events(month_stream("c1", "2025-04")))[-1]
    assert isinstance(closed, MonthClosed)
    assert closed.village_id == "v-t2"  # the later village
    assert closed.days_in_post == 30


async def test_a_county_close_reports_each_cadre_and_never_stops_at_one() -> None:
    world = World(post("c1"), post("c2"), post("c3", township=""), post("c4", township="t2"))
    await application.close_cadre_month(world.ctx, actor(township()), "c1", "2025-04")

    outcome = await application.close_county_month(
        world.ctx, actor(county_admin()), COUNTY, "2025-04"
    )
    assert [(c.cadre_id, c.status) for c in outcome.cadres] == [
        ("c1", "already_closed"),
        ("c2", "closed"),
        ("c3", "refused"),
        ("c4", "closed"),
    ]
    assert outcome.cadres[0].refusal is None
    assert isinstance(outcome.cadres[2].refusal, VillageNotReplicated)
    assert [outcome.count(s) for s in ("closed", "already_closed", "refused")] == [2, 1, 1]
    assert world.posts.asked == [(COUNTY, date(2025, 4, 1), date(2025, 4, 30), None)]


async def test_a_county_close_reports_a_month_no_pack_covers_for_each_cadre() -> None:
    # The reference pack takes effect on 1 January 2021.
    world = World(post("c1", term_start=date(2020, 1, 1)))
    outcome = await application.close_county_month(
        world.ctx, actor(county_admin()), COUNTY, "2020-06"
    )
    assert [(c.cadre_id, c.status) for c in outcome.cadres] == [("c1", "refused")]
    assert isinstance(outcome.cadres[0].refusal, NoPolicyInForce)
    assert world.store.appends == []


async def test_a_township_closes_the_month_of_its_own_cadres_in_its_own_county() -> None:
    world = World(post("c1"), post("c4", township="t2"))
    outcome = await application.close_county_month(world.ctx, actor(township()), COUNTY, "2025-04")
    assert [(c.cadre_id, c.status) for c in outcome.cadres] == [("c1", "closed")]
    assert world.posts.asked[-1][3] == "t1"
    with pytest.raises(OutsideJurisdiction):
        await application.close_county_month(world.ctx, actor(township()), "530103", "2025-04")


# --- reads ----------------------------------------------------------------------------------


async def test_an_open_month_is_counted_so_far_and_a_closed_one_as_closed() -> None:
    world = World(post())
    await world.check_in(date(2025, 4, 2), "ci-1", location=INSIDE)
    await world.request_leave("L", date(2025, 4, 20), date(2025, 4, 21))
    await application.approve_cadre_leave(world.ctx, actor(township()), "c1", "L")

    open_month = await application.read_cadre_month(world.ctx, AUDITOR, "c1", "2025-04")
    assert isinstance(open_month, OpenMonth)
    assert (open_month.status, open_month.presence_days, open_month.personal_leave_days) == (
        "open",
        1,
        2,
    )
    assert open_month.in_village_dates == [date(2025, 4, 2)]
    assert open_month.excused_dates == [date(2025, 4, 20), date(2025, 4, 21)]

    await application.close_cadre_month(world.ctx, actor(township()), "c1", "2025-04")
    closed = await application.read_cadre_month(world.ctx, AUDITOR, "c1", "2025-04")
    assert isinstance(closed, ClosedMonth)
    assert closed.model_dump(mode="json") == {
        "status": "closed",
        **{
            k: v
            for k, v in open_month.model_dump(mode="json").items()
            if k in MonthClosed.model_fields
        },
    }


async def test_the_leave_and_the_visit_coverage_of_a_cadre() -> None:
    world = World(post(households=2))
    await world.request_leave("L", date(2025, 4, 20), date(2025, 4, 21))
    [view] = await application.read_cadre_leave(world.ctx, AUDITOR, "c1")
    assert (view.leave_id, view.status, view.days, view.approval_level) == (
        "L",
        "pending",
        2,
        ApprovalLevel.TOWNSHIP,
    )
    for n, day in enumerate([date(2025, 3, 2), date(2025, 3, 9)]):
        await application.record_cadre_visit(
            world.ctx,
            actor(cadre()),
            "c1",
            visit_id=f"v{n}",
            household_id=f"h{n}",
            visited_on=day,
            note="",
        )
    coverage = await application.read_visit_coverage(world.ctx, AUDITOR, "c1")
    assert (coverage.visited, coverage.share, coverage.all_visited_on) == (2, 1.0, date(2025, 3, 9))
    assert (coverage.deadline, coverage.within_deadline) == (date(2025, 3, 30), True)


async def test_reads_are_in_the_callers_jurisdiction() -> None:
    world = World(post())
    with pytest.raises(OutsideJurisdiction):
        await application.read_cadre_leave(world.ctx, county_admin("539999"), "c1")
    with pytest.raises(NotYourself):
        await application.read_cadre_month(world.ctx, cadre("c2"), "c1", "2025-04")


async def test_reads_fold_only_what_was_appended_since_the_last_command() -> None:
    world = World(post())
    await world.request_leave("L", date(2025, 4, 20), date(2025, 4, 21))
    cache = world.ctx.commands.cache
    hits = cache.hits
    await application.read_cadre_leave(world.ctx, AUDITOR, "c1")
    assert cache.hits == hits + 1


def test_the_read_models_carry_every_figure_of_the_domain_values() -> None:
    """A figure added to the close, the tally, leave or coverage reaches the answers."""
    assert set(ClosedMonth.model_fields) == {"status", *MonthClosed.model_fields}
    assert set(OpenMonth.model_fields) == {
        "status",
        *(f.name for f in dataclasses.fields(MonthTally)),
    }
    assert set(LeaveView.model_fields) == {f.name for f in dataclasses.fields(Leave)}
    assert set(VisitCoverageView.model_fields) == {
        f.name for f in dataclasses.fields(VisitCoverage)
    }


REFUSALS: list[RuleViolation] = [
    NoActiveAssignment("c1", "2025-04-02"),
    VillageNotReplicated("v1", cadre_id="c1", when="2025-04-02"),
    NoPolicyInForce("no policy covers 530102 on 2020-06-01", county=COUNTY),
    NotYourself(),
    UnknownLeave("L"),
    LeaveNotPending("L", "rejected"),
    ApprovalBeyondLevel("L", ApprovalLevel.COUNTY, ApprovalLevel.TOWNSHIP),
    MonthNotOver("2025-04", date(2025, 4, 30)),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda error: type(error).__name__)
def test_every_refusal_is_a_problem_of_the_attendance_service(refusal: RuleViolation) -> None:
    problem = rule_problem(refusal, service="attendance").to_problem()
    slug = refusal.code.replace("_", "-")
    assert problem.type == f"https://zhucun.dev/problems/attendance/{slug}"
    assert problem.model_extra is not None
    assert (problem.model_extra["code"], problem.model_extra["retryable"]) == (
        refusal.code,
        refusal.kind == "retryable",
    )


def test_a_post_outside_the_jurisdiction_is_the_refusal_every_service_answers_alike() -> None:
    problem = rule_problem(OutsideJurisdiction(), service="attendance").to_problem()
    assert (problem.status, problem.type) == (
        403,
        "https://zhucun.dev/problems/forbidden-jurisdiction",
    )
    assert problem.model_extra is not None
    assert problem.model_extra["code"] == "forbidden_jurisdiction"
