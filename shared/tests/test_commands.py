"""The command path: read, fold, decide, append at the versions read; re-decide after a lost
race; cache folded states.

On the in-memory store (the same contract as PostgreSQL's, ``test_store.py``), with another
writer slipping events in just before our appends, so these tests stay pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from zhucun.shared.commands import (
    CommandAccepted,
    CommandPath,
    StateCache,
    StreamModel,
    execute,
    load,
)
from zhucun.shared.envelope import EventMetadata, NewEvent, RecordedEvent
from zhucun.shared.events import DomainEvent, EventRegistry
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.store import ANY_VERSION, AppendResult, StreamWrite, WrongExpectedVersion

pytestmark = pytest.mark.unit

registry = EventRegistry()
METADATA = EventMetadata(occurred_at=datetime(2026, 3, 1, tzinfo=UTC), actor="test:org_admin")


@registry.register
class Taken(DomainEvent):
    event_type: ClassVar[str] = "test.Taken"
    key_field: ClassVar[str] = "seat"
    seat: str


class SeatTaken(Exception):
    pass


class ContendedStore(InMemoryEventStore):
    """The in-memory store, with another writer that appends ``intruders`` (one each time)
    just before our next appends, and counters of what was asked of it."""

    def __init__(self, intruders: Sequence[DomainEvent] = ()) -> None:
        super().__init__()
        self.intruders = list(intruders)
        self.appends = 0
        self.reads = 0
        self.events_read = 0

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        self.reads += 1
        events = await super().read_stream(
            stream_id, from_version=from_version, to_version=to_version
        )
        self.events_read += len(events)
        return events

    async def put(self, stream_id: str, event: DomainEvent) -> None:
        """Another process appends."""
        await super().append_streams(
            [StreamWrite(stream_id, [NewEvent(event=event, metadata=METADATA)], ANY_VERSION)]
        )

    async def append_streams(self, writes: Sequence[StreamWrite]) -> AppendResult:
        self.appends += 1
        if self.intruders:
            await self.put(writes[0].stream_id, self.intruders.pop(0))
        return await super().append_streams(writes)

    async def seats(self, stream_id: str) -> list[str]:
        return [e.data["seat"] for e in await super().read_stream(stream_id)]


def evolve(state: frozenset[str], event: DomainEvent) -> frozenset[str]:
    assert isinstance(event, Taken)
    return state | {event.seat}


def take(seat: str) -> Any:
    def decide(state: frozenset[str]) -> list[DomainEvent]:
        if seat in state:
            raise SeatTaken(seat)
        return [Taken(seat=seat)]

    return decide


MODEL = StreamModel("s", frozenset[str](), evolve)


async def run(store: ContendedStore, decide: Any, attempts: int = 3) -> AppendResult | None:
    return await execute(
        store,
        streams=[MODEL],
        registry=registry,
        decide=lambda states: {"s": decide(states[0])},
        metadata=METADATA,
        attempts=attempts,
    )


async def test_appends_at_the_version_read() -> None:
    store = ContendedStore()
    await run(store, take("a"))
    await run(store, take("b"))
    state, version = await load(
        store, stream_id="s", registry=registry, initial=frozenset[str](), evolve=evolve
    )
    assert state == {"a", "b"}
    assert version == 2


async def test_domain_error_propagates_and_nothing_is_appended() -> None:
    store = ContendedStore()
    await run(store, take("a"))
    with pytest.raises(SeatTaken):
        await run(store, take("a"))
    assert store.appends == 1


async def test_no_events_appends_nothing() -> None:
    store = ContendedStore()
    assert await run(store, lambda state: []) is None
    assert store.appends == 0


async def test_lost_race_is_redecided_on_fresh_state() -> None:
    store = ContendedStore(intruders=[Taken(seat="b")])
    await run(store, take("a"))
    assert await store.seats("s") == ["b", "a"]
    assert store.reads == 2


async def test_conflicting_concurrent_command_is_refused_by_the_rule() -> None:
    store = ContendedStore(intruders=[Taken(seat="a")])
    with pytest.raises(SeatTaken):
        await run(store, take("a"))
    assert await store.seats("s") == ["a"]


async def test_gives_up_after_the_attempts() -> None:
    store = ContendedStore(intruders=[Taken(seat="x"), Taken(seat="y")])
    with pytest.raises(WrongExpectedVersion):
        await run(store, take("a"), attempts=2)
    assert store.appends == 2


async def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        await run(ContendedStore(), take("a"), attempts=0)


async def fold(store: ContendedStore, cache: StateCache | None) -> tuple[frozenset[str], int]:
    return await load(
        store, stream_id="s", registry=registry, initial=frozenset[str](), evolve=evolve,
        cache=cache,
    )  # fmt: skip


async def test_a_cached_state_is_extended_with_what_was_appended_since() -> None:
    store = ContendedStore()
    for seat in "abc":
        await store.put("s", Taken(seat=seat))
    cache = StateCache()
    assert await fold(store, cache) == (frozenset("abc"), 3)
    assert store.events_read == 3
    await store.put("s", Taken(seat="d"))  # another process appended
    assert await fold(store, cache) == (frozenset("abcd"), 4)
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


async def test_the_command_path_answers_what_it_stored_and_keeps_the_state_cached() -> None:
    store = ContendedStore()
    commands = CommandPath(store, registry, StateCache())
    first = await commands.execute_one(MODEL, take("a"), METADATA)
    assert first.model_dump(exclude={"event_ids"}) == {
        "duplicate": False,
        "stream_id": "s",
        "stream_version": 1,
        "event_types": ["test.Taken"],
        "events": [{"seat": "a"}],
        "warnings": [],
    }
    assert len(first.event_ids) == 1
    reads = store.events_read
    assert await commands.state(MODEL) == {"a"}
    assert store.events_read == reads  # the state after the append was cached
    nothing = await commands.execute_one(MODEL, lambda state: [], METADATA)
    assert nothing == CommandAccepted.of(None, stream_id="s")
    assert (nothing.duplicate, nothing.stream_version, nothing.event_ids) == (True, None, [])
