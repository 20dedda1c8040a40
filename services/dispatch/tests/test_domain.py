"""The dispatch decider: given(events) / when(command) / then(events or a typed refusal)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from zhucun.contracts.dispatch.events import (
    AssignmentEnded,
    AssignmentKind,
    CadreAssigned,
    CadreRecalled,
    CadreRegistered,
    EndReason,
    Expertise,
    Geofence,
    HandoverCompleted,
    HandoverItem,
    HandoverItemCompleted,
    HandoverOpened,
    ReplacementObligationClosed,
    ReplacementObligationOpened,
    Role,
    RoundClosed,
    RoundOpened,
    TeamFormed,
    TownshipLeaderAppointed,
    UnitKind,
    UnitLevel,
    VillageCategory,
    VillageNeedsDeclared,
    VillageRegistered,
)
from zhucun.dispatch.domain import (
    AppointTownshipLeader,
    AssignCadre,
    AssignmentNotActive,
    BeyondCalendar,
    CadreAlreadyAssigned,
    CadreNotInTownship,
    CloseRound,
    CompleteHandoverItem,
    CountyDispatch,
    DatesOutOfOrder,
    DeclareVillageNeeds,
    DispatchCommand,
    DispatchRuleViolation,
    DuplicateId,
    EndAssignment,
    FirstSecretaryNotEligible,
    FormTeam,
    HandoverItemAlreadyCompleted,
    ObligationAlreadyClosed,
    OpenRound,
    RecallCadre,
    RegisterVillage,
    ReinforceTeam,
    ReplaceCadre,
    RoundAlreadyClosed,
    RoundAlreadyOpen,
    TeamAlreadyHasFirstSecretary,
    TeamNotRunning,
    TeamSizeOutOfBounds,
    TermNotOver,
    TownshipAlreadyHasLeader,
    TownshipTooSmallForLeader,
    UnknownTeam,
    UnknownVillage,
    UpdateCadre,
    VillageAlreadyHasTeam,
    WeakBranchVillageNeedsFirstSecretary,
    WrongCounty,
    add_months,
    decide,
    evolve,
    fold,
    round_report,
    stream_id,
)
from zhucun.dispatch.domain.commands import ASSIGNMENT_ID_MAX_LENGTH
from zhucun.dispatch.domain.policy import DispatchPolicy
from zhucun.shared.bounds import ID_MAX_LENGTH
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyBook, PolicyPack

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[3] / "policies"
COUNTY = "530102"
POLICY = PolicyBook.load(POLICIES, sections=[DispatchPolicy]).in_force(COUNTY, date(2025, 6, 1))
START = date(2025, 4, 1)
FENCE = Geofence(latitude=25.04, longitude=102.71, radius_m=1500)


# --- given: event factories ----------------------------------------------------------------


def village(
    village_id: str = "v1",
    *,
    township: str = "t1",
    categories: tuple[VillageCategory, ...] = (),
    monitored: int = 50,
) -> VillageRegistered:
    return VillageRegistered(
        village_id=village_id,
        county=COUNTY,
        name=f"{village_id}村",
        township=township,
        categories=categories,
        geofence=FENCE,
        households=300,
        monitored_population=monitored,
    )


def cadre(
    cadre_id: str,
    *,
    kind: UnitKind = UnitKind.LINE_DEPARTMENT,
    level: UnitLevel = UnitLevel.COUNTY,
    born: int = 1985,
    party_since: date | None = date(2010, 7, 1),
    rural: int = 0,
    skills: tuple[Expertise, ...] = (),
) -> CadreRegistered:
    return CadreRegistered(
        cadre_id=cadre_id,
        county=COUNTY,
        sending_unit=f"unit of {cadre_id}",
        unit_kind=kind,
        unit_level=level,
        birth_year=born,
        party_member_since=party_since,
        rural_experience_years=rural,
        skills=skills,
    )


def round_opened(round_id: str = "r1", on: date = date(2025, 3, 1)) -> RoundOpened:
    return RoundOpened(round_id=round_id, county=COUNTY, name=round_id, opened_on=on)


def round_closed(round_id: str, on: date, **sent: int) -> RoundClosed:
    counts = {UnitLevel(level): n for level, n in sent.items()}
    report = round_report(round_id, counts, teams=1, previous=None)
    return RoundClosed(
        round_id=round_id, county=COUNTY, closed_on=on, report=report, policy_version="x"
    )


def team(team_id: str = "team1", village_id: str = "v1", round_id: str = "r1") -> TeamFormed:
    return TeamFormed(
        team_id=team_id,
        round_id=round_id,
        county=COUNTY,
        village_id=village_id,
        formed_on=date(2025, 3, 15),
    )


def assigned(
    assignment_id: str,
    cadre_id: str,
    *,
    team_id: str = "team1",
    village_id: str = "v1",
    round_id: str = "r1",
    role: Role = Role.MEMBER,
    start: date = START,
) -> CadreAssigned:
    return CadreAssigned(
        assignment_id=assignment_id,
        cadre_id=cadre_id,
        team_id=team_id,
        round_id=round_id,
        county=COUNTY,
        village_id=village_id,
        role=role,
        kind=AssignmentKind.INITIAL,
        term_start=start,
        term_end=add_months(start, 24),
        policy_version=POLICY.version,
    )


def given(*events: DomainEvent) -> CountyDispatch:
    return fold(CountyDispatch(county=COUNTY), list(events))


def when(
    state: CountyDispatch, command: DispatchCommand, policy: PolicyPack = POLICY
) -> list[DomainEvent]:
    return decide(command, state, policy)


def staffed_team(
    *, monitored: int = 50, categories: tuple[VillageCategory, ...] = ()
) -> list[DomainEvent]:
    """Village v1 in township t1 with a full team of three in open round r1."""
    return [
        village(monitored=monitored, categories=categories),
        cadre("c1", born=1978, rural=5),
        cadre("c2", born=1990),
        cadre("c3", born=1992),
        round_opened(),
        team(),
        assigned("a1", "c1", role=Role.FIRST_SECRETARY),
        assigned("a2", "c2"),
        assigned("a3", "c3"),
    ]


def assign(
    cadre_id: str, *, role: Role = Role.MEMBER, team_id: str = "team1", **extra: object
) -> AssignCadre:
    return AssignCadre.model_validate(
        {
            "assignment_id": f"new-{cadre_id}",
            "team_id": team_id,
            "cadre_id": cadre_id,
            "role": role,
            "term_start": START,
            **extra,
        }
    )


def warning_codes(event: DomainEvent) -> set[str]:
    assert isinstance(event, CadreAssigned)
    return {w.code for w in event.warnings}


# --- villages, cadres, rounds, teams -------------------------------------------------------


def test_register_village_in_the_county_stream() -> None:
    command = RegisterVillage(
        village_id="v9",
        county=COUNTY,
        name="团结村",
        township="t1",
        categories=(VillageCategory.WEAK_PARTY_BRANCH, VillageCategory.BORDER),
        geofence=FENCE,
        households=120,
        monitored_population=12,
    )
    [event] = when(given(), command)
    assert isinstance(event, VillageRegistered)
    assert event.categories == (VillageCategory.WEAK_PARTY_BRANCH, VillageCategory.BORDER)
    assert event.kafka_key() == "v9"
    assert stream_id(COUNTY) == "dispatch-county-530102"
    with pytest.raises(DuplicateId):
        when(given(event), command)
    with pytest.raises(WrongCounty):
        when(given(), command.model_copy(update={"county": "530103"}))


def test_declared_needs_reach_the_village_state_and_a_repeat_is_refused() -> None:
    with pytest.raises(ValidationError, match="must not hold an item twice"):
        DeclareVillageNeeds(
            village_id="v1",
            needs=(Expertise.INDUSTRY, Expertise.PLANNING, Expertise.INDUSTRY),
            declared_on=date(2025, 2, 1),
        )
    command = DeclareVillageNeeds(
        village_id="v1",
        needs=(Expertise.INDUSTRY, Expertise.PLANNING),
        declared_on=date(2025, 2, 1),
    )
    [event] = when(given(village()), command)
    assert event == VillageNeedsDeclared(
        village_id="v1",
        needs=(Expertise.INDUSTRY, Expertise.PLANNING),
        declared_on=date(2025, 2, 1),
    )
    assert given(village(), event).villages["v1"].needs == {Expertise.INDUSTRY, Expertise.PLANNING}
    with pytest.raises(UnknownVillage):
        when(given(), command)


def test_cadre_update_replaces_the_profile() -> None:
    update = UpdateCadre(
        cadre_id="c1",
        sending_unit="省农业农村厅",
        unit_kind=UnitKind.ECONOMIC_DEPARTMENT,
        unit_level=UnitLevel.PROVINCE,
        birth_year=1985,
        party_member_since=None,
        rural_experience_years=3,
        skills=(Expertise.FINANCE,),
    )
    state = given(cadre("c1"), *when(given(cadre("c1")), update))
    assert state.cadres["c1"].unit_level is UnitLevel.PROVINCE
    assert state.cadres["c1"].party_member_since is None
    assert state.cadres["c1"].skills == {Expertise.FINANCE}


def test_one_round_open_at_a_time() -> None:
    command = OpenRound(round_id="r2", county=COUNTY, name="2025 轮换", opened_on=date(2025, 5, 1))
    with pytest.raises(RoundAlreadyOpen):
        when(given(round_opened()), command)
    assert when(given(), command) == [RoundOpened(**command.model_dump())]


def test_team_needs_a_known_village_once_per_round() -> None:
    form = FormTeam(team_id="team2", round_id="r1", village_id="v1", formed_on=date(2025, 3, 2))
    with pytest.raises(UnknownVillage):
        when(given(round_opened()), form)
    with pytest.raises(VillageAlreadyHasTeam):
        when(given(village(), round_opened(), team()), form)
    [event] = when(given(village(), round_opened()), form)
    assert isinstance(event, TeamFormed)
    assert event.county == COUNTY


def test_no_team_in_a_closed_round() -> None:
    state = given(village(), round_opened(), round_closed("r1", date(2025, 3, 30)))
    form = FormTeam(team_id="team2", round_id="r1", village_id="v1", formed_on=date(2025, 4, 2))
    with pytest.raises(RoundAlreadyClosed) as refused:
        when(state, form)
    assert refused.value.code == "round_closed"


# --- assignments: hard rules ---------------------------------------------------------------


def test_assign_first_secretary_records_term_and_policy() -> None:
    state = given(village(), cadre("c1"), round_opened(), team())
    [event] = when(state, assign("c1", role=Role.FIRST_SECRETARY))
    assert isinstance(event, CadreAssigned)
    assert event.role is Role.FIRST_SECRETARY
    assert event.kind is AssignmentKind.INITIAL
    assert event.term_end == date(2027, 4, 1)  # the pack's 24 months
    assert event.policy_version == "reference-2021"
    assert event.warnings == ()
    assert event.kafka_key() == "c1"


def test_people_only_after_the_village_has_a_team() -> None:
    with pytest.raises(UnknownTeam):
        when(given(village(), cadre("c1"), round_opened()), assign("c1"))


def test_one_active_assignment_per_cadre_in_the_round() -> None:
    state = given(*staffed_team(), village("v2"), team("team2", "v2"))
    with pytest.raises(CadreAlreadyAssigned) as refused:
        when(state, assign("c2", team_id="team2"))
    assert refused.value.code == "cadre_already_assigned"


def test_one_active_assignment_across_rounds() -> None:
    # c2 is still on post from r1 (two-year term) when r2 opens.
    state = given(
        *staffed_team(),
        round_closed("r1", date(2025, 4, 30)),
        round_opened("r2", date(2026, 3, 1)),
        village("v2"),
        team("team2", "v2", "r2"),
    )
    with pytest.raises(CadreAlreadyAssigned):
        when(state, assign("c2", team_id="team2"))


def test_an_ended_assignment_frees_the_cadre() -> None:
    ended = AssignmentEnded(
        assignment_id="a2",
        cadre_id="c2",
        team_id="team1",
        village_id="v1",
        ended_on=date(2027, 4, 1),
        reason=EndReason.TERM_COMPLETED,
    )
    state = given(*staffed_team(), ended, village("v2"), team("team2", "v2"))
    [event] = when(state, assign("c2", team_id="team2"))
    assert isinstance(event, CadreAssigned)
    assert event.team_id == "team2"


def test_one_first_secretary_per_team() -> None:
    state = given(*staffed_team()[:-1], cadre("c4"))
    with pytest.raises(TeamAlreadyHasFirstSecretary):
        when(state, assign("c4", role=Role.FIRST_SECRETARY))


@pytest.mark.parametrize(
    ("party_since", "eligible"),
    [
        (None, False),  # not a party member
        (date(2024, 7, 1), False),  # still in the probationary year on 2025-04-01
        (date(2024, 4, 1), True),  # exactly one year of standing
        (date(2001, 7, 1), True),
    ],
)
def test_first_secretary_party_standing(party_since: date | None, eligible: bool) -> None:
    state = given(village(), cadre("c1", party_since=party_since), round_opened(), team())
    command = assign("c1", role=Role.FIRST_SECRETARY)
    if eligible:
        assert isinstance(when(state, command)[0], CadreAssigned)
    else:
        with pytest.raises(FirstSecretaryNotEligible):
            when(state, command)
    # the same cadre may always serve as a member
    assert isinstance(when(state, assign("c1"))[0], CadreAssigned)


def test_team_cannot_grow_beyond_the_maximum() -> None:
    state = given(*staffed_team(), cadre("c4"), cadre("c5"), cadre("c6"), assigned("a4", "c4"))
    state = fold(state, when(state, assign("c5")))  # fifth member: at the maximum
    with pytest.raises(TeamSizeOutOfBounds):
        when(state, assign("c6"))


def test_round_closes_only_with_teams_within_bounds() -> None:
    too_small = given(*staffed_team()[:-1])
    with pytest.raises(TeamSizeOutOfBounds, match="team1"):
        when(too_small, CloseRound(round_id="r1", closed_on=date(2025, 5, 1)))
    [closed] = when(given(*staffed_team()), CloseRound(round_id="r1", closed_on=date(2025, 5, 1)))
    assert isinstance(closed, RoundClosed)
    assert closed.policy_version == "reference-2021"


def test_large_monitored_village_needs_one_plus_four() -> None:
    events = [*staffed_team(monitored=200), cadre("c4"), assigned("a4", "c4")]
    close = CloseRound(round_id="r1", closed_on=date(2025, 5, 1))
    with pytest.raises(TeamSizeOutOfBounds, match=r"4, 5\.\.5"):
        when(given(*events), close)
    full = given(*events, cadre("c5"), assigned("a5", "c5"))
    assert isinstance(when(full, close)[0], RoundClosed)


def test_weak_branch_village_must_get_a_first_secretary() -> None:
    weak = (VillageCategory.WEAK_PARTY_BRANCH,)
    events = [*staffed_team(categories=weak)]
    events[6] = assigned("a1", "c1")  # the team has no first secretary
    events += [cadre("c4"), assigned("a4", "c4")]
    close = CloseRound(round_id="r1", closed_on=date(2025, 5, 1))
    with pytest.raises(WeakBranchVillageNeedsFirstSecretary) as refused:
        when(given(*events), close)
    assert refused.value.village_ids == ("v1",)
    relaxed_rules = POLICY.rules(DispatchPolicy).model_dump() | {
        "weak_branch_village_requires_first_secretary": False
    }
    relaxed = POLICY.model_copy(update={"version": "relaxed", "dispatch": relaxed_rules})
    assert isinstance(when(given(*events), close, relaxed)[0], RoundClosed)


def test_weak_branch_village_without_any_team_blocks_the_close() -> None:
    state = given(*staffed_team(), village("v2", categories=(VillageCategory.WEAK_PARTY_BRANCH,)))
    with pytest.raises(WeakBranchVillageNeedsFirstSecretary, match="v2"):
        when(state, CloseRound(round_id="r1", closed_on=date(2025, 5, 1)))


def test_no_initial_assignment_once_the_round_is_closed() -> None:
    state = given(*staffed_team(), round_closed("r1", date(2025, 5, 1)), cadre("c4"))
    with pytest.raises(RoundAlreadyClosed):
        when(state, assign("c4"))


def test_term_dates() -> None:
    state = given(village(), cadre("c1"), round_opened(), team())
    with pytest.raises(DatesOutOfOrder):
        when(state, assign("c1", term_end=date(2025, 3, 1)))
    with pytest.raises(DatesOutOfOrder):  # before the team was formed
        when(state, assign("c1", term_start=date(2025, 3, 1)))
    [event] = when(state, assign("c1", term_end=date(2026, 4, 1)))
    assert "term_shorter_than_normal" in warning_codes(event)


def test_term_end_ends_the_assignment() -> None:
    state = given(*staffed_team())
    with pytest.raises(TermNotOver):
        when(state, EndAssignment(assignment_id="a2", ended_on=date(2027, 3, 31)))
    events = when(state, EndAssignment(assignment_id="a2", ended_on=date(2027, 4, 1)))
    assert events == [
        AssignmentEnded(
            assignment_id="a2",
            cadre_id="c2",
            team_id="team1",
            village_id="v1",
            ended_on=date(2027, 4, 1),
            reason=EndReason.TERM_COMPLETED,
        )
    ]
    after = fold(state, events)
    assert after.active_assignment_of("c2") is None
    with pytest.raises(AssignmentNotActive):
        when(after, EndAssignment(assignment_id="a2", ended_on=date(2027, 4, 2)))


# --- assignments: soft rules ---------------------------------------------------------------


@pytest.mark.parametrize(("born", "warned"), [(1990, False), (1980, False), (1979, True)])
def test_age_above_the_normal_limit_is_a_warning(born: int, warned: bool) -> None:
    # In 2025, born 1980 is 45 (the limit: no warning), born 1979 is 46.
    state = given(village(), cadre("c1", born=born), round_opened(), team())
    [event] = when(state, assign("c1"))
    assert ("age_above_normal_limit" in warning_codes(event)) is warned


def test_age_mix_is_judged_once_the_team_reaches_its_minimum() -> None:
    young = [cadre("c1", born=1990, rural=5), cadre("c2", born=1991), cadre("c3", born=1992)]
    state = given(village(), *young, round_opened(), team(), assigned("a1", "c1"))
    [second] = when(state, assign("c2"))
    assert warning_codes(second) == set()  # two people: not judged yet
    state = fold(state, [second])
    [third] = when(state, assign("c3"))
    assert warning_codes(third) == {"no_age_mix"}


def test_experience_mix_is_a_warning_not_a_refusal() -> None:
    novices = [cadre("c1", born=1975), cadre("c2", born=1990), cadre("c3", born=1992)]
    state = given(village(), *novices, round_opened(), team(), assigned("a1", "c1"))
    state = fold(state, when(state, assign("c2")))
    [third] = when(state, assign("c3"))
    assert warning_codes(third) == {"no_experience_mix"}
    mixed = given(village(), *novices[:2], cadre("c3", born=1992, rural=2), round_opened(), team())
    mixed = fold(mixed, [assigned("a1", "c1"), assigned("a2", "c2")])
    assert warning_codes(when(mixed, assign("c3"))[0]) == set()


# --- township team leader ------------------------------------------------------------------


def test_township_leader_needs_three_cadres_on_post() -> None:
    appoint = AppointTownshipLeader(
        appointment_id="l1", township="t1", cadre_id="c1", term_start=date(2025, 6, 1)
    )
    with pytest.raises(TownshipTooSmallForLeader):
        when(given(*staffed_team()[:-1]), appoint)
    [event] = when(given(*staffed_team()), appoint)
    assert isinstance(event, TownshipLeaderAppointed)
    assert event.term_end == date(2026, 6, 1)
    assert event.cadres_in_township == 3
    assert event.assignment_id == "a1"
    assert event.policy_version == "reference-2021"


def test_township_leader_one_at_a_time_and_from_the_township() -> None:
    state = given(*staffed_team())
    state = fold(
        state,
        when(
            state,
            AppointTownshipLeader(
                appointment_id="l1", township="t1", cadre_id="c1", term_start=date(2025, 6, 1)
            ),
        ),
    )
    second = AppointTownshipLeader(
        appointment_id="l2", township="t1", cadre_id="c2", term_start=date(2026, 1, 1)
    )
    with pytest.raises(TownshipAlreadyHasLeader):
        when(state, second)
    # after the one-year term, the next leader can be appointed
    later = second.model_copy(update={"term_start": date(2026, 6, 1)})
    assert isinstance(when(state, later)[0], TownshipLeaderAppointed)
    with pytest.raises(CadreNotInTownship):
        when(state, later.model_copy(update={"township": "t2"}))


# --- handover 五个一 --------------------------------------------------------------------------


def rotation() -> CountyDispatch:
    """r1's first secretary c1 is still on post; r2 sends c9 to the same village."""
    return given(
        *staffed_team(),
        round_closed("r1", date(2025, 5, 1)),
        round_opened("r2", date(2027, 3, 1)),
        cadre("c9", born=1988),
        team("team2", "v1", "r2"),
    )


def test_a_new_first_secretary_opens_a_handover() -> None:
    command = assign("c9", role=Role.FIRST_SECRETARY, team_id="team2", term_start=date(2027, 4, 1))
    [_, handover] = when(rotation(), command)
    assert handover == HandoverOpened(
        handover_id="new-c9:handover",
        village_id="v1",
        predecessor_cadre_id="c1",
        predecessor_assignment_id="a1",
        successor_cadre_id="c9",
        successor_assignment_id="new-c9",
        opened_on=date(2027, 4, 1),
        items=tuple(HandoverItem),
    )
    state = fold(rotation(), when(rotation(), command))
    [visible] = state.open_handovers()
    assert len(visible.outstanding_items) == 5


def test_handover_completes_with_the_fifth_item() -> None:
    command = assign("c9", role=Role.FIRST_SECRETARY, team_id="team2", term_start=date(2027, 4, 1))
    state = fold(rotation(), when(rotation(), command))
    items = list(HandoverItem)
    for item in items[:-1]:
        done = when(
            state,
            CompleteHandoverItem(
                handover_id="new-c9:handover", item=item, completed_on=date(2027, 4, 10)
            ),
        )
        assert [type(e) for e in done] == [HandoverItemCompleted]
        state = fold(state, done)
    last = when(
        state,
        CompleteHandoverItem(
            handover_id="new-c9:handover", item=items[-1], completed_on=date(2027, 4, 20)
        ),
    )
    assert last[-1] == HandoverCompleted(
        handover_id="new-c9:handover", village_id="v1", completed_on=date(2027, 4, 20)
    )
    assert fold(state, last).open_handovers() == []


def test_a_handover_item_is_completed_once() -> None:
    command = assign("c9", role=Role.FIRST_SECRETARY, team_id="team2", term_start=date(2027, 4, 1))
    state = fold(rotation(), when(rotation(), command))
    tour = CompleteHandoverItem(
        handover_id="new-c9:handover",
        item=HandoverItem.JOINT_VILLAGE_TOUR,
        completed_on=date(2027, 4, 3),
    )
    state = fold(state, when(state, tour))
    with pytest.raises(HandoverItemAlreadyCompleted):
        when(state, tour)


# --- recall, replacement, reinforcement ----------------------------------------------------


def recall_c1() -> RecallCadre:
    return RecallCadre(
        assignment_id="a1",
        reason="连续两月在岗天数不足",
        decision_id="dec-7",
        recalled_on=date(2025, 9, 1),
    )


def test_recall_ends_the_assignment_and_opens_a_replacement_obligation() -> None:
    state = given(*staffed_team())
    recalled, ended, obligation = when(state, recall_c1())
    assert isinstance(recalled, CadreRecalled)
    assert (recalled.reason, recalled.decision_id) == ("连续两月在岗天数不足", "dec-7")
    assert isinstance(ended, AssignmentEnded)
    assert ended.reason is EndReason.RECALLED
    assert obligation == ReplacementObligationOpened(
        obligation_id="a1:replacement",
        team_id="team1",
        village_id="v1",
        role=Role.FIRST_SECRETARY,
        vacated_assignment_id="a1",
        opened_on=date(2025, 9, 1),
    )
    after = fold(state, [recalled, ended, obligation])
    assert [o.obligation_id for o in after.open_obligations()] == ["a1:replacement"]
    with pytest.raises(AssignmentNotActive):
        when(after, recall_c1())


def test_a_recall_needs_a_reason() -> None:
    with pytest.raises(ValidationError, match="reason"):
        RecallCadre(assignment_id="a1", reason="  ", recalled_on=date(2025, 9, 1))


def test_replacement_closes_the_obligation_and_opens_a_handover() -> None:
    state = given(*staffed_team(), round_closed("r1", date(2025, 5, 1)), cadre("c7"))
    state = fold(state, when(state, recall_c1()))
    replace = ReplaceCadre(
        obligation_id="a1:replacement",
        assignment_id="a7",
        cadre_id="c7",
        term_start=date(2025, 9, 15),
    )
    assigned_event, closed, handover = when(state, replace)  # allowed in a closed round
    assert isinstance(assigned_event, CadreAssigned)
    assert assigned_event.kind is AssignmentKind.REPLACEMENT
    assert assigned_event.role is Role.FIRST_SECRETARY
    assert assigned_event.replaces == "a1"
    assert closed == ReplacementObligationClosed(
        obligation_id="a1:replacement",
        team_id="team1",
        village_id="v1",
        replacement_assignment_id="a7",
        closed_on=date(2025, 9, 15),
    )
    assert isinstance(handover, HandoverOpened)
    assert (handover.predecessor_cadre_id, handover.successor_cadre_id) == ("c1", "c7")
    after = fold(state, [assigned_event, closed, handover])
    assert after.open_obligations() == []
    with pytest.raises(ObligationAlreadyClosed):
        when(after, replace.model_copy(update={"assignment_id": "a8"}))


def test_replacement_first_secretary_must_be_eligible() -> None:
    state = given(*staffed_team(), cadre("c7", party_since=None))
    state = fold(state, when(state, recall_c1()))
    replace = ReplaceCadre(
        obligation_id="a1:replacement",
        assignment_id="a7",
        cadre_id="c7",
        term_start=date(2025, 9, 15),
    )
    with pytest.raises(FirstSecretaryNotEligible):
        when(state, replace)


def test_reinforcement_adds_a_member_to_a_running_team() -> None:
    state = given(*staffed_team(), round_closed("r1", date(2025, 5, 1)), cadre("c4", rural=3))
    reinforce = ReinforceTeam(
        assignment_id="a4", team_id="team1", cadre_id="c4", term_start=date(2025, 10, 1)
    )
    [event] = when(state, reinforce)
    assert isinstance(event, CadreAssigned)
    assert (event.kind, event.role) == (AssignmentKind.REINFORCEMENT, Role.MEMBER)
    assert len(fold(state, [event]).team_members("team1")) == 4


def test_reinforcement_needs_a_team_at_work() -> None:
    state = given(village(), cadre("c4"), round_opened(), team())
    reinforce = ReinforceTeam(assignment_id="a4", team_id="team1", cadre_id="c4", term_start=START)
    with pytest.raises(TeamNotRunning):
        when(state, reinforce)


# --- round report --------------------------------------------------------------------------


def test_round_report_compares_each_level_with_the_previous_round() -> None:
    first = round_report(
        "r1",
        {UnitLevel.PROVINCE: 10, UnitLevel.CITY: 20, UnitLevel.COUNTY: 30},
        teams=20,
        previous=None,
    )
    assert first.violations == ()
    assert first.level(UnitLevel.CITY).change is None
    second = round_report(
        "r2",
        {UnitLevel.PROVINCE: 9, UnitLevel.CITY: 25, UnitLevel.COUNTY: 31},
        teams=21,
        previous=first,
    )
    assert second.previous_round_id == "r1"
    assert [(c.level, c.previous, c.sent, c.change, c.violation) for c in second.levels] == [
        (UnitLevel.PROVINCE, 10, 9, -1, True),  # 省 fell
        (UnitLevel.CITY, 20, 25, 5, False),  # 市 rose: fine
        (UnitLevel.COUNTY, 30, 31, 1, True),  # 县 rose
    ]
    third = round_report(
        "r3",
        {UnitLevel.PROVINCE: 9, UnitLevel.CITY: 25, UnitLevel.COUNTY: 20},
        teams=21,
        previous=second,
    )
    assert third.violations == ()  # equal is fine, a county decrease is fine


def test_closing_a_round_counts_cadres_on_post_per_level() -> None:
    events = staffed_team()
    events[1] = cadre("c1", born=1978, rural=5, level=UnitLevel.PROVINCE)
    previous = round_closed("r0", date(2023, 5, 1), province=2, city=0, county=1)
    state = given(round_opened("r0", date(2021, 3, 1)), previous, *events)
    [closed] = when(state, CloseRound(round_id="r1", closed_on=date(2025, 5, 1)))
    assert isinstance(closed, RoundClosed)
    report = closed.report
    assert report.previous_round_id == "r0"
    assert report.teams == 1
    assert report.level(UnitLevel.PROVINCE).sent == 1
    assert report.level(UnitLevel.COUNTY).sent == 2
    assert {v.level for v in report.violations} == {UnitLevel.PROVINCE, UnitLevel.COUNTY}
    # Each breach is a warning of the close, in the report's order of levels.
    assert [(w.code, w.message) for w in closed.warnings] == [
        (
            "unit_level_decreased",
            "省市只增不减: province units sent 1 to round 'r1', against 2 to round 'r0'",
        ),
        (
            "county_level_increased",
            "县级只减不增: county units sent 2 to round 'r1', against 1 to round 'r0'",
        ),
    ]
    assert fold(state, [closed]).previous_closed_round() is not None


def test_a_round_without_breaches_closes_without_warnings() -> None:
    [closed] = when(given(*staffed_team()), CloseRound(round_id="r1", closed_on=date(2025, 5, 1)))
    assert isinstance(closed, RoundClosed)
    assert (closed.report.violations, closed.warnings) == ((), ())


# --- purity and the contract ---------------------------------------------------------------


def test_evolve_leaves_the_old_state_untouched() -> None:
    before = given(*staffed_team())
    after = evolve(before, recall_c1_events(before)[1])
    assert before.active_assignment_of("c1") is not None
    assert after.active_assignment_of("c1") is None


def recall_c1_events(state: CountyDispatch) -> list[DomainEvent]:
    return when(state, recall_c1())


def test_every_refusal_has_its_own_stable_code() -> None:
    def concrete(cls: type[DispatchRuleViolation]) -> list[type[DispatchRuleViolation]]:
        found = [] if cls.__name__.startswith("_") else [cls]
        for sub in cls.__subclasses__():
            found += concrete(sub)
        return found

    refusals = concrete(DispatchRuleViolation)[1:]
    codes = [cls.code for cls in refusals]
    assert len(refusals) >= 25
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"[a-z_]+", code) for code in codes)


# --- the calendar and derived ids -----------------------------------------------------------


def test_a_derived_date_after_the_calendar_is_refused_as_invalid() -> None:
    # A term starting in mid-2099 would end (by default, after 24 months) in 2101: refused,
    # not an event the contract cannot hold (which would be a 500).
    late = assign("c4", term_start=date(2099, 6, 1))
    with pytest.raises(BeyondCalendar) as refused:
        when(given(village(), cadre("c4"), round_opened(), team()), late)
    assert (refused.value.kind, refused.value.code) == ("invalid", "beyond_calendar")
    # An explicit end inside the calendar is fine (a short term: a warning).
    [event] = when(
        given(village(), cadre("c4"), round_opened(), team()),
        assign("c4", term_start=date(2099, 6, 1), term_end=date(2099, 12, 31)),
    )
    assert "term_shorter_than_normal" in warning_codes(event)
    leader = AppointTownshipLeader(
        appointment_id="l1", township="t1", cadre_id="c1", term_start=date(2099, 6, 1)
    )
    with pytest.raises(BeyondCalendar):
        when(given(*staffed_team()), leader)


def test_a_new_assignment_id_leaves_room_for_the_ids_derived_from_it() -> None:
    assert ID_MAX_LENGTH - len(":replacement") == ASSIGNMENT_ID_MAX_LENGTH
    with pytest.raises(ValidationError, match="at most 116 characters"):
        assign("c4", assignment_id="a" * (ASSIGNMENT_ID_MAX_LENGTH + 1))
    longest = "a" * ASSIGNMENT_ID_MAX_LENGTH
    state = given(village(), cadre("c4"), round_opened(), team())
    state = fold(state, when(state, assign("c4", role=Role.FIRST_SECRETARY, assignment_id=longest)))
    recall = RecallCadre(assignment_id=longest, reason="不在岗", recalled_on=date(2025, 9, 1))
    recalled = when(state, recall)
    opened = recalled[2]
    assert isinstance(opened, ReplacementObligationOpened)
    assert len(opened.obligation_id) == ID_MAX_LENGTH
