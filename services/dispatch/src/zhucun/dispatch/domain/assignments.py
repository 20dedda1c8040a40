"""Handlers for everything that puts cadres on or off a team: initial assignment,
reinforcement, replacement, term end and recall; township leaders and handovers (五个一).

Every way onto a team goes through ``_join``: the same hard rules, the same warnings.
"""

from __future__ import annotations

from datetime import date

from zhucun.contracts.dispatch.events import (
    AssignmentEnded,
    AssignmentKind,
    CadreAssigned,
    CadreRecalled,
    EndReason,
    HandoverCompleted,
    HandoverItem,
    HandoverItemCompleted,
    HandoverOpened,
    ReplacementObligationClosed,
    ReplacementObligationOpened,
    Role,
    RuleWarning,
    TownshipLeaderAppointed,
)
from zhucun.dispatch.domain.commands import (
    HANDOVER_ID_SUFFIX,
    OBLIGATION_ID_SUFFIX,
    AppointTownshipLeader,
    AssignCadre,
    CompleteHandoverItem,
    EndAssignment,
    RecallCadre,
    ReinforceTeam,
    ReplaceCadre,
)
from zhucun.dispatch.domain.errors import (
    CadreAlreadyAssigned,
    CadreNotInTownship,
    DatesOutOfOrder,
    DuplicateId,
    FirstSecretaryNotEligible,
    HandoverItemAlreadyCompleted,
    ObligationAlreadyClosed,
    RoundAlreadyClosed,
    TeamAlreadyHasFirstSecretary,
    TeamNotRunning,
    TeamSizeOutOfBounds,
    TermNotOver,
    TownshipAlreadyHasLeader,
    TownshipTooSmallForLeader,
    UnknownHandover,
    UnknownObligation,
)
from zhucun.dispatch.domain.lookups import (
    add_months,
    full_years,
    not_before,
    require_active_assignment,
    require_cadre,
    require_new_assignment_id,
    require_team,
    within_calendar,
)
from zhucun.dispatch.domain.policy import DispatchPolicy
from zhucun.dispatch.domain.state import (
    Assignment,
    Cadre,
    CountyDispatch,
    Team,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack

# --- assignments ----------------------------------------------------------------------------


def _check_joining(
    state: CountyDispatch,
    team: Team,
    cadre_id: str,
    role: Role,
    term_start: date,
    rules: DispatchPolicy,
) -> Cadre:
    """The hard rules of a cadre joining a team; returns the cadre."""
    cadre = require_cadre(state, cadre_id)
    current = state.active_assignment_of(cadre_id)
    if current is not None:
        raise CadreAlreadyAssigned(
            f"cadre {cadre_id!r} is on post in team {current.team_id!r}"
            f" (assignment {current.assignment_id!r})"
        )
    not_before(term_start, team.formed_on, "a term starts after the team is formed")
    members = state.team_members(team.team_id)
    village = state.villages[team.village_id]
    _, size_max = rules.team_size_bounds(village.monitored_population)
    if len(members) + 1 > size_max:
        raise TeamSizeOutOfBounds(f"team {team.team_id!r} is full ({len(members)} of {size_max})")
    if role is Role.FIRST_SECRETARY:
        holder = next((m for m in members if m.role is Role.FIRST_SECRETARY), None)
        if holder is not None:
            raise TeamAlreadyHasFirstSecretary(
                f"team {team.team_id!r} has first secretary {holder.cadre_id!r}"
            )
        _check_first_secretary(cadre, term_start, rules)
    return cadre


def _check_first_secretary(cadre: Cadre, term_start: date, rules: DispatchPolicy) -> None:
    if cadre.party_member_since is None:
        raise FirstSecretaryNotEligible(f"cadre {cadre.cadre_id!r} is not a party member")
    standing = full_years(cadre.party_member_since, term_start)
    if standing < rules.first_secretary_min_party_years:
        raise FirstSecretaryNotEligible(
            f"cadre {cadre.cadre_id!r} has {standing} years of party standing,"
            f" {rules.first_secretary_min_party_years} needed"
        )


def _term_end(
    term_start: date, term_end: date | None, rules: DispatchPolicy, warnings: list[RuleWarning]
) -> date:
    normal_end = add_months(term_start, rules.min_term_months)
    if term_end is None:
        return within_calendar(normal_end, "the term's planned end")
    if term_end <= term_start:
        raise DatesOutOfOrder(f"the term ends ({term_end}) before it starts ({term_start})")
    if term_end < normal_end:
        warnings.append(
            RuleWarning(
                code="term_shorter_than_normal",
                message=f"term shorter than the normal {rules.min_term_months} months",
            )
        )
    return term_end


def _soft_rule_warnings(
    state: CountyDispatch, team: Team, cadre: Cadre, term_start: date, rules: DispatchPolicy
) -> list[RuleWarning]:
    """Age limit for the cadre; 一老一新 and 一深一浅 for the team as it will be, judged once
    the team has reached its minimum size (a team being filled is not yet mixed)."""
    warnings: list[RuleWarning] = []
    year = term_start.year
    age = cadre.age_in(year)
    if age > rules.normal_max_age:
        warnings.append(
            RuleWarning(
                code="age_above_normal_limit",
                message=f"age {age} is above the normal limit of {rules.normal_max_age}",
            )
        )
    village = state.villages[team.village_id]
    size_min, _ = rules.team_size_bounds(village.monitored_population)
    team_cadres = [state.cadres[m.cadre_id] for m in state.team_members(team.team_id)]
    team_cadres.append(cadre)
    if len(team_cadres) < size_min:
        return warnings
    ages = [c.age_in(year) for c in team_cadres]
    if not (
        any(a >= rules.age_mix_threshold for a in ages)
        and any(a < rules.age_mix_threshold for a in ages)
    ):
        warnings.append(
            RuleWarning(
                code="no_age_mix",
                message=f"一老一新: nobody on each side of age {rules.age_mix_threshold}",
            )
        )
    years = [c.rural_experience_years for c in team_cadres]
    if not (
        any(y >= rules.experienced_rural_years for y in years)
        and any(y < rules.experienced_rural_years for y in years)
    ):
        warnings.append(
            RuleWarning(
                code="no_experience_mix",
                message=(
                    f"一深一浅: nobody on each side of {rules.experienced_rural_years}"
                    " years of rural work"
                ),
            )
        )
    return warnings


def _join(
    state: CountyDispatch,
    team: Team,
    *,
    assignment_id: str,
    cadre_id: str,
    role: Role,
    kind: AssignmentKind,
    term_start: date,
    term_end: date | None,
    policy: PolicyPack,
    replaces: str | None = None,
) -> CadreAssigned:
    """Every way onto a team goes through here: the same hard rules, the same warnings."""
    rules = policy.rules(DispatchPolicy)
    require_new_assignment_id(state, assignment_id)
    cadre = _check_joining(state, team, cadre_id, role, term_start, rules)
    warnings = _soft_rule_warnings(state, team, cadre, term_start, rules)
    end = _term_end(term_start, term_end, rules, warnings)
    return CadreAssigned(
        assignment_id=assignment_id,
        cadre_id=cadre_id,
        team_id=team.team_id,
        round_id=team.round_id,
        county=state.county,
        village_id=team.village_id,
        role=role,
        kind=kind,
        replaces=replaces,
        term_start=term_start,
        term_end=end,
        warnings=tuple(warnings),
        policy_version=policy.version,
    )


def _handover(predecessor: Assignment, successor: CadreAssigned, opened_on: date) -> HandoverOpened:
    return HandoverOpened(
        handover_id=successor.assignment_id + HANDOVER_ID_SUFFIX,
        village_id=successor.village_id,
        predecessor_cadre_id=predecessor.cadre_id,
        predecessor_assignment_id=predecessor.assignment_id,
        successor_cadre_id=successor.cadre_id,
        successor_assignment_id=successor.assignment_id,
        opened_on=opened_on,
        items=tuple(HandoverItem),
    )


def _previous_first_secretary(
    state: CountyDispatch, village_id: str, successor_cadre_id: str
) -> Assignment | None:
    """The village's latest first secretary not yet handed over (a new first secretary takes
    over from them: 五个一)."""
    handed_over = {h.predecessor_assignment_id for h in state.handovers.values()}
    earlier = [
        a
        for a in state.assignments.values()
        if a.village_id == village_id
        and a.role is Role.FIRST_SECRETARY
        and a.cadre_id != successor_cadre_id
        and a.assignment_id not in handed_over
    ]
    return max(earlier, key=lambda a: a.term_start, default=None)


def assign(command: AssignCadre, state: CountyDispatch, policy: PolicyPack) -> list[DomainEvent]:
    team = require_team(state, command.team_id)
    round_ = state.rounds[team.round_id]
    if not round_.is_open:
        raise RoundAlreadyClosed(
            f"round {round_.round_id!r} is closed: use a replacement or a reinforcement"
        )
    assigned = _join(
        state,
        team,
        assignment_id=command.assignment_id,
        cadre_id=command.cadre_id,
        role=command.role,
        kind=AssignmentKind.INITIAL,
        term_start=command.term_start,
        term_end=command.term_end,
        policy=policy,
    )
    events: list[DomainEvent] = [assigned]
    if command.role is Role.FIRST_SECRETARY:
        predecessor = _previous_first_secretary(state, team.village_id, command.cadre_id)
        if predecessor is not None:
            events.append(_handover(predecessor, assigned, command.term_start))
    return events


def reinforce(
    command: ReinforceTeam, state: CountyDispatch, policy: PolicyPack
) -> list[DomainEvent]:
    team = require_team(state, command.team_id)
    if not state.team_members(team.team_id):
        raise TeamNotRunning(f"team {team.team_id!r} has nobody on post to reinforce")
    return [
        _join(
            state,
            team,
            assignment_id=command.assignment_id,
            cadre_id=command.cadre_id,
            role=Role.MEMBER,
            kind=AssignmentKind.REINFORCEMENT,
            term_start=command.term_start,
            term_end=command.term_end,
            policy=policy,
        )
    ]


def replace_cadre(
    command: ReplaceCadre, state: CountyDispatch, policy: PolicyPack
) -> list[DomainEvent]:
    obligation = state.obligations.get(command.obligation_id)
    if obligation is None:
        raise UnknownObligation(command.obligation_id)
    if not obligation.is_open:
        raise ObligationAlreadyClosed(
            f"obligation {obligation.obligation_id!r} was filled by"
            f" {obligation.replacement_assignment_id!r}"
        )
    not_before(command.term_start, obligation.opened_on, "a replacement starts after the recall")
    team = state.teams[obligation.team_id]
    assigned = _join(
        state,
        team,
        assignment_id=command.assignment_id,
        cadre_id=command.cadre_id,
        role=obligation.role,
        kind=AssignmentKind.REPLACEMENT,
        term_start=command.term_start,
        term_end=command.term_end,
        policy=policy,
        replaces=obligation.vacated_assignment_id,
    )
    closed = ReplacementObligationClosed(
        obligation_id=obligation.obligation_id,
        team_id=obligation.team_id,
        village_id=obligation.village_id,
        replacement_assignment_id=command.assignment_id,
        closed_on=command.term_start,
    )
    vacated = state.assignments[obligation.vacated_assignment_id]
    return [assigned, closed, _handover(vacated, assigned, command.term_start)]


def end_assignment(command: EndAssignment, state: CountyDispatch) -> list[DomainEvent]:
    assignment = require_active_assignment(state, command.assignment_id)
    if command.ended_on < assignment.term_end:
        raise TermNotOver(
            f"the term of {assignment.assignment_id!r} ends on {assignment.term_end}:"
            " leaving earlier is a recall"
        )
    return [
        AssignmentEnded(
            assignment_id=assignment.assignment_id,
            cadre_id=assignment.cadre_id,
            team_id=assignment.team_id,
            village_id=assignment.village_id,
            ended_on=command.ended_on,
            reason=EndReason.TERM_COMPLETED,
        )
    ]


def recall(command: RecallCadre, state: CountyDispatch) -> list[DomainEvent]:
    assignment = require_active_assignment(state, command.assignment_id)
    not_before(command.recalled_on, assignment.term_start, "a recall comes after the term start")
    common = {
        "assignment_id": assignment.assignment_id,
        "cadre_id": assignment.cadre_id,
        "team_id": assignment.team_id,
        "village_id": assignment.village_id,
    }
    return [
        CadreRecalled(
            **common,
            recalled_on=command.recalled_on,
            reason=command.reason,
            decision_id=command.decision_id,
        ),
        AssignmentEnded(**common, ended_on=command.recalled_on, reason=EndReason.RECALLED),
        ReplacementObligationOpened(
            obligation_id=assignment.assignment_id + OBLIGATION_ID_SUFFIX,
            team_id=assignment.team_id,
            village_id=assignment.village_id,
            role=assignment.role,
            vacated_assignment_id=assignment.assignment_id,
            opened_on=command.recalled_on,
        ),
    ]


# --- township leaders and handovers ---------------------------------------------------------


def appoint_township_leader(
    command: AppointTownshipLeader, state: CountyDispatch, policy: PolicyPack
) -> list[DomainEvent]:
    rules = policy.rules(DispatchPolicy)
    if command.appointment_id in state.leaderships:
        raise DuplicateId("appointment", command.appointment_id)
    require_cadre(state, command.cadre_id)
    in_township = state.active_in_township(command.township)
    own = next((a for a in in_township if a.cadre_id == command.cadre_id), None)
    if own is None:
        raise CadreNotInTownship(
            f"cadre {command.cadre_id!r} is not on post in township {command.township!r}"
        )
    if len(in_township) < rules.township_leader_min_cadres:
        raise TownshipTooSmallForLeader(
            f"township {command.township!r} has {len(in_township)} cadres on post,"
            f" {rules.township_leader_min_cadres} needed for a leader"
        )
    for leadership in state.leaderships.values():
        if (
            leadership.township == command.township
            and leadership.term_start <= command.term_start < leadership.term_end
            and state.assignments[leadership.assignment_id].is_active
        ):
            raise TownshipAlreadyHasLeader(
                f"township {command.township!r} is led by {leadership.cadre_id!r}"
                f" until {leadership.term_end}"
            )
    return [
        TownshipLeaderAppointed(
            appointment_id=command.appointment_id,
            county=state.county,
            township=command.township,
            cadre_id=command.cadre_id,
            assignment_id=own.assignment_id,
            term_start=command.term_start,
            term_end=within_calendar(
                add_months(command.term_start, rules.township_leader_term_months),
                "the township leader's term end",
            ),
            cadres_in_township=len(in_township),
            policy_version=policy.version,
        )
    ]


def complete_handover_item(
    command: CompleteHandoverItem, state: CountyDispatch
) -> list[DomainEvent]:
    handover = state.handovers.get(command.handover_id)
    if handover is None:
        raise UnknownHandover(command.handover_id)
    if command.item in handover.completed_items:
        raise HandoverItemAlreadyCompleted(
            f"{command.item.value} of handover {handover.handover_id!r} is already done"
        )
    not_before(command.completed_on, handover.opened_on, "a handover item after its opening")
    events: list[DomainEvent] = [
        HandoverItemCompleted(
            handover_id=handover.handover_id,
            village_id=handover.village_id,
            item=command.item,
            completed_on=command.completed_on,
        )
    ]
    if handover.outstanding_items == (command.item,):
        events.append(
            HandoverCompleted(
                handover_id=handover.handover_id,
                village_id=handover.village_id,
                completed_on=command.completed_on,
            )
        )
    return events
