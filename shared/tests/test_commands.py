"""execute(): read, fold, decide, append at the version read; re-decide after a lost race.

An in-memory stand-in for the store keeps these tests pure (the real store's concurrency is
tested in test_store.py, and the HTTP edge of dispatch runs execute() against PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

import pytest

from zhucun.shared.commands import StateCache, execute, load
from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.events import DomainEvent, EventRegistry
from zhucun.shared.store import AppendResult, EventStore, WrongExpectedVersion

pytestmark = pytest.mark.unit

registry = EventRegistry()


@registry.register
class Taken(DomainEvent):
    event_type: ClassVar[str] = "test.Taken"
    key_field: ClassVar[str] = "seat"
    seat: str


class SeatTaken(Exception):
    pass


@dataclass
class Stored:
    event_type: str
    schema_version: int
    data: dict[str, Any]
    stream_version: int

    def decode(self, registry: EventRegistry) -> DomainEvent:
        return registry.decode(self.event_type, self.schema_version, self.data)


@dataclass
class FakeStore:
    streams: dict[str, list[Stored]] = field(default_factory=dict)
    #: Events another writer slips in just before each of our next appends.
    intruders: list[DomainEvent] = field(default_factory=list)
    appends: int = 0
    reads: int = 0
    events_read: int = 0

    async def read_stream(self, stream_id: str, *, from_version: int = 1) -> list[Stored]:
        self.reads += 1
        events = list(self.streams.get(stream_id, []))[from_version - 1 :]
        self.events_read += len(events)
        return events

    def _put(self, stream_id: str, event: DomainEvent) -> None:
        stream = self.streams.setdefault(stream_id, [])
        stream.append(Stored(event.event_type, 1, event.to_data(), len(stream) + 1))

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], *, expected_version: int
    ) -> AppendResult:
        self.appends += 1
        if self.intruders:
            self._put(stream_id, self.intruders.pop(0))
        actual = len(self.streams.get(stream_id, []))
        if actual != expected_version:
            raise WrongExpectedVersion(stream_id, expected_version, actual)
        for new in events:
            self._put(stream_id, new.event)
        return AppendResult(events=[], duplicate=False)


def evolve(state: frozenset[str], event: DomainEvent) -> frozenset[str]:
    assert isinstance(event, Taken)
    return state | {event.seat}


def take(seat: str) -> Any:
    def decide(state: frozenset[str]) -> list[DomainEvent]:
        if seat in state:
            raise SeatTaken(seat)
        return [Taken(seat=seat)]

    return decide


async def run(store: FakeStore, decide: Any, attempts: int = 3) -> AppendResult | None:
    return await execute(
        cast(EventStore, store),
        stream_id="s",
        registry=registry,
        initial=frozenset[str](),
        evolve=evolve,
        decide=decide,
        metadata=EventMetadata(occurred_at=datetime.now(UTC), actor="test:org_admin"),
        attempts=attempts,
    )


async def test_appends_at_the_version_read() -> None:
    store = FakeStore()
    await run(store, take("a"))
    await run(store, take("b"))
    state, version = await load(
        cast(EventStore, store), stream_id="s", registry=registry, initial=frozenset[str](),
        evolve=evolve,
    )  # fmt: skip
    assert state == {"a", "b"}
    assert version == 2


async def test_domain_error_propagates_and_nothing_is_appended() -> None:
    store = FakeStore()
    await run(store, take("a"))
    with pytest.raises(SeatTaken):
        await run(store, take("a"))
    assert store.appends == 1


async def test_no_events_appends_nothing() -> None:
    store = FakeStore()
    assert await run(store, lambda state: []) is None
    assert store.appends == 0


async def test_lost_race_is_redecided_on_fresh_state() -> None:
    store = FakeStore(intruders=[Taken(seat="b")])
    await run(store, take("a"))
    assert [s.data["seat"] for s in store.streams["s"]] == ["b", "a"]
    assert store.reads == 2


async def test_conflicting_concurrent_command_is_refused_by_the_rule() -> None:
    store = FakeStore(intruders=[Taken(seat="a")])
    with pytest.raises(SeatTaken):
        await run(store, take("a"))
    assert [s.data["seat"] for s in store.streams["s"]] == ["a"]


async def test_gives_up_after_the_attempts() -> None:
    store = FakeStore(intruders=[Taken(seat="x"), Taken(seat="y")])
    with pytest.raises(WrongExpectedVersion):
        await run(store, take("a"), attempts=2)
    assert store.appends == 2


async def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        await run(FakeStore(), take("a"), attempts=0)


async def fold(store: FakeStore, cache: StateCache | None) -> tuple[frozenset[str], int]:
    return await load(
        cast(EventStore, store), stream_id="s", registry=registry, initial=frozenset[str](),
        evolve=evolve, cache=cache,
    )  # fmt: skip


async def test_a_cached_state_is_extended_with_what_was_appended_since() -> None:
    store = FakeStore()
    for seat in "abc":
        store._put("s", Taken(seat=seat))
    cache = StateCache()
    assert await fold(store, cache) == ({"a", "b", "c"}, 3)
    assert store.events_read == 3
    store._put("s", Taken(seat="d"))  # another process appended
    assert await fold(store, cache) == ({"a", "b", "c", "d"}, 4)
    assert store.events_read == 4  # only the new event was read
    assert (cache.hits, cache.misses) == (1, 1)
    # The same answer as a fold without the cache.
    assert await fold(store, None) == await fold(store, cache)


def test_the_cache_keeps_the_latest_version_and_forgets_the_least_recently_used() -> None:
    cache = StateCache(max_entries=2)
    cache.put("s1", evolve, frozenset({"a"}), 1)
    cache.put("s1", evolve, frozenset(), 0)  # an older state never replaces a newer one
    assert cache.get("s1", evolve) == (frozenset({"a"}), 1)
    cache.put("s2", evolve, frozenset(), 0)
    assert cache.get("s1", evolve) is not None  # s1 is now used more recently than s2
    cache.put("s3", evolve, frozenset(), 0)  # so s2 goes
    assert cache.get("s2", evolve) is None
    assert cache.get("s1", evolve) is not None
    assert len(cache) == 2
    with pytest.raises(ValueError, match="max_entries"):
        StateCache(max_entries=0)
