"""Assessment's replica of dispatch against the real PostgreSQL: what it keeps of dispatch's
events (assignments, the township of each village) and what the use cases read back, on a
fresh database and on one an earlier, wider version of the replica migrated."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import asyncpg
import pytest

from zhucun.assessment.replicas.dispatch import (
    AssignmentRow,
    DispatchReplica,
    ReplicatedAssignments,
)
from zhucun.contracts.dispatch import SOURCE, TOPIC
from zhucun.contracts.dispatch.events import (
    AssignmentEnded,
    AssignmentKind,
    CadreAssigned,
    EndReason,
    Geofence,
    Role,
    VillageCategory,
    VillageRegistered,
    VillageUpdated,
    registry,
)
from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.events import DomainEvent
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.projection import Delivery
from zhucun.shared.store import ANY_VERSION, StreamWrite
from zhucun.shared.testing import transaction

pytestmark = pytest.mark.integration

SCHEMA = "assessment"
COUNTY = "530102"
FENCE = Geofence(latitude=25.04, longitude=102.71, radius_m=1000)


def village(event: type[VillageRegistered | VillageUpdated], township: str) -> DomainEvent:
    fields = {
        "village_id": "v1",
        "name": "村",
        "township": township,
        "categories": (VillageCategory.KEY_ASSISTANCE,),
        "geofence": FENCE,
        "households": 120,
        "monitored_population": 10,
    }
    if event is VillageRegistered:
        fields["county"] = COUNTY
    return event.model_validate(fields)


def assigned(cadre_id: str, term_start: date) -> CadreAssigned:
    return CadreAssigned(
        assignment_id=f"a-{cadre_id}-{term_start.year}",
        cadre_id=cadre_id,
        team_id="team-1",
        round_id="r",
        county=COUNTY,
        village_id="v1",
        role=Role.MEMBER,
        kind=AssignmentKind.INITIAL,
        term_start=term_start,
        term_end=date(term_start.year + 1, 12, 31),
        policy_version="reference-2021",
    )


async def deliveries(events: Sequence[DomainEvent]) -> list[Delivery]:
    """The events as the projection runtime would deliver them (recorded, then decoded)."""
    store = InMemoryEventStore()
    metadata = EventMetadata(occurred_at=datetime.now(UTC), actor="tester:org_admin")
    await store.append_streams(
        [
            StreamWrite(
                "dispatch-county-530102", [NewEvent(e, metadata) for e in events], ANY_VERSION
            )
        ]
    )
    return [
        Delivery(TOPIC, 0, n, recorded, SOURCE, recorded.decode(registry))
        for n, recorded in enumerate(await store.read_all())
    ]


async def migrate_and_apply(pool: asyncpg.Pool, events: Sequence[DomainEvent]) -> None:
    replica = DispatchReplica(SCHEMA)
    batch = await deliveries(events)
    async with transaction(pool) as conn:
        await replica.migrate(conn)
        await replica.migrate(conn)  # idempotent: every start runs it
        await replica.apply(conn, batch[:2])
    async with transaction(pool) as conn:
        await replica.apply(conn, batch[2:])


HISTORY: list[DomainEvent] = [
    # The assignment first: the village's event may come later (another partition).
    assigned("c1", date(2024, 1, 1)),
    village(VillageRegistered, "t0"),
    village(VillageUpdated, "t1"),
    AssignmentEnded(
        assignment_id="a-c1-2024",
        cadre_id="c1",
        team_id="team-1",
        village_id="v1",
        ended_on=date(2024, 12, 31),
        reason=EndReason.TERM_COMPLETED,
    ),
    assigned("c1", date(2025, 1, 1)),
]


async def test_the_replica_keeps_assignments_and_townships_and_answers_the_use_cases(
    fresh_pool: asyncpg.Pool,
) -> None:
    await migrate_and_apply(fresh_pool, HISTORY)
    reads = ReplicatedAssignments(fresh_pool, SCHEMA)
    first, second = await reads.assignments_of("c1")
    assert first == AssignmentRow(
        assignment_id="a-c1-2024",
        cadre_id="c1",
        team_id="team-1",
        village_id="v1",
        county=COUNTY,
        term_start=date(2024, 1, 1),
        term_end=date(2025, 12, 31),
        ended_on=date(2024, 12, 31),
        township="t1",  # the update's
    )
    assert second.assignment_id == "a-c1-2025"
    assert second.ended_on is None
    overlapping = await reads.assignments_between("c1", date(2025, 3, 1), date(2025, 3, 31))
    assert [r.assignment_id for r in overlapping] == ["a-c1-2025"]
    assert await reads.assignments_between("c1", date(2023, 1, 1), date(2023, 12, 31)) == []
    assert [r.assignment_id for r in await reads.team_assignments("team-1")] == [
        "a-c1-2024",
        "a-c1-2025",
    ]


async def test_the_township_is_unknown_until_the_villages_event_arrives(
    fresh_pool: asyncpg.Pool,
) -> None:
    await migrate_and_apply(fresh_pool, [assigned("c2", date(2025, 1, 1))])
    [row] = await ReplicatedAssignments(fresh_pool, SCHEMA).assignments_of("c2")
    assert row.township is None


async def test_a_database_of_the_earlier_wider_replica_migrates_to_the_narrow_one(
    fresh_pool: asyncpg.Pool,
) -> None:
    # The tables as the copy of attendance's replica created them (geofence, households).
    async with fresh_pool.acquire() as conn:
        await conn.execute(
            f"""
            CREATE SCHEMA "{SCHEMA}";
            CREATE TABLE "{SCHEMA}".replica_villages (
                village_id text PRIMARY KEY, county text NOT NULL, township text NOT NULL,
                latitude double precision NOT NULL, longitude double precision NOT NULL,
                radius_m integer NOT NULL, households integer NOT NULL);
            INSERT INTO "{SCHEMA}".replica_villages VALUES ('v0', '{COUNTY}', 't9', 1, 2, 3, 4);
            CREATE TABLE "{SCHEMA}".replica_assignments (
                assignment_id text PRIMARY KEY, cadre_id text NOT NULL, team_id text NOT NULL,
                village_id text NOT NULL, county text NOT NULL, term_start date NOT NULL,
                term_end date NOT NULL, ended_on date);
            CREATE INDEX replica_assignments_county
                ON "{SCHEMA}".replica_assignments (county, term_start);
            """
        )
    await migrate_and_apply(fresh_pool, HISTORY)
    columns = await fresh_pool.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = 'replica_villages' ORDER BY ordinal_position",
        SCHEMA,
    )
    assert [c["column_name"] for c in columns] == ["village_id", "township"]
    townships = await fresh_pool.fetch(
        f'SELECT village_id, township FROM "{SCHEMA}".replica_villages ORDER BY village_id'
    )
    assert [tuple(r) for r in townships] == [("v0", "t9"), ("v1", "t1")]
    indexes = await fresh_pool.fetch(
        "SELECT indexname FROM pg_indexes WHERE schemaname = $1", SCHEMA
    )
    assert "replica_assignments_county" not in {i["indexname"] for i in indexes}
    assert len(await ReplicatedAssignments(fresh_pool, SCHEMA).assignments_of("c1")) == 2
