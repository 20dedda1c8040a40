"""The dispatch use cases without HTTP, Kafka or PostgreSQL: on the in-memory event store.

What each handler owns: the county stream it decides on and appends to at the version it
read (a concurrent writer makes it decide again, and the rule refuses what conflicts), the
day whose policy pack applies, the jurisdiction of writers and readers, reads through the
state cache, and the refusals with the statuses the edge answers them with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, get_args

import pytest

from zhucun.contracts.dispatch.events import (
    Expertise,
    Geofence,
    HandoverItem,
    Role,
    UnitKind,
    UnitLevel,
    VillageCategory,
    registry,
)
from zhucun.dispatch.application import Dispatch, county_stream
from zhucun.dispatch.domain import (
    AppointTownshipLeader,
    AssignCadre,
    CadreAlreadyAssigned,
    CloseRound,
    CompleteHandoverItem,
    DatesOutOfOrder,
    DeclareVillageNeeds,
    DispatchCommand,
    DuplicateId,
    EndAssignment,
    FormTeam,
    OpenRound,
    RecallCadre,
    RegisterCadre,
    RegisterVillage,
    ReinforceTeam,
    ReplaceCadre,
    RoundNotClosed,
    UnknownCadre,
    UnknownVillage,
    UpdateCadre,
    UpdateVillage,
    stream_id,
)
from zhucun.shared.auth import Jurisdiction, Principal
from zhucun.shared.auth import Role as AccessRole
from zhucun.shared.commands import CommandPath, StateCache
from zhucun.shared.envelope import EventMetadata, RecordedEvent
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.policy import NoPolicyInForce, PolicyBook, PolicyPack, PolicySection
from zhucun.shared.problems import PROBLEM_TYPE_BASE as PROBLEMS
from zhucun.shared.problems import rule_problem
from zhucun.shared.rules import OutsideJurisdiction, RuleViolation
from zhucun.shared.store import NO_STREAM, AppendResult, StreamWrite

pytestmark = pytest.mark.unit

BOOK = PolicyBook.load(Path(__file__).resolve().parents[3] / "policies")
#: Ningyuan (Liangshan, 5134): the liangshan-2025 pack from 2025-01-01, the reference before.
COUNTY = "513427"
STREAM = stream_id(COUNTY)
TODAY = date(2025, 2, 1)
FENCE = Geofence(latitude=27.9, longitude=102.2, radius_m=1500)
METADATA = EventMetadata(occurred_at=datetime(2025, 2, 1, tzinfo=UTC), actor="admin-1:org_admin")

ADMIN = Principal(
    subject="admin-1", role=AccessRole.ORG_ADMIN, jurisdiction=Jurisdiction(county=COUNTY)
)
AUDITOR = Principal(subject="auditor-1", role=AccessRole.AUDITOR)


def township(name: str) -> Principal:
    return Principal(
        subject=f"township-{name}",
        role=AccessRole.TOWNSHIP,
        jurisdiction=Jurisdiction(county=COUNTY, township=name),
    )


# --- stand-ins ------------------------------------------------------------------------------


class SpyPolicies:
    """The policy book, noting the day of every pack asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, date]] = []

    def pack_in_force(
        self, jurisdiction: str, on: date, section: type[PolicySection]
    ) -> PolicyPack:
        self.asked.append((jurisdiction, on))
        return BOOK.pack_in_force(jurisdiction, on, section)


class RecordingStore(InMemoryEventStore):
    """The in-memory store, noting what it was asked; ``before_next_append`` lets another
    writer append just before our next append (a lost race)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, int, int]] = []  # stream, from_version, events returned
        self.writes: list[list[tuple[str, int, int]]] = []  # per append: stream, expected, n
        self.before_next_append: Callable[[], Awaitable[Any]] | None = None

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        events = await super().read_stream(
            stream_id, from_version=from_version, to_version=to_version
        )
        self.reads.append((stream_id, from_version, len(events)))
        return events

    async def append_streams(self, writes: Sequence[StreamWrite]) -> AppendResult:
        self.writes.append([(w.stream_id, w.expected_version, len(w.events)) for w in writes])
        intruder, self.before_next_append = self.before_next_append, None
        if intruder is not None:
            await intruder()
        return await super().append_streams(writes)

    async def types(self, stream: str = STREAM) -> list[str]:
        return [e.event_type for e in await super().read_stream(stream)]


def use_cases(
    store: RecordingStore, policies: SpyPolicies | None = None, today: date = TODAY
) -> Dispatch:
    """The application as one process wires it: a command path with its own state cache."""
    path = CommandPath(store, registry, StateCache())
    return Dispatch(lambda: path, policies or SpyPolicies(), today=lambda: today)


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def policies() -> SpyPolicies:
    return SpyPolicies()


@pytest.fixture
def dispatch(store: RecordingStore, policies: SpyPolicies) -> Dispatch:
    return use_cases(store, policies)


# --- commands -------------------------------------------------------------------------------


def village(village_id: str, township: str = "t1", **extra: Any) -> dict[str, Any]:
    return {
        "village_id": village_id,
        "name": f"{village_id}村",
        "township": township,
        "categories": (),
        "geofence": FENCE,
        "households": 300,
        "monitored_population": 50,
        **extra,
    }


def cadre(cadre_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "cadre_id": cadre_id,
        "sending_unit": f"unit of {cadre_id}",
        "unit_kind": UnitKind.LINE_DEPARTMENT,
        "unit_level": UnitLevel.COUNTY,
        "birth_year": 1985,
        "party_member_since": date(2010, 7, 1),
        "rural_experience_years": 1,
        **extra,
    }


async def register(dispatch: Dispatch, villages: Sequence[str], cadres: Sequence[str]) -> None:
    for village_id in villages:
        new_village = RegisterVillage(**village(village_id), county=COUNTY)
        await dispatch.register_village(ADMIN, COUNTY, new_village, METADATA)
    for cadre_id in cadres:
        new_cadre = RegisterCadre(**cadre(cadre_id), county=COUNTY)
        await dispatch.register_cadre(ADMIN, COUNTY, new_cadre, METADATA)


async def staffed_round(dispatch: Dispatch, opened_on: date = date(2025, 3, 1)) -> None:
    """Village v1 (township t1) with team1 of c1 (first secretary), c2, c3 in open round r1;
    cadres c4, c5 free."""
    await register(dispatch, ["v1"], ["c1", "c2", "c3", "c4", "c5"])
    round_ = OpenRound(round_id="r1", county=COUNTY, name="2025", opened_on=opened_on)
    await dispatch.open_round(ADMIN, COUNTY, round_, METADATA)
    team = FormTeam(team_id="team1", round_id="r1", village_id="v1", formed_on=opened_on)
    await dispatch.form_team(ADMIN, COUNTY, team, METADATA)
    for n, role in [(1, Role.FIRST_SECRETARY), (2, Role.MEMBER), (3, Role.MEMBER)]:
        command = AssignCadre(
            assignment_id=f"a{n}",
            team_id="team1",
            cadre_id=f"c{n}",
            role=role,
            term_start=date(2025, 4, 1),
        )
        await dispatch.assign_cadre(ADMIN, COUNTY, command, METADATA)


# --- consistency boundary -------------------------------------------------------------------


async def test_a_command_is_appended_to_its_county_stream_at_the_version_read(
    dispatch: Dispatch, store: RecordingStore
) -> None:
    first = await dispatch.register_village(
        ADMIN, COUNTY, RegisterVillage(**village("v1"), county=COUNTY), METADATA
    )
    second = await dispatch.register_cadre(
        ADMIN, COUNTY, RegisterCadre(**cadre("c1"), county=COUNTY), METADATA
    )

    assert store.writes == [[(STREAM, NO_STREAM, 1)], [(STREAM, 1, 1)]]
    assert (first.duplicate, first.stream_id, first.stream_version) == (False, STREAM, 1)
    assert first.event_types == ["dispatch.VillageRegistered"]
    assert first.events[0]["village_id"] == "v1"
    assert (second.stream_version, second.event_types) == (2, ["dispatch.CadreRegistered"])
    assert await store.types() == ["dispatch.VillageRegistered", "dispatch.CadreRegistered"]


async def test_a_lost_race_is_decided_again_and_the_rule_refuses_the_second_assignment(
    dispatch: Dispatch, store: RecordingStore
) -> None:
    await staffed_round(dispatch)
    team2 = FormTeam(team_id="team2", round_id="r1", village_id="v2", formed_on=date(2025, 3, 2))
    await register(dispatch, ["v2"], [])
    await dispatch.form_team(ADMIN, COUNTY, team2, METADATA)
    # Another process (its own cache) assigns c4 to team2 just before we append c4 to team1.
    other = use_cases(store)
    theirs, ours = (
        AssignCadre(assignment_id=f"x-{team}", team_id=team, cadre_id="c4", role=Role.MEMBER,
                    term_start=date(2025, 4, 2))
        for team in ("team2", "team1")
    )  # fmt: skip
    store.before_next_append = lambda: other.assign_cadre(ADMIN, COUNTY, theirs, METADATA)
    head = len(await store.read_stream(STREAM))
    store.writes.clear()

    with pytest.raises(CadreAlreadyAssigned):
        await dispatch.assign_cadre(ADMIN, COUNTY, ours, METADATA)

    # Ours at the version read (refused: theirs came first), theirs, and no second try of ours:
    # on the fresh state the rule refused it before any append.
    assert store.writes == [[(STREAM, head, 1)], [(STREAM, head, 1)]]
    cadre_c4 = (await dispatch.cadre(ADMIN, COUNTY, "c4")).active_assignment
    assert cadre_c4 is not None
    assert cadre_c4.assignment_id == "x-team2"


async def test_a_lost_race_with_a_command_that_does_not_conflict_is_appended_after_it(
    dispatch: Dispatch, store: RecordingStore
) -> None:
    await register(dispatch, ["v1"], [])
    other = use_cases(store)
    theirs = RegisterVillage(**village("v2"), county=COUNTY)
    store.before_next_append = lambda: other.register_village(ADMIN, COUNTY, theirs, METADATA)

    accepted = await dispatch.register_cadre(
        ADMIN, COUNTY, RegisterCadre(**cadre("c1"), county=COUNTY), METADATA
    )

    assert accepted.stream_version == 3
    assert await store.types() == [
        "dispatch.VillageRegistered",
        "dispatch.VillageRegistered",
        "dispatch.CadreRegistered",
    ]


async def test_a_repeated_command_is_refused_by_its_rule_and_stores_nothing(
    dispatch: Dispatch, store: RecordingStore
) -> None:
    command = RegisterVillage(**village("v1"), county=COUNTY)
    await dispatch.register_village(ADMIN, COUNTY, command, METADATA)
    with pytest.raises(DuplicateId) as refused:
        await dispatch.register_village(ADMIN, COUNTY, command, METADATA)
    assert rule_problem(refused.value, service="dispatch").status == 409
    assert await store.types() == ["dispatch.VillageRegistered"]


# --- the policy pack ------------------------------------------------------------------------


async def test_every_command_is_decided_under_the_pack_of_the_day_it_takes_effect(
    dispatch: Dispatch, policies: SpyPolicies
) -> None:
    d = dispatch
    # (handler, command, the day whose pack decides it), run in this order.
    steps: list[tuple[Any, Any, date]] = [
        (d.register_village, RegisterVillage(**village("v1"), county=COUNTY), TODAY),
        (d.update_village, UpdateVillage(**village("v1", households=310)), TODAY),
        (
            d.declare_needs,
            DeclareVillageNeeds(
                village_id="v1", needs=(Expertise.INDUSTRY,), declared_on=date(2025, 2, 10)
            ),
            date(2025, 2, 10),
        ),
        *[
            (d.register_cadre, RegisterCadre(**cadre(f"c{n}"), county=COUNTY), TODAY)
            for n in range(1, 6)
        ],
        (d.update_cadre, UpdateCadre(**cadre("c5", birth_year=1965)), TODAY),
        (
            d.open_round,
            OpenRound(round_id="r1", county=COUNTY, name="2025", opened_on=date(2025, 3, 1)),
            date(2025, 3, 1),
        ),
        (
            d.form_team,
            FormTeam(team_id="team1", round_id="r1", village_id="v1", formed_on=date(2025, 3, 15)),
            date(2025, 3, 15),
        ),
        *[
            (
                d.assign_cadre,
                AssignCadre(
                    assignment_id=f"a{n}",
                    team_id="team1",
                    cadre_id=f"c{n}",
                    role=role,
                    term_start=date(2025, 4, n),
                ),
                date(2025, 4, n),
            )
            for n, role in [(1, Role.FIRST_SECRETARY), (2, Role.MEMBER), (3, Role.MEMBER)]
        ],
        (d.close_round, CloseRound(round_id="r1", closed_on=date(2025, 4, 30)), date(2025, 4, 30)),
        (
            d.appoint_township_leader,
            AppointTownshipLeader(
                appointment_id="l1", township="t1", cadre_id="c1", term_start=date(2025, 5, 1)
            ),
            date(2025, 5, 1),
        ),
        (
            d.recall_cadre,
            RecallCadre(
                assignment_id="a2", reason="连续两月在岗天数不足", recalled_on=date(2025, 6, 1)
            ),
            date(2025, 6, 1),
        ),
        (
            d.replace_cadre,
            ReplaceCadre(
                obligation_id="a2:replacement",
                assignment_id="a4",
                cadre_id="c4",
                term_start=date(2025, 6, 10),
            ),
            date(2025, 6, 10),
        ),
        (
            d.complete_handover_item,
            CompleteHandoverItem(
                handover_id="a4:handover",
                item=HandoverItem.TRAINING,
                completed_on=date(2025, 6, 20),
            ),
            date(2025, 6, 20),
        ),
        (
            d.reinforce_team,
            ReinforceTeam(
                assignment_id="a5", team_id="team1", cadre_id="c5", term_start=date(2025, 7, 1)
            ),
            date(2025, 7, 1),
        ),
        (
            d.end_assignment,
            EndAssignment(assignment_id="a3", ended_on=date(2027, 4, 3)),
            date(2027, 4, 3),
        ),
    ]
    for handler, command, _ in steps:
        accepted = await handler(ADMIN, COUNTY, command, METADATA)
        assert accepted.event_types, command
    # One pack asked for per command, in the county, on the command's day.
    assert policies.asked == [(COUNTY, day) for _, _, day in steps]
    assert {type(command) for _, command, _ in steps} == set(get_args(DispatchCommand))


async def test_the_pack_in_force_on_the_day_is_the_one_recorded(dispatch: Dispatch) -> None:
    # Liangshan's pack takes effect on 2025-01-01: a term that starts the day before is
    # decided under the reference pack, one that starts that day under Liangshan's.
    await register(dispatch, ["v1"], ["c1", "c2"])
    round_ = OpenRound(round_id="r1", county=COUNTY, name="2024", opened_on=date(2024, 12, 1))
    await dispatch.open_round(ADMIN, COUNTY, round_, METADATA)
    team = FormTeam(team_id="team1", round_id="r1", village_id="v1", formed_on=date(2024, 12, 5))
    await dispatch.form_team(ADMIN, COUNTY, team, METADATA)
    versions = []
    for cadre_id, start in [("c1", date(2024, 12, 31)), ("c2", date(2025, 1, 1))]:
        command = AssignCadre(
            assignment_id=f"a-{cadre_id}",
            team_id="team1",
            cadre_id=cadre_id,
            role=Role.MEMBER,
            term_start=start,
        )
        accepted = await dispatch.assign_cadre(ADMIN, COUNTY, command, METADATA)
        versions.append(accepted.events[0]["policy_version"])
    assert versions == ["reference-2021", "liangshan-2025"]


async def test_a_day_no_pack_covers_is_refused_as_invalid(store: RecordingStore) -> None:
    before_every_pack = use_cases(store, today=date(2020, 6, 1))
    command = RegisterVillage(**village("v1"), county=COUNTY)
    with pytest.raises(NoPolicyInForce) as refused:
        await before_every_pack.register_village(ADMIN, COUNTY, command, METADATA)
    problem = rule_problem(refused.value, service="dispatch")
    assert problem.status == 422
    assert problem.type.endswith("/dispatch/no-policy-in-force")
    assert problem.extensions["code"] == "no_policy_in_force"
    assert store.writes == []


# --- jurisdiction ---------------------------------------------------------------------------


async def test_a_writer_acts_only_in_their_county(
    dispatch: Dispatch, store: RecordingStore
) -> None:
    elsewhere = Principal(
        subject="admin-9", role=AccessRole.ORG_ADMIN, jurisdiction=Jurisdiction(county="539999")
    )
    command = RegisterVillage(**village("v1"), county=COUNTY)
    with pytest.raises(OutsideJurisdiction) as refused:
        await dispatch.register_village(elsewhere, COUNTY, command, METADATA)
    problem = rule_problem(refused.value, service="dispatch")
    assert (problem.status, problem.type) == (403, PROBLEMS + "forbidden-jurisdiction")
    assert store.reads == []
    assert store.writes == []


async def test_readers_see_their_township_and_county_wide_resources(dispatch: Dispatch) -> None:
    await staffed_round(dispatch)
    await register(dispatch, ["v2"], [])
    assert (await dispatch.village(township("t1"), COUNTY, "v1")).township == "t1"
    assert (await dispatch.village(AUDITOR, COUNTY, "v1")).village_id == "v1"
    with pytest.raises(OutsideJurisdiction) as refused:
        await dispatch.village(township("t2"), COUNTY, "v1")
    assert rule_problem(refused.value, service="dispatch").status == 403
    # On post in t1: only t1 sees the cadre; not on post: county-wide.
    assert (await dispatch.cadre(township("t1"), COUNTY, "c1")).cadre_id == "c1"
    with pytest.raises(OutsideJurisdiction):
        await dispatch.cadre(township("t2"), COUNTY, "c1")
    assert (await dispatch.cadre(township("t2"), COUNTY, "c4")).active_assignment is None
    with pytest.raises(OutsideJurisdiction):
        await dispatch.team(township("t2"), COUNTY, "team1")

    recall = RecallCadre(assignment_id="a2", reason="不在岗", recalled_on=date(2025, 6, 1))
    await dispatch.recall_cadre(ADMIN, COUNTY, recall, METADATA)
    (obligation,) = await dispatch.open_obligations(township("t1"), COUNTY)
    assert obligation.vacated_assignment_id == "a2"
    assert await dispatch.open_obligations(township("t2"), COUNTY) == []


# --- reads ----------------------------------------------------------------------------------


async def test_reads_fold_only_the_events_the_cache_does_not_know(
    dispatch: Dispatch, store: RecordingStore
) -> None:
    await staffed_round(dispatch)
    head = len(await store.read_stream(STREAM))
    store.reads.clear()

    await dispatch.village(ADMIN, COUNTY, "v1")
    await dispatch.team(ADMIN, COUNTY, "team1")
    # Each read asks only for what follows the cached state: nothing.
    assert store.reads == [(STREAM, head + 1, 0), (STREAM, head + 1, 0)]

    # A process that has not seen the county yet folds it once, then reads from its head.
    fresh = use_cases(store)
    store.reads.clear()
    await fresh.cadre(ADMIN, COUNTY, "c1")
    await fresh.cadre(ADMIN, COUNTY, "c2")
    assert store.reads == [(STREAM, 1, head), (STREAM, head + 1, 0)]

    # A command of the other process is read by this one as one new event.
    needs = DeclareVillageNeeds(
        village_id="v1", needs=(Expertise.INDUSTRY,), declared_on=date(2025, 3, 2)
    )
    await fresh.declare_needs(ADMIN, COUNTY, needs, METADATA)
    store.reads.clear()
    assert (await dispatch.village(ADMIN, COUNTY, "v1")).needs == [Expertise.INDUSTRY]
    assert store.reads == [(STREAM, head + 1, 1)]


async def test_the_views_of_a_staffed_round(dispatch: Dispatch) -> None:
    await staffed_round(dispatch)
    older = UpdateCadre(**cadre("c5", birth_year=1965, unit_kind=UnitKind.PARTY_MASS_ORGANISATION))
    await dispatch.update_cadre(ADMIN, COUNTY, older, METADATA)
    weak = UpdateVillage(**village("v1", categories=(VillageCategory.WEAK_PARTY_BRANCH,)))
    await dispatch.update_village(ADMIN, COUNTY, weak, METADATA)

    v1 = await dispatch.village(ADMIN, COUNTY, "v1")
    assert (v1.county, v1.weak_party_branch) == (COUNTY, True)
    team = await dispatch.team(ADMIN, COUNTY, "team1")
    assert (team.township, [m.cadre_id for m in team.members]) == ("t1", ["c1", "c2", "c3"])
    history = await dispatch.cadre_assignments(ADMIN, COUNTY, "c1")
    assert [(a.assignment_id, a.active, a.role) for a in history] == [
        ("a1", True, Role.FIRST_SECRETARY)
    ]
    ranked = await dispatch.candidates(ADMIN, COUNTY, "r1", "v1")
    assert [c.cadre_id for c in ranked.candidates] == ["c5", "c4"]  # 党群部门驻弱村
    assert ranked.candidates[0].reasons

    with pytest.raises(RoundNotClosed) as open_round:
        await dispatch.round_report(ADMIN, COUNTY, "r1")
    problem = rule_problem(open_round.value, service="dispatch")
    assert (problem.status, problem.extensions["code"]) == (409, "round_not_closed")
    assert problem.type.endswith("/dispatch/round-not-closed")
    close = CloseRound(round_id="r1", closed_on=date(2025, 4, 30))
    await dispatch.close_round(ADMIN, COUNTY, close, METADATA)
    report = await dispatch.round_report(ADMIN, COUNTY, "r1")
    assert (report.teams, report.level(UnitLevel.COUNTY).sent) == (1, 3)

    # 增派 an older cadre: accepted, with the soft rule's warning in the answer.
    reinforce = ReinforceTeam(
        assignment_id="a5", team_id="team1", cadre_id="c5", term_start=date(2025, 7, 1)
    )
    accepted = await dispatch.reinforce_team(ADMIN, COUNTY, reinforce, METADATA)
    assert "age_above_normal_limit" in {w.code for w in accepted.warnings}


async def test_unknown_ids_are_not_found(dispatch: Dispatch) -> None:
    with pytest.raises(UnknownVillage) as unknown:
        await dispatch.village(ADMIN, COUNTY, "nope")
    problem = rule_problem(unknown.value, service="dispatch")
    assert (problem.status, problem.extensions["code"]) == (404, "unknown_village")
    assert problem.type.endswith("/dispatch/unknown-village")
    with pytest.raises(UnknownCadre):
        await dispatch.cadre_assignments(ADMIN, COUNTY, "nope")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UnknownCadre("c9"), 404),
        (DatesOutOfOrder("a round closes after it opens"), 422),
        (CadreAlreadyAssigned("c1 is on post"), 409),
        (NoPolicyInForce("no policy covers 513427 on 2020-06-01"), 422),
        (RoundNotClosed("r1"), 409),
    ],
)
def test_refusals_keep_their_statuses(error: RuleViolation, status: int) -> None:
    problem = rule_problem(error, service="dispatch")
    assert problem.status == status
    assert problem.type.endswith("/dispatch/" + error.code.replace("_", "-"))
    assert problem.extensions["retryable"] is False


def test_the_county_stream_is_the_one_of_the_decider() -> None:
    assert county_stream(COUNTY).stream_id == "dispatch-county-513427"
    assert county_stream(COUNTY).initial.county == COUNTY
