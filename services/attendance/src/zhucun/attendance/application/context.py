"""What every attendance use case works with, and the lookups they share.

A use case gets a :class:`Context` (the command path over the service's store, the cadres'
posts from the replica of dispatch, the policy book, a clock) and an :class:`Actor` (the
caller and the metadata its events carry). Before it builds a command it finds the cadre's
post in the replica (``Posts``: small, so tests pass an in-memory stand-in), checks that the
caller may act on it, and picks the policy pack in force; those rules live here, once:

* a cadre acts for themselves only (``NotYourself``);
* the caller's jurisdiction covers the post's county, township and cadre (the shared
  ``OutsideJurisdiction`` of ``Principal.ensure_covers``);
* no post known covering the day, or its village not known yet, is retryable: the replica
  lags behind dispatch (``NoActiveAssignment``, ``VillageNotReplicated``);
* the pack is the one in force for the post's county on the day the command is about, and it
  must have attendance rules (``zhucun.shared.policy.NoPolicyInForce``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

from zhucun.attendance.application.errors import (
    NoActiveAssignment,
    NotYourself,
    VillageNotReplicated,
)
from zhucun.attendance.domain import (
    SHANGHAI,
    LeaveState,
    MonthState,
    Post,
    WorkState,
    evolve_leave,
    evolve_month,
    evolve_work,
    leave_stream,
    month_bounds,
    month_stream,
    require_not_after,
    work_stream,
)
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.shared.auth import Principal, Role, Scope
from zhucun.shared.commands import CommandPath, StreamModel
from zhucun.shared.envelope import EventMetadata
from zhucun.shared.policy import PolicyPack, PolicySection


class Posts(Protocol):
    """The cadres' posts as the replica of dispatch knows them (``replicas.posts``)."""

    async def posts_of(self, cadre_id: str) -> list[Post]:
        """Every post of the cadre, by term start (then assignment id)."""
        ...

    async def cadres_between(
        self, county: str, first: date, last: date, township: str | None = None
    ) -> list[str]:
        """The cadres of the county (or of one of its townships) on post on some day of
        ``first..last``, sorted."""
        ...

    async def county_posts(self, county: str, township: str | None = None) -> list[Post]:
        """Every post, past or running, in the villages of the county (or of one of its
        townships), by cadre, then term start."""
        ...


class Policies(Protocol):
    """The policy book (``zhucun.shared.policy.PolicyBook``)."""

    def pack_in_force(
        self, jurisdiction: str, on: date, section: type[PolicySection]
    ) -> PolicyPack: ...


@dataclass(frozen=True, slots=True)
class Actor:
    """Who runs a command: the authenticated caller, and the metadata of the events it
    appends (when, the request's correlation id, ``subject:role``)."""

    principal: Principal
    metadata: EventMetadata


def _utc_now() -> datetime:
    return datetime.now(UTC)


def month_model(cadre_id: str, month: str) -> StreamModel[MonthState]:
    """The stream of one cadre's month (``YYYY-MM``)."""
    return StreamModel(
        month_stream(cadre_id, month), MonthState.empty(cadre_id, month), evolve_month
    )


def leave_model(cadre_id: str) -> StreamModel[LeaveState]:
    """The stream of one cadre's leave."""
    return StreamModel(leave_stream(cadre_id), LeaveState.empty(cadre_id), evolve_leave)


def work_model(cadre_id: str) -> StreamModel[WorkState]:
    """The stream of one cadre's diary and household visits."""
    return StreamModel(work_stream(cadre_id), WorkState.empty(cadre_id), evolve_work)


def covering(posts: Sequence[Post], day: date) -> Post | None:
    """The post of ``posts`` (ordered by term start) covering ``day``: the latest, should
    two overlap."""
    return next((post for post in reversed(posts) if post.covers(day)), None)


def ensure_self(principal: Principal, cadre_id: str) -> None:
    """A cadre acts for themselves only (their token's ``cadre`` claim)."""
    if principal.role is Role.CADRE and principal.jurisdiction.cadre != cadre_id:
        raise NotYourself()


def ensure_covers_post(principal: Principal, post: Post) -> None:
    """The caller's jurisdiction covers the post's county, township and cadre."""
    principal.ensure_covers(Scope(county=post.county, township=post.township, cadre=post.cadre_id))


def known_village(post: Post, when: str) -> Post:
    """``post`` (covering ``when``), once its village has reached the replica (its township
    is known)."""
    if not post.township:
        raise VillageNotReplicated(post.village_id, cadre_id=post.cadre_id, when=when)
    return post


@dataclass(frozen=True, slots=True)
class Context:
    """What the use cases read and write through: the command path (the service's store and
    its state cache), the replica's posts, the policy book and the clock."""

    commands: CommandPath
    posts: Posts
    policies: Policies
    clock: Callable[[], datetime] = field(default=_utc_now)

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        """Today in the county (Asia/Shanghai): evidence for a later day is refused."""
        return self.now().astimezone(SHANGHAI).date()

    def ensure_has_come(self, day: date, what: str) -> None:
        """``day`` is not after today (``EvidenceFromTheFuture``). The deciders hold the
        rule; a use case asks first, so a day to come is refused as such whatever the
        replica knows of the cadre's posts on it."""
        require_not_after(day, self.today(), what)

    def pack(self, county: str, on: date) -> PolicyPack:
        """The pack in force for ``county`` on ``on``, with attendance rules
        (``NoPolicyInForce`` when there is none)."""
        return self.policies.pack_in_force(county, on, AttendancePolicy)

    async def post_on(self, principal: Principal, cadre_id: str, day: date) -> Post:
        """The cadre's post on ``day``, which the caller may act on."""
        ensure_self(principal, cadre_id)
        post = covering(await self.posts.posts_of(cadre_id), day)
        if post is None:
            raise NoActiveAssignment(cadre_id, str(day))
        post = known_village(post, str(day))
        ensure_covers_post(principal, post)
        return post

    async def latest_post(self, principal: Principal, cadre_id: str) -> Post:
        """The cadre's most recent post: the scope of a cadre-wide resource (their leave,
        their file), which the caller may act on."""
        ensure_self(principal, cadre_id)
        posts = await self.posts.posts_of(cadre_id)
        if not posts:
            raise NoActiveAssignment(cadre_id, "any day")
        post = known_village(posts[-1], "any day")
        ensure_covers_post(principal, post)
        return post

    async def posts_in(self, cadre_id: str, month: str) -> list[Post]:
        """The cadre's posts covering some day of ``month`` (none: ``NoActiveAssignment``)."""
        first, last = month_bounds(month)
        posts = [p for p in await self.posts.posts_of(cadre_id) if p.overlaps(first, last)]
        if not posts:
            raise NoActiveAssignment(cadre_id, f"any day of {month}")
        return posts


__all__ = [
    "Actor",
    "Context",
    "Policies",
    "Posts",
    "covering",
    "ensure_covers_post",
    "ensure_self",
    "known_village",
    "leave_model",
    "month_model",
    "work_model",
]
