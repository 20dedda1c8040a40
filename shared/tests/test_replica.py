"""Bulk writes of a replica's table against the real PostgreSQL: a batch inserted once
(repeats left alone, or taking the new values), some columns updated by key, and the last
event per key of a batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import ClassVar

import asyncpg
import pytest

from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.events import DomainEvent, EventRegistry
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.pipeline import Delivery
from zhucun.shared.replica import Table, latest
from zhucun.shared.store import ANY_VERSION, StreamWrite
from zhucun.shared.testing import transaction

registry = EventRegistry()


@registry.register
class Moved(DomainEvent):
    event_type: ClassVar[str] = "test.Moved"
    key_field: ClassVar[str] = "thing_id"
    thing_id: str
    place: str


@dataclass(frozen=True)
class Thing:
    thing_id: str
    place: str
    since: date


TABLE = Table(
    '"replica_test".things',
    {"thing_id": "text", "place": "text", "since": "date", "gone_on": "date"},
    key=("thing_id",),
    nullable=frozenset({"gone_on"}),
)


async def rows(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    found = await pool.fetch(f"SELECT * FROM {TABLE.name} ORDER BY thing_id")
    return [tuple(r) for r in found]


@pytest.mark.integration
async def test_inserts_upserts_and_updates_a_batch_in_one_statement_each(
    fresh_pool: asyncpg.Pool,
) -> None:
    day = date(2025, 1, 1)
    async with transaction(fresh_pool) as conn:
        await conn.execute('CREATE SCHEMA "replica_test"')
        await conn.execute(TABLE.create())
        await TABLE.insert_fields(
            conn, [Thing("a", "x", day), Thing("b", "y", day)], omit=["gone_on"]
        )
        # A repeated key is left as it is...
        await TABLE.insert(conn, [("a", "elsewhere", day)], columns=["thing_id", "place", "since"])
        assert await TABLE.insert(conn, [], columns=["thing_id"]) == []
    assert await rows(fresh_pool) == [("a", "x", day, None), ("b", "y", day, None)]
    async with transaction(fresh_pool) as conn:
        # ... or takes the new values; an update by key sets only its columns.
        inserted = await TABLE.insert(
            conn,
            [("b", "z", day), ("c", "w", day)],
            columns=["thing_id", "place", "since"],
            on_conflict="update",
            returning=["thing_id"],
        )
        await TABLE.update(conn, [("a", date(2025, 2, 1)), ("nobody", day)], columns=["gone_on"])
    assert sorted(r["thing_id"] for r in inserted) == ["b", "c"]
    assert await rows(fresh_pool) == [
        ("a", "x", day, date(2025, 2, 1)),
        ("b", "z", day, None),
        ("c", "w", day, None),
    ]


@pytest.mark.unit
async def test_latest_keeps_the_last_event_per_key_in_consumption_order() -> None:
    store = InMemoryEventStore()
    metadata = EventMetadata(occurred_at=datetime(2025, 1, 1, tzinfo=UTC))
    moves = [Moved(thing_id="a", place="x"), Moved(thing_id="b", place="y")]
    moves.append(Moved(thing_id="a", place="z"))
    await store.append_streams(
        [StreamWrite("things", [NewEvent(m, metadata) for m in moves], ANY_VERSION)]
    )
    deliveries = [
        Delivery("t", 0, n, recorded, "/test", recorded.decode(registry))
        for n, recorded in enumerate(await store.read_all())
    ]
    last = latest(deliveries, Moved, lambda e: e.thing_id)
    assert {key: e.place for key, e in last.items()} == {"a": "z", "b": "y"}
    assert latest(deliveries, Thing, lambda t: t.thing_id) == {}
