"""The read side's use cases without HTTP, Kafka or PostgreSQL: the dismissal of a recall
decision on the in-memory event store (its consistency boundary, its day, its refusals),
and the queries of both read models over in-memory stand-ins for the PostgreSQL readers
(who reaches which county's cadres, what a request may ask, what is passed on).

The PostgreSQL readers themselves (``AuditTrailReader``, ``DecisionsReader``) are tested
against the real database by ``test_audit.py`` and ``test_decisions.py``."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from zhucun.contracts.decisions.events import (
    RecallDismissed,
    RecallExecuted,
    RecallRecommended,
    decision_stream,
    registry,
)
from zhucun.projections.application import (
    CadreFileQueries,
    DecisionQueries,
    DismissRecallDecision,
    FileQuery,
    ReadSide,
    decision_model,
)
from zhucun.projections.audit import FileEntry, FilePage
from zhucun.projections.decisions.queries import (
    CadreDecisions,
    DecisionFilter,
    EntryFilter,
    PoolEntry,
    PoolName,
    RecallDecision,
)
from zhucun.projections.domain.errors import (
    AlreadyDismissed,
    AlreadyExecuted,
    InvalidCursor,
    InvalidPeriod,
    UnknownCadre,
    UnknownCadreFile,
    UnknownDecision,
)
from zhucun.projections.sources import SHANGHAI
from zhucun.shared.auth import Jurisdiction, Principal, Role
from zhucun.shared.commands import CommandPath, StateCache
from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.pages import Page, paginate
from zhucun.shared.problems import PROBLEM_TYPE_BASE, rule_problem
from zhucun.shared.rules import OutsideJurisdiction
from zhucun.shared.store import NO_STREAM, AppendResult, StreamWrite

pytestmark = pytest.mark.unit

COUNTY, OTHER = "530102", "530103"
ADMIN = Principal(subject="a1", role=Role.ORG_ADMIN, jurisdiction=Jurisdiction(county=COUNTY))
OUTSIDER = Principal(subject="a2", role=Role.ORG_ADMIN, jurisdiction=Jurisdiction(county=OTHER))
AUDITOR = Principal(subject="au", role=Role.AUDITOR)
COUNTY_AUDITOR = Principal(
    subject="au2", role=Role.AUDITOR, jurisdiction=Jurisdiction(county=COUNTY)
)
SERVICE = Principal(subject="svc", role=Role.SERVICE)
#: 17:30 UTC on 31 March is 1 April in China: the day a dismissal is dated.
LATE_EVENING = datetime(2025, 3, 31, 17, 30, tzinfo=UTC)


def metadata(at: datetime = LATE_EVENING) -> EventMetadata:
    return EventMetadata(occurred_at=at, actor="a1:org_admin")


def forbidden(error: pytest.ExceptionInfo[OutsideJurisdiction]) -> bool:
    """The jurisdiction refusal every service answers alike: 403, unprefixed."""
    problem = rule_problem(error.value, service="projections")
    return (problem.status, problem.type) == (403, PROBLEM_TYPE_BASE + "forbidden-jurisdiction")


# --- in-memory stand-ins for the PostgreSQL readers --------------------------------------------


def recall_decision(decision_id: str, cadre_id: str, county: str | None) -> RecallDecision:
    return RecallDecision(
        decision_id=decision_id,
        cadre_id=cadre_id,
        county=county,
        rule=1,
        key="2025-02",
        triggered_on=date(2025, 2, 28),
        reason="2 consecutive closed months short",
        policy_version="reference-2021",
        status="recommended",
        status_on=None,
        status_event_id=None,
        dismissal_reason=None,
        evidence_event_ids=[],
    )


def pool_entry(cadre_id: str, county: str, pool: PoolName = "reserve") -> PoolEntry:
    return PoolEntry(
        entry_id=f"{pool}-{cadre_id}",
        cadre_id=cadre_id,
        pool=pool,
        key="2025",
        county=county,
        qualified_on=date(2025, 12, 31),
        reason="excellent",
        policy_version="reference-2021",
        status="active",
        status_on=None,
        status_reason=None,
        status_evidence=None,
        evidence_event_ids=[],
    )


@dataclass
class FakeDecisions:
    """The decisions read model in memory (``DecisionsReadModel``)."""

    decisions: list[RecallDecision] = field(default_factory=list)
    entries: list[PoolEntry] = field(default_factory=list)
    counties: dict[str, str] = field(default_factory=dict)
    asked: list[tuple[Any, ...]] = field(default_factory=list)

    async def decision(self, decision_id: str) -> RecallDecision | None:
        return next((d for d in self.decisions if d.decision_id == decision_id), None)

    async def county_decisions(
        self, county: str, status: DecisionFilter, limit: int, after: str | None
    ) -> Page[RecallDecision]:
        self.asked.append(("county_decisions", county, status, limit, after))
        found = [d for d in self.decisions if d.county == county]
        chosen = [d for d in found if status in ("all", d.status)]
        return paginate(chosen, lambda d: d.decision_id, after, limit)

    async def cadre(self, cadre_id: str) -> CadreDecisions:
        return CadreDecisions(
            cadre_id=cadre_id,
            county=self.counties.get(cadre_id),
            decisions=[d for d in self.decisions if d.cadre_id == cadre_id],
            pool_entries=[e for e in self.entries if e.cadre_id == cadre_id],
        )

    async def pool_entries(
        self, county: str, pool: PoolName, status: EntryFilter, limit: int, after: str | None
    ) -> Page[PoolEntry]:
        self.asked.append(("pool_entries", county, pool, status, limit, after))
        found = [e for e in self.entries if (e.county, e.pool) == (county, pool)]
        chosen = [e for e in found if status in ("all", e.status)]
        return paginate(chosen, lambda e: e.entry_id, after, limit)


def file_entry(cadre_id: str, n: int, county: str = COUNTY) -> FileEntry:
    moment = datetime(2025, 4, 1, tzinfo=UTC) + timedelta(days=n)
    return FileEntry(
        cadre_id=cadre_id,
        source="attendance",
        topic="attendance.events.v1",
        partition=0,
        offset=n,
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{cadre_id}/{n}"),
        event_type="attendance.CheckInRecorded",
        schema_version=1,
        stream_id=f"cadre-{cadre_id}",
        stream_version=n,
        global_position=n,
        occurred_at=moment,
        recorded_at=moment,
        actor="c:cadre",
        correlation_id=uuid.uuid5(uuid.NAMESPACE_URL, f"c/{n}"),
        causation_id=None,
        summary=f"Checked in, day {n}",
        hash="f" * 64,
        data={"cadre_id": cadre_id, "county": county, "n": n},
    )


@dataclass
class FakeFiles:
    """The audit trail in memory (``CadreFiles``): each cadre's entries, in file order."""

    files: dict[str, list[FileEntry]] = field(default_factory=dict)
    asked: list[dict[str, Any]] = field(default_factory=list)

    async def presence(self, cadre_id: str, county: str | None) -> tuple[bool, bool]:
        entries = self.files.get(cadre_id, [])
        return bool(entries), any(e.data.get("county") == county for e in entries)

    async def cadre_file(
        self,
        cadre_id: str,
        *,
        since: date | None = None,
        until: date | None = None,
        types: Sequence[str] | None = None,
        as_of: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> FilePage:
        self.asked.append(
            {"since": since, "until": until, "types": types, "as_of": as_of, "after": after}
        )
        if after is not None and after != "page-2":
            raise InvalidCursor()
        entries = [e for e in self.files[cadre_id] if as_of is None or e.recorded_at <= as_of]
        return FilePage(items=entries[:limit], next_cursor=None)

    async def export_rows(
        self, cadre_id: str, as_of: datetime | None = None
    ) -> AsyncIterator[FileEntry]:
        for entry in self.files[cadre_id]:
            if as_of is None or entry.recorded_at <= as_of:
                yield entry


# --- dismissing a recall decision --------------------------------------------------------------

DECISION, CADRE = "d-1", "c-1"


async def recommend(store: InMemoryEventStore, decision_id: str = DECISION) -> None:
    event = RecallRecommended(
        decision_id=decision_id,
        cadre_id=CADRE,
        rule=1,
        rule_name="attendance",
        key="2025-02",
        triggered_on=date(2025, 2, 28),
        reason="short",
        evidence=["e1", "e2"],
        policy_version="reference-2021",
    )
    await store.append(
        decision_stream(decision_id),
        [NewEvent(event, metadata(datetime(2025, 3, 1, tzinfo=UTC)))],
        expected_version=NO_STREAM,
    )


@dataclass
class Dismissal:
    store: InMemoryEventStore
    read_model: FakeDecisions
    dismiss: DismissRecallDecision

    async def stream(self, decision_id: str = DECISION) -> list[Any]:
        recorded = await self.store.read_stream(decision_stream(decision_id))
        return [r.decode(registry) for r in recorded]


@pytest.fixture
async def dismissal() -> Dismissal:
    store = InMemoryEventStore()
    await recommend(store)
    read_model = FakeDecisions(decisions=[recall_decision(DECISION, CADRE, COUNTY)])
    commands = CommandPath(store, registry, StateCache())
    return Dismissal(store, read_model, DismissRecallDecision(read_model, commands))


async def test_a_dismissal_appends_to_the_decision_stream_dated_in_china(
    dismissal: Dismissal,
) -> None:
    accepted = await dismissal.dismiss(ADMIN, DECISION, "hospitalised", metadata())

    assert accepted.duplicate is False
    assert (accepted.decision_id, accepted.status) == (DECISION, "dismissed")
    assert accepted.stream_id == decision_stream(DECISION)
    assert accepted.stream_version == 2  # right after the recommendation (version 1)
    assert accepted.event_types == [RecallDismissed.event_type]
    assert accepted.events == [
        {
            "decision_id": DECISION,
            "cadre_id": CADRE,
            "dismissed_on": "2025-04-01",
            "reason": "hospitalised",
        }
    ]
    *_, dismissed = await dismissal.stream()
    assert dismissed == RecallDismissed(
        decision_id=DECISION, cadre_id=CADRE, dismissed_on=date(2025, 4, 1), reason="hospitalised"
    )
    (recorded,) = await dismissal.store.read_stream(decision_stream(DECISION), from_version=2)
    assert recorded.actor == "a1:org_admin"
    assert accepted.event_ids == [recorded.event_id]


async def test_the_same_dismissal_again_is_a_duplicate_another_reason_is_refused(
    dismissal: Dismissal,
) -> None:
    await dismissal.dismiss(ADMIN, DECISION, "hospitalised", metadata())

    again = await dismissal.dismiss(ADMIN, DECISION, "hospitalised", metadata())
    assert again.duplicate is True
    assert (again.event_ids, again.stream_version) == ([], None)
    with pytest.raises(AlreadyDismissed) as refused:
        await dismissal.dismiss(ADMIN, DECISION, "changed mind", metadata())
    assert (refused.value.code, refused.value.kind) == ("already_dismissed", "conflict")
    assert refused.value.details() == {"decision_id": DECISION}
    assert len(await dismissal.stream()) == 2


async def test_an_executed_decision_is_not_dismissed(dismissal: Dismissal) -> None:
    executed = RecallExecuted(
        decision_id=DECISION,
        cadre_id=CADRE,
        assignment_id="a-1",
        recalled_on=date(2025, 3, 5),
        recall_event_id="r-1",
    )
    await dismissal.store.append(
        decision_stream(DECISION), [NewEvent(executed, metadata())], expected_version=1
    )

    with pytest.raises(AlreadyExecuted) as refused:
        await dismissal.dismiss(ADMIN, DECISION, "too late", metadata())
    assert (refused.value.code, refused.value.kind) == ("already_executed", "conflict")
    assert len(await dismissal.stream()) == 2


async def test_the_decision_decides_not_the_read_model(dismissal: Dismissal) -> None:
    """The read model may know a decision the store does not hold (a what-if table, a
    lagging store): the decision's own stream is what the dismissal decides on."""
    dismissal.read_model.decisions.append(recall_decision("d-2", CADRE, COUNTY))

    with pytest.raises(UnknownDecision) as refused:
        await dismissal.dismiss(ADMIN, "d-2", "x", metadata())
    assert (refused.value.code, refused.value.kind) == ("unknown_decision", "not_found")
    assert await dismissal.stream("d-2") == []


async def test_a_decision_outside_the_read_model_or_the_county_is_refused_unwritten(
    dismissal: Dismissal,
) -> None:
    await recommend(dismissal.store, "d-3")  # in the store, not (yet) in the read model
    with pytest.raises(UnknownDecision):
        await dismissal.dismiss(ADMIN, "d-3", "x", metadata())
    with pytest.raises(OutsideJurisdiction) as outside:
        await dismissal.dismiss(OUTSIDER, DECISION, "x", metadata())
    assert forbidden(outside)
    # A cadre whose county is not known yet is nobody's county's to dismiss.
    dismissal.read_model.decisions[0] = recall_decision(DECISION, CADRE, None)
    with pytest.raises(OutsideJurisdiction) as unplaced:
        await dismissal.dismiss(ADMIN, DECISION, "x", metadata())
    assert forbidden(unplaced)
    assert len(await dismissal.stream()) == 1
    assert len(await dismissal.stream("d-3")) == 1


class RacingStore(InMemoryEventStore):
    """Dispatch's recall lands (as ``RecallExecuted``) between the dismissal's read and its
    append: the first append finds the stream moved on."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.raced = False

    async def append_streams(self, writes: Sequence[StreamWrite]) -> AppendResult:
        if self.armed and not self.raced:
            self.raced = True
            executed = RecallExecuted(
                decision_id=DECISION,
                cadre_id=CADRE,
                assignment_id="a-1",
                recalled_on=date(2025, 3, 5),
                recall_event_id="r-1",
            )
            await super().append_streams(
                [StreamWrite(decision_stream(DECISION), [NewEvent(executed, metadata())], 1)]
            )
        return await super().append_streams(writes)


async def test_a_dismissal_racing_the_recall_is_decided_again_and_refused() -> None:
    store = RacingStore()
    await recommend(store)
    store.armed = True
    read_model = FakeDecisions(decisions=[recall_decision(DECISION, CADRE, COUNTY)])
    dismiss = DismissRecallDecision(read_model, CommandPath(store, registry, StateCache()))

    with pytest.raises(AlreadyExecuted):
        await dismiss(ADMIN, DECISION, "hospitalised", metadata())
    assert store.raced
    types = [r.event_type for r in await store.read_stream(decision_stream(DECISION))]
    assert types == [RecallRecommended.event_type, RecallExecuted.event_type]


async def test_a_cached_decision_state_is_extended_with_what_the_projection_appended() -> None:
    """The projection appends to the decisions' store behind the command path's back (dispatch's
    recall executes a decision): a state cached while the decision was open is extended with
    those events before the dismissal decides."""
    store = InMemoryEventStore()
    await recommend(store)
    read_model = FakeDecisions(decisions=[recall_decision(DECISION, CADRE, COUNTY)])
    cache = StateCache()
    commands = CommandPath(store, registry, cache)
    assert (await commands.state(decision_model(DECISION))).status == "recommended"
    executed = RecallExecuted(
        decision_id=DECISION,
        cadre_id=CADRE,
        assignment_id="a-1",
        recalled_on=date(2025, 3, 5),
        recall_event_id="r-1",
    )
    await store.append(
        decision_stream(DECISION), [NewEvent(executed, metadata())], expected_version=1
    )

    with pytest.raises(AlreadyExecuted):
        await DismissRecallDecision(read_model, commands)(ADMIN, DECISION, "x", metadata())
    assert cache.hits == 1


# --- reading recall decisions and pools --------------------------------------------------------


@pytest.fixture
def read_model() -> FakeDecisions:
    return FakeDecisions(
        decisions=[
            recall_decision("d-1", "c-1", COUNTY),
            recall_decision("d-2", "c-2", OTHER),
            recall_decision("d-3", "c-3", None),
        ],
        entries=[pool_entry("c-1", COUNTY), pool_entry("c-2", OTHER, "promote")],
        counties={"c-1": COUNTY, "c-2": OTHER, "c-4": COUNTY},
    )


async def test_county_lists_are_read_within_the_principals_county(
    read_model: FakeDecisions,
) -> None:
    queries = DecisionQueries(read_model)

    listed = await queries.county_decisions(ADMIN, COUNTY, "recommended", 50)
    assert [d.decision_id for d in listed.items] == ["d-1"]
    pool = await queries.pool(AUDITOR, OTHER, "promote", "all", 7)
    assert [e.cadre_id for e in pool.items] == ["c-2"]
    assert read_model.asked == [
        ("county_decisions", COUNTY, "recommended", 50, None),
        ("pool_entries", OTHER, "promote", "all", 7, None),
    ]
    for read in (
        queries.county_decisions(ADMIN, OTHER, "all", 5),
        queries.pool(COUNTY_AUDITOR, OTHER, "reserve", "active", 5),
    ):
        with pytest.raises(OutsideJurisdiction) as refused:
            await read
        assert forbidden(refused)
    assert len(read_model.asked) == 2  # refused before anything was read


async def test_a_cadre_and_a_decision_are_read_within_the_principals_county(
    read_model: FakeDecisions,
) -> None:
    queries = DecisionQueries(read_model)

    mine = await queries.cadre(ADMIN, "c-1")
    assert (mine.county, [d.decision_id for d in mine.decisions]) == (COUNTY, ["d-1"])
    assert [e.pool for e in mine.pool_entries] == ["reserve"]
    assert (await queries.cadre(ADMIN, "c-4")).decisions == []  # known, nothing decided
    assert (await queries.decision(AUDITOR, "d-2")).cadre_id == "c-2"
    assert (await queries.decision(SERVICE, "d-3")).county is None
    with pytest.raises(UnknownCadre) as unknown:
        await queries.cadre(AUDITOR, "nobody")
    assert (unknown.value.code, unknown.value.namespace) == ("unknown_cadre", "decisions")
    with pytest.raises(UnknownDecision):
        await queries.decision(AUDITOR, "nope")
    for read in (
        queries.cadre(ADMIN, "c-2"),
        queries.decision(ADMIN, "d-2"),
        # A cadre whose county is not known yet lies in no county.
        queries.cadre(COUNTY_AUDITOR, "c-3"),
        queries.decision(ADMIN, "d-3"),
    ):
        with pytest.raises(OutsideJurisdiction) as refused:
            await read
        assert forbidden(refused)


# --- reading and exporting a cadre's file ----------------------------------------------------


@pytest.fixture
def files() -> FakeFiles:
    return FakeFiles(
        files={
            "c-1": [file_entry("c-1", n) for n in range(3)],
            "c-2": [file_entry("c-2", 0, county=OTHER), file_entry("c-2", 1, county=COUNTY)],
            "c-3": [file_entry("c-3", 0, county=OTHER)],
        }
    )


async def test_a_file_is_read_with_its_filters_and_as_of_a_day_in_china(files: FakeFiles) -> None:
    queries = CadreFileQueries(files)

    page = await queries.read(
        AUDITOR,
        "c-1",
        FileQuery(
            since=date(2025, 4, 1),
            until=date(2025, 4, 2),
            types=["attendance.CheckInRecorded"],
            as_of=date(2025, 4, 2),
            limit=10,
            cursor="page-2",
        ),
    )
    as_of = files.asked[0]["as_of"]
    assert as_of == datetime(2025, 4, 3, tzinfo=SHANGHAI) - timedelta(microseconds=1)
    assert files.asked[0] | {"as_of": None} == {
        "since": date(2025, 4, 1),
        "until": date(2025, 4, 2),
        "types": ["attendance.CheckInRecorded"],
        "as_of": None,
        "after": "page-2",
    }
    # Entries recorded by the end of 2 April in China (16:00 UTC): those of 1 and 2 April.
    assert [e.offset for e in page.items] == [0, 1]
    instant = datetime(2025, 4, 1, 12, tzinfo=UTC)
    await queries.read(AUDITOR, "c-1", FileQuery(as_of=instant))
    assert files.asked[1]["as_of"] == instant


async def test_a_file_refuses_a_backward_period_an_alien_cursor_and_an_unknown_cadre(
    files: FakeFiles,
) -> None:
    queries = CadreFileQueries(files)

    with pytest.raises(InvalidPeriod) as backwards:
        # Refused before anything is read, even for a cadre without a file.
        await queries.read(
            AUDITOR, "nobody", FileQuery(since=date(2025, 5, 2), until=date(2025, 5, 1))
        )
    assert (backwards.value.code, backwards.value.kind) == ("invalid_period", "invalid")
    assert backwards.value.details() == {"since": "2025-05-02", "until": "2025-05-01"}
    with pytest.raises(InvalidCursor) as alien:
        await queries.read(AUDITOR, "c-1", FileQuery(cursor="nonsense"))
    assert (alien.value.namespace, alien.value.code) == ("audit", "invalid_cursor")
    for attempt in (
        queries.read(AUDITOR, "nobody", FileQuery()),
        queries.export(AUDITOR, "nobody", "json"),
    ):
        with pytest.raises(UnknownCadreFile) as unknown:
            await attempt
        assert (unknown.value.namespace, unknown.value.code) == ("audit", "unknown_cadre")
        assert unknown.value.kind == "not_found"


async def test_a_file_is_read_where_one_of_its_events_names_the_principals_county(
    files: FakeFiles,
) -> None:
    queries = CadreFileQueries(files)

    for principal, cadre_id in [
        (ADMIN, "c-1"),
        (ADMIN, "c-2"),  # one event of two names the county: enough
        (COUNTY_AUDITOR, "c-2"),
        (AUDITOR, "c-3"),
        (SERVICE, "c-3"),
    ]:
        assert (await queries.read(principal, cadre_id, FileQuery())).items
    for principal, cadre_id in [(ADMIN, "c-3"), (COUNTY_AUDITOR, "c-3"), (OUTSIDER, "c-1")]:
        for attempt in (
            queries.read(principal, cadre_id, FileQuery()),
            queries.export(principal, cadre_id, "csv"),
        ):
            with pytest.raises(OutsideJurisdiction) as refused:
                await attempt
            assert forbidden(refused)


async def test_a_file_exports_as_json_and_csv_under_a_safe_name(files: FakeFiles) -> None:
    files.files["c/1 ä"] = files.files["c-1"]
    queries = CadreFileQueries(files)

    as_json = await queries.export(AUDITOR, "c/1 ä", "json")
    assert (as_json.filename, as_json.format) == ("file-c_1__.json", "json")
    exported = json.loads("".join([chunk async for chunk in as_json.chunks]))
    assert [e["offset"] for e in exported] == [0, 1, 2]
    as_csv = await queries.export(AUDITOR, "c-1", "csv", as_of=date(2025, 4, 1))
    assert as_csv.filename == "file-c-1.csv"
    lines = "".join([chunk async for chunk in as_csv.chunks]).splitlines()
    assert lines[0].startswith("cadre_id,source,topic,")
    assert len(lines) == 2  # the header and the entry recorded by the end of 1 April


def test_the_read_side_wires_each_use_case_to_what_it_reads(files: FakeFiles) -> None:
    read_model = FakeDecisions()
    commands = CommandPath(InMemoryEventStore(), registry, StateCache())
    side = ReadSide.over(files, read_model, commands)
    assert side.files.files is files
    assert side.decisions.decisions is read_model
    assert (side.dismiss.decisions, side.dismiss.commands) == (read_model, commands)
