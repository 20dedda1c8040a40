"""The event-store contract: one suite, two backends.

Every test runs against the PostgreSQL store (a real server: ``integration``) and the
in-memory one (``unit``), the way pyeventsourcing runs its recorder tests, so application
handlers tested on the in-memory store see the behaviour production has. Tampering is done
the way each backend allows it (plain SQL as a superuser; editing the list).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import uuid4

import asyncpg
import pytest

from zhucun.shared.envelope import EventMetadata, NewEvent, to_kafka
from zhucun.shared.events import DomainEvent, EventRegistry
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.store import (
    ANY_VERSION,
    MAX_EVENT_BYTES,
    NO_STREAM,
    EventIdConflict,
    EventStore,
    EventTooLarge,
    PostgresEventStore,
    StreamWrite,
    WrongExpectedVersion,
    create_pool,
    kafka_record_bytes,
    record_bytes,
)

registry = EventRegistry()


@registry.register
class PresenceConfirmed(DomainEvent):
    event_type: ClassVar[str] = "test.PresenceConfirmed"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    day: int
    note: str = "在村"


def new(cadre_id: str, day: int, **kw: object) -> NewEvent:
    meta = EventMetadata(occurred_at=datetime.now(UTC), actor="tester:service")
    return NewEvent(event=PresenceConfirmed(cadre_id=cadre_id, day=day, **kw), metadata=meta)


@dataclass
class Backend:
    """A store and the ways a superuser could tamper with what it holds."""

    store: EventStore
    #: Change an event's ``data[note]`` without fixing its hash: (stream, version, note).
    alter: Callable[[str, int, str], Awaitable[None]]
    #: Delete the event at a global position.
    delete: Callable[[int], Awaitable[None]]


async def _postgres(dsn: str) -> AsyncIterator[Backend]:
    pool = await create_pool(dsn, max_size=30)
    store = PostgresEventStore(pool, schema="dispatch")
    await store.migrate()

    async def as_superuser(sql: str, *args: Any) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            # The append-only trigger refuses an ordinary UPDATE or DELETE...
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(sql, *args)
            # ...but a superuser can bypass triggers; the chain still gives it away.
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    async def alter(stream_id: str, version: int, note: str) -> None:
        await as_superuser(
            "UPDATE dispatch.events SET data = jsonb_set(data, '{note}', to_jsonb($3::text))"
            " WHERE stream_id = $1 AND stream_version = $2",
            stream_id,
            version,
            note,
        )

    async def delete(position: int) -> None:
        await as_superuser("DELETE FROM dispatch.events WHERE global_position = $1", position)

    yield Backend(store, alter, delete)
    await pool.close()


def _memory() -> Backend:
    store = InMemoryEventStore()
    events: list[Any] = store._events

    async def alter(stream_id: str, version: int, note: str) -> None:
        for n, event in enumerate(events):
            if (event.stream_id, event.stream_version) == (stream_id, version):
                events[n] = event.model_copy(update={"data": {**event.data, "note": note}})

    async def delete(position: int) -> None:
        del events[position - 1]

    return Backend(store, alter, delete)


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.integration),
        pytest.param("memory", marks=pytest.mark.unit),
    ]
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield _memory()
        return
    async for backend in _postgres(request.getfixturevalue("fresh_database")):
        yield backend


@pytest.fixture
def store(backend: Backend) -> EventStore:
    return backend.store


async def test_append_and_read_back(store: EventStore) -> None:
    first = await store.append("cadre-1", [new("c1", 1), new("c1", 2)], expected_version=NO_STREAM)
    second = await store.append("village-9", [new("c2", 1)], expected_version=NO_STREAM)
    third = await store.append("cadre-1", [new("c1", 3)], expected_version=2)

    assert [e.stream_version for e in first.events] == [1, 2]
    assert third.stream_version == 3
    assert [e.global_position for e in (*first.events, *second.events, *third.events)] == [
        1,
        2,
        3,
        4,
    ]
    stream = await store.read_stream("cadre-1")
    assert [e.decode(registry) for e in stream] == [
        PresenceConfirmed(cadre_id="c1", day=d) for d in (1, 2, 3)
    ]
    assert stream[0].key == "c1"
    assert stream[0].actor == "tester:service"
    assert stream == [*first.events, *third.events]  # what append returned is what is stored
    assert [e.global_position for e in await store.read_all(after=2)] == [3, 4]
    assert await store.head_position() == 4
    assert await store.stream_version("cadre-1") == 3


async def test_wrong_expected_version_stores_nothing(store: EventStore) -> None:
    await store.append("cadre-1", [new("c1", 1)], expected_version=NO_STREAM)
    with pytest.raises(WrongExpectedVersion) as err:
        await store.append("cadre-1", [new("c1", 2), new("c1", 3)], expected_version=NO_STREAM)
    assert (err.value.expected, err.value.actual) == (0, 1)
    assert await store.head_position() == 1
    any_version = await store.append("cadre-1", [new("c1", 4)], expected_version=ANY_VERSION)
    assert any_version.stream_version == 2


async def test_twenty_concurrent_appends_at_the_same_version_one_wins(
    store: EventStore,
) -> None:
    await store.append("cadre-1", [new("c1", 0)], expected_version=NO_STREAM)

    async def attempt(i: int) -> int | Exception:
        try:
            result = await store.append("cadre-1", [new("c1", 100 + i)], expected_version=1)
            return result.stream_version
        except WrongExpectedVersion as exc:
            return exc

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))
    winners = [o for o in outcomes if isinstance(o, int)]
    assert winners == [2]
    assert all(isinstance(o, WrongExpectedVersion) for o in outcomes if not isinstance(o, int))
    assert [e.stream_version for e in await store.read_stream("cadre-1")] == [1, 2]


async def test_append_streams_writes_several_streams_at_once(store: EventStore) -> None:
    await store.append("cadre-1", [new("c1", 1)], expected_version=NO_STREAM)
    result = await store.append_streams(
        [
            StreamWrite("month-1", [new("c1", 2), new("c1", 3)], NO_STREAM),
            StreamWrite("cadre-1", [new("c1", 4)], 1),
        ]
    )
    assert [(e.stream_id, e.stream_version, e.global_position) for e in result.events] == [
        ("month-1", 1, 2),
        ("month-1", 2, 3),
        ("cadre-1", 2, 4),
    ]
    chain = await store.read_stream("cadre-1")
    assert chain[1].prev_hash == chain[0].hash
    assert (await store.verify()).ok


async def test_a_guard_refuses_the_whole_append_when_its_stream_moved(
    store: EventStore,
) -> None:
    await store.append("leave-1", [new("c1", 1)], expected_version=NO_STREAM)
    # The decision read leave-1 at version 1; someone appended to it since.
    await store.append("leave-1", [new("c1", 2)], expected_version=1)
    with pytest.raises(WrongExpectedVersion) as err:
        await store.append_streams(
            [StreamWrite("month-1", [new("c1", 3)], NO_STREAM), StreamWrite("leave-1", [], 1)]
        )
    assert (err.value.stream_id, err.value.expected, err.value.actual) == ("leave-1", 1, 2)
    assert await store.stream_version("month-1") == 0
    ok = await store.append_streams(
        [StreamWrite("month-1", [new("c1", 3)], NO_STREAM), StreamWrite("leave-1", [], 2)]
    )
    assert [e.stream_id for e in ok.events] == ["month-1"]
    with pytest.raises(ValueError, match="at least one event"):
        await store.append_streams([StreamWrite("leave-1", [], 2)])
    with pytest.raises(ValueError, match="twice"):
        await store.append_streams(
            [StreamWrite("a", [new("c1", 1)], ANY_VERSION), StreamWrite("a", [], 0)]
        )


async def test_reappending_the_same_event_ids_is_a_no_op(store: EventStore) -> None:
    batch = [new("c1", 1), new("c1", 2)]
    first = await store.append("cadre-1", batch, expected_version=NO_STREAM)
    # A client that timed out retries the same command with the same ids and version.
    again = await store.append("cadre-1", batch, expected_version=NO_STREAM)
    assert again.duplicate
    assert not first.duplicate
    assert again.events == first.events
    assert await store.head_position() == 2


async def test_same_event_id_with_other_content_is_refused(store: EventStore) -> None:
    original = new("c1", 1)
    await store.append("cadre-1", [original], expected_version=NO_STREAM)
    forged = NewEvent(
        event=PresenceConfirmed(cadre_id="c1", day=2),
        metadata=original.metadata,
        event_id=original.event_id,
    )
    with pytest.raises(EventIdConflict, match="different content"):
        await store.append("cadre-1", [forged], expected_version=ANY_VERSION)
    with pytest.raises(EventIdConflict, match="part of this batch"):
        await store.append("cadre-1", [original, new("c1", 3)], expected_version=ANY_VERSION)
    with pytest.raises(EventIdConflict, match="twice"):
        await store.append("cadre-1", [original, original], expected_version=ANY_VERSION)
    assert await store.head_position() == 1


def sized(cadre_id: str, record_size: int) -> NewEvent:
    """An event whose Kafka record is ``record_size`` bytes, as the store measures it."""
    event = new(cadre_id, 1, note="")
    padding = record_size - kafka_record_bytes("cadre-big", event, event.event.to_data())
    padded = new(cadre_id, 1, note="x" * padding)
    assert kafka_record_bytes("cadre-big", padded, padded.event.to_data()) == record_size
    return padded


async def test_an_event_above_the_size_limit_refuses_the_whole_append(store: EventStore) -> None:
    await store.append("cadre-1", [new("c1", 1)], expected_version=NO_STREAM)
    too_large = sized("c1", MAX_EVENT_BYTES + 1)
    with pytest.raises(EventTooLarge) as refused:
        await store.append_streams(
            [
                StreamWrite("cadre-1", [new("c1", 2)], 1),
                StreamWrite("cadre-big", [new("c1", 3), too_large], NO_STREAM),
            ]
        )
    assert (refused.value.event_type, refused.value.size, refused.value.limit) == (
        "test.PresenceConfirmed",
        MAX_EVENT_BYTES + 1,
        MAX_EVENT_BYTES,
    )
    assert f"{MAX_EVENT_BYTES + 1} bytes" in str(refused.value)
    # Atomic: nothing of the append is stored, not even the small events before it.
    assert await store.head_position() == 1
    assert await store.stream_version("cadre-1") == 1
    assert await store.stream_version("cadre-big") == 0
    # At the limit exactly, it is stored.
    at_limit = await store.append("cadre-big", [sized("c1", MAX_EVENT_BYTES)], expected_version=0)
    assert at_limit.last_position == 2
    assert (await store.verify()).ok


async def test_the_measured_size_is_never_below_the_record_the_relay_publishes(
    store: EventStore,
) -> None:
    """``kafka_record_bytes`` (the cheap measure) bounds ``to_kafka``'s record from above,
    by a few bytes: ``ce_source`` is the relay's (the limit's margin covers it)."""
    plain = NewEvent(
        event=PresenceConfirmed(cadre_id="c1", day=1),
        metadata=EventMetadata(occurred_at=datetime.now(UTC)),
    )
    full = NewEvent(
        event=PresenceConfirmed(cadre_id="村-1" * 30, day=7, note='驻村 "记录"\n' * 50),
        metadata=EventMetadata(
            occurred_at=datetime.now(UTC), causation_id=uuid4(), actor="县管理员:org_admin"
        ),
    )
    for stream_id, event in (("cadre-1", plain), ("cadre-村" * 20, full)):
        (stored,) = (await store.append(stream_id, [event], expected_version=NO_STREAM)).events
        exact = record_bytes(to_kafka(stored, source=""))
        measured = kafka_record_bytes(stream_id, event, event.event.to_data())
        assert exact <= measured <= exact + 100, (exact, measured)


async def test_hash_chain_detects_an_altered_event(backend: Backend) -> None:
    store = backend.store
    for n in range(3):
        await store.append(f"cadre-{n}", [new(f"c{n}", d) for d in range(4)], expected_version=0)
    clean = await store.verify()
    assert clean.ok
    assert clean.events_checked == 12
    assert clean.streams_checked == 3

    await backend.alter("cadre-1", 3, "不在村")

    report = await store.verify()
    assert report.first_broken is not None
    assert (report.first_broken.stream_id, report.first_broken.stream_version) == ("cadre-1", 3)
    assert "altered" in report.first_broken.reason


async def test_hash_chain_detects_a_deleted_event(backend: Backend) -> None:
    store = backend.store
    await store.append("cadre-1", [new("c1", d) for d in range(3)], expected_version=0)
    await store.append("cadre-2", [new("c2", d) for d in range(3)], expected_version=0)
    await backend.delete(2)
    report = await store.verify()
    assert report.first_broken is not None
    assert report.first_broken.global_position == 3
    assert "missing" in report.first_broken.reason


async def test_a_tailing_reader_never_skips_an_event_under_concurrent_writers(
    store: EventStore,
) -> None:
    writers, appends_per_writer = 8, 40
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for i in range(appends_per_writer):
            size = random.randint(1, 5)
            batch = [new(f"c{w}", i * 10 + k) for k in range(size)]
            await store.append(f"cadre-{w}-{uuid4()}", batch, expected_version=NO_STREAM)
            await asyncio.sleep(random.random() / 500)

    seen: list[int] = []

    async def reader() -> None:
        cursor = 0
        while True:
            finished = done.is_set()  # read once more after the writers finished
            batch = await store.read_all(after=cursor, limit=17)
            for event in batch:
                # A skipped event would show up here as a jump past cursor + 1.
                assert event.global_position == cursor + 1, (cursor, event.global_position)
                cursor = event.global_position
                seen.append(cursor)
            if finished and not batch:
                return
            if not batch:
                await asyncio.sleep(0)

    read = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    done.set()
    await asyncio.wait_for(read, timeout=60)

    head = await store.head_position()
    assert seen == list(range(1, head + 1))
    assert (await store.verify()).ok
