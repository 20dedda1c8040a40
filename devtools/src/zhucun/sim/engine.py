"""The events the services would store for the scenario's actions, computed in memory.

The topics writer publishes what this engine produces, so the events must be the services'
own: dispatch and assessment run their real deciders (``decide``/``evolve``, pure) on states
held here, with the action's business date as "today". Attendance is the high-volume
service (a province closes 750,000 cadre-months), so by default its events are built directly
from the event classes, the month close counted with the same arithmetic as attendance's
tally, from the facts this engine saw (check-ins, confirmations, leave decisions, spot checks),
not from the plan. ``strict=True`` runs attendance's deciders instead; the tests run both on
the same scenario and require the same events, which is what keeps the fast path honest.

A refusal from a decider means the generator produced a command the service would refuse:
``SimulationError``, with the command.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from zhucun.assessment import domain as assessment
from zhucun.assessment.domain import commands as ac
from zhucun.attendance import domain as attendance
from zhucun.attendance.domain import commands as tc
from zhucun.attendance.domain.days import local_day, month_bounds, month_key
from zhucun.attendance.domain.geo import DISTANCE_ROUNDING_M, evaluate_location
from zhucun.attendance.domain.leave import approval_level
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.contracts.attendance.events import (
    ApprovalLevel,
    CheckInRecorded,
    DiaryEntryWritten,
    HouseholdVisited,
    LeaveApproved,
    LeaveCancelled,
    LeaveKind,
    LeaveRejected,
    LeaveRequested,
    MonthClosed,
    PresenceConfirmed,
    SpotCheckRecorded,
    SpotCheckResult,
    TravelFlag,
)
from zhucun.contracts.dispatch.events import (
    AssignmentEnded,
    CadreAssigned,
    Geofence,
    VillageRegistered,
)
from zhucun.dispatch import domain as dispatch
from zhucun.dispatch.domain import commands as dc
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack
from zhucun.sim import actions as a
from zhucun.sim.principals import principal_for
from zhucun.sim.scenario import Scenario


class SimulationError(Exception):
    """The generator produced a command the service would refuse (a bug to fix there)."""


@dataclass(frozen=True, slots=True)
class Emitted:
    """One event as a service would store it: in ``stream_id``, at ``at``, by ``actor``."""

    service: str
    stream_id: str
    event: DomainEvent
    at: datetime
    actor: str


@dataclass
class _Post:
    """A cadre's assignment as the services' replicas know it."""

    assignment_id: str
    cadre_id: str
    team_id: str
    village_id: str
    township: str
    county: str
    term_start: date
    term_end: date
    ended_on: date | None
    geofence: Geofence
    households: int

    def attendance(self) -> tc.Post:
        return tc.Post(
            assignment_id=self.assignment_id,
            cadre_id=self.cadre_id,
            village_id=self.village_id,
            township=self.township,
            county=self.county,
            term_start=self.term_start,
            ended_on=self.ended_on,
            geofence=tc.Geofence(**self.geofence.model_dump()),
            households=self.households,
        )

    def assessment(self) -> ac.Post:
        return ac.Post(
            assignment_id=self.assignment_id,
            cadre_id=self.cadre_id,
            team_id=self.team_id,
            village_id=self.village_id,
            township=self.township,
            county=self.county,
            term_start=self.term_start,
            term_end=self.term_end,
            ended_on=self.ended_on,
        )


@dataclass
class _Leave:
    kind: LeaveKind
    first_day: date
    last_day: date
    status: str = "pending"
    level: ApprovalLevel = ApprovalLevel.TOWNSHIP


@dataclass
class _Month:
    """What attendance knows of a cadre's open month (the fast path's tally input)."""

    presence: set[date] = field(default_factory=set)
    check_ins: set[str] = field(default_factory=set)
    #: (occurred_at, kept distance) of located check-ins, for the impossible-travel check.
    located: list[tuple[datetime, str, int]] = field(default_factory=list)
    #: (spot check id, absent, excusing leave id).
    spot_checks: list[tuple[str, bool, str | None]] = field(default_factory=list)


class Engine:
    """Feed it the scenario's actions in phase order; it returns each action's events."""

    def __init__(self, scenario: Scenario, *, strict: bool = False, check_ins: bool = True):
        self.scenario = scenario
        self.strict = strict
        #: Emit ``CheckInRecorded`` (the facts are kept either way for the month close).
        self.check_ins = check_ins or strict
        self.prefix = scenario.prefix
        self.posts: dict[str, _Post] = {}
        self._villages: dict[str, VillageRegistered] = {}
        self._counties: dict[str, dispatch.CountyDispatch] = {}
        # attendance, fast path
        self._leaves: dict[str, dict[str, _Leave]] = defaultdict(dict)
        self._months: dict[tuple[str, str], _Month] = {}
        #: Closed months (their facts are dropped: a province has 750,000 cadre-months).
        self._closed: set[tuple[str, str]] = set()
        #: (cadre, year) -> unexcused absences of the closed months.
        self.absences: dict[tuple[str, int], int] = defaultdict(int)
        # attendance, strict path
        self._month_states: dict[tuple[str, str], attendance.MonthState] = {}
        self._leave_states: dict[str, attendance.LeaveState] = {}
        self._work_states: dict[str, attendance.WorkState] = {}
        # assessment
        self._cadre_states: dict[str, assessment.CadreState] = {}
        self._team_states: dict[str, assessment.TeamState] = {}
        self._quarter_states: dict[tuple[str, str], assessment.QuarterState] = {}
        self._annual_states: dict[tuple[str, int], assessment.AnnualState] = {}

    # --- entry ------------------------------------------------------------------------------

    def apply(self, action: a.Action) -> list[Emitted]:
        actor = principal_for(action, self.prefix).actor
        try:
            if isinstance(action, a.DispatchAction):
                decided = self._dispatch(action)
            elif action.service == "attendance":
                decided = self._attendance(action)
            else:
                decided = self._assessment(action)
        except (
            dispatch.DispatchRuleViolation,
            attendance.AttendanceRuleViolation,
            assessment.AssessmentRuleViolation,
        ) as refusal:
            raise SimulationError(
                f"{action.kind} refused: {type(refusal).__name__}: {refusal}\n{action!r}"
            ) from refusal
        return [
            Emitted(action.service, stream, event, action.at, actor) for stream, event in decided
        ]

    def pack(self, county: str, on: date) -> PolicyPack:
        return self.scenario.pack(county, on)

    # --- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, action: a.DispatchAction) -> list[tuple[str, DomainEvent]]:
        county = action.county
        command, on = _dispatch_command(action)
        state = self._counties.get(county) or dispatch.CountyDispatch(county=county)
        events = dispatch.decide(command, state, self.pack(county, on))
        for event in events:
            state = dispatch.evolve(state, event)
            self._learn(event)
        self._counties[county] = state
        stream = dispatch.stream_id(county)
        return [(stream, e) for e in events]

    def _learn(self, event: DomainEvent) -> None:
        """The replicas of dispatch that attendance and assessment keep."""
        if isinstance(event, VillageRegistered):
            self._villages[event.village_id] = event
        elif isinstance(event, CadreAssigned):
            village = self._villages[event.village_id]
            self.posts[event.cadre_id] = _Post(
                assignment_id=event.assignment_id,
                cadre_id=event.cadre_id,
                team_id=event.team_id,
                village_id=event.village_id,
                township=village.township,
                county=event.county,
                term_start=event.term_start,
                term_end=event.term_end,
                ended_on=None,
                geofence=village.geofence,
                households=village.households,
            )
        elif isinstance(event, AssignmentEnded):
            self.posts[event.cadre_id].ended_on = event.ended_on

    def _post(self, cadre_id: str, *days: date) -> _Post:
        post = self.posts.get(cadre_id)
        if post is None:
            raise SimulationError(f"cadre {cadre_id!r} has no assignment")
        for day in days:
            if day < post.term_start or (post.ended_on is not None and day > post.ended_on):
                raise SimulationError(f"cadre {cadre_id!r} is not on post on {day}")
        return post

    # --- attendance -------------------------------------------------------------------------

    def _attendance(self, action: a.Action) -> list[tuple[str, DomainEvent]]:
        if self.strict:
            return self._attendance_strict(action)
        match action:
            case a.CheckInBatch():
                return self._check_ins(action)
            case a.ConfirmPresence():
                post = self._post(action.cadre_id, *action.days)
                by_month: dict[str, list[date]] = defaultdict(list)
                for day in sorted(set(action.days)):
                    by_month[month_key(day)].append(day)
                out: list[tuple[str, DomainEvent]] = []
                for month, days in sorted(by_month.items()):
                    self._open_month(action.cadre_id, month).presence.update(days)
                    out.append(
                        (
                            attendance.month_stream(action.cadre_id, month),
                            PresenceConfirmed(
                                confirmation_id=action.confirmation_id,
                                cadre_id=action.cadre_id,
                                assignment_id=post.assignment_id,
                                village_id=post.village_id,
                                days=tuple(days),
                                note=action.note,
                            ),
                        )
                    )
                return out
            case a.RequestLeave():
                post = self._post(action.cadre_id, action.first_day, action.last_day)
                pack = self.pack(post.county, action.first_day)
                length = (action.last_day - action.first_day).days + 1
                level = approval_level(length, pack)
                self._leaves[action.cadre_id][action.leave_id] = _Leave(
                    action.leave_kind, action.first_day, action.last_day, level=level
                )
                return [
                    (
                        attendance.leave_stream(action.cadre_id),
                        LeaveRequested(
                            leave_id=action.leave_id,
                            cadre_id=action.cadre_id,
                            assignment_id=post.assignment_id,
                            village_id=post.village_id,
                            kind=action.leave_kind,
                            first_day=action.first_day,
                            last_day=action.last_day,
                            days=length,
                            purpose=action.purpose,
                            approval_level=level,
                            policy_version=pack.version,
                        ),
                    )
                ]
            case a.DecideLeave():
                return self._decide_leave(action)
            case a.SpotCheck():
                post = self._post(action.cadre_id, action.day)
                open_month = self._open_month(action.cadre_id, month_key(action.day))
                absent = action.result is SpotCheckResult.ABSENT
                excuse = self._approved_covering(action.cadre_id, action.day) if absent else None
                open_month.spot_checks.append((action.spot_check_id, absent, excuse))
                return [
                    (
                        attendance.month_stream(action.cadre_id, month_key(action.day)),
                        SpotCheckRecorded(
                            spot_check_id=action.spot_check_id,
                            cadre_id=action.cadre_id,
                            assignment_id=post.assignment_id,
                            village_id=post.village_id,
                            day=action.day,
                            result=action.result,
                            excused_by_leave_id=excuse,
                            findings=action.findings,
                        ),
                    )
                ]
            case a.WriteDiary():
                post = self._post(action.cadre_id, action.day)
                return [
                    (
                        attendance.work_stream(action.cadre_id),
                        DiaryEntryWritten(
                            entry_id=action.entry_id,
                            cadre_id=action.cadre_id,
                            assignment_id=post.assignment_id,
                            village_id=post.village_id,
                            day=action.day,
                            text=action.text,
                        ),
                    )
                ]
            case a.VisitHousehold():
                post = self._post(action.cadre_id, action.visited_on)
                return [
                    (
                        attendance.work_stream(action.cadre_id),
                        HouseholdVisited(
                            visit_id=action.visit_id,
                            cadre_id=action.cadre_id,
                            assignment_id=post.assignment_id,
                            village_id=post.village_id,
                            household_id=action.household_id,
                            visited_on=action.visited_on,
                            note=action.note,
                        ),
                    )
                ]
            case a.CloseCountyMonth():
                return [
                    (attendance.month_stream(cadre_id, action.month), self._close(cadre_id, action))
                    for cadre_id in sorted(action.expected)
                ]
        raise TypeError(f"not an attendance action: {action!r}")

    def _open_month(self, cadre_id: str, month: str) -> _Month:
        key = (cadre_id, month)
        if key in self._closed:
            raise SimulationError(f"month {month} of {cadre_id!r} is closed: evidence refused")
        found = self._months.get(key)
        if found is None:
            found = self._months[key] = _Month()
        return found

    def _check_ins(self, action: a.CheckInBatch) -> list[tuple[str, DomainEvent]]:
        post = self._post(action.cadre_id)
        if not self.check_ins:
            for day, inside in action.days:
                month = self._open_month(action.cadre_id, month_key(day))
                if inside:
                    month.presence.add(day)
            return []
        rules = self.pack(post.county, action.days[0][0]).rules(AttendancePolicy)
        out: list[tuple[str, DomainEvent]] = []
        for item in action.items():
            day = local_day(item.occurred_at)
            self._post(action.cadre_id, day)
            key = month_key(day)
            month = self._open_month(action.cadre_id, key)
            if item.check_in_id in month.check_ins:
                continue
            evidence = None
            flag = None
            if item.location is not None:
                evidence = evaluate_location(
                    tc.Coordinates(latitude=item.location[0], longitude=item.location[1]),
                    tc.Geofence(**post.geofence.model_dump()),
                )
                if evidence.inside_geofence is not item.inside:
                    raise SimulationError(f"check-in {item.check_in_id} lands on the wrong side")
                flag = _travel_flag(
                    item.occurred_at, evidence.distance_m, month, rules.max_travel_speed_kmh
                )
                month.located.append((item.occurred_at, item.check_in_id, evidence.distance_m))
            month.check_ins.add(item.check_in_id)
            if evidence is None or evidence.inside_geofence:
                month.presence.add(day)
            out.append(
                (
                    attendance.month_stream(action.cadre_id, key),
                    CheckInRecorded(
                        check_in_id=item.check_in_id,
                        cadre_id=action.cadre_id,
                        assignment_id=post.assignment_id,
                        village_id=post.village_id,
                        occurred_at=item.occurred_at,
                        day=day,
                        location=evidence,
                        travel_flag=flag,
                    ),
                )
            )
        return out

    def _decide_leave(self, action: a.DecideLeave) -> list[tuple[str, DomainEvent]]:
        leave = self._leaves[action.cadre_id].get(action.leave_id)
        if leave is None or leave.status != "pending":
            raise SimulationError(f"leave {action.leave_id} is not pending")
        stream = attendance.leave_stream(action.cadre_id)
        event: DomainEvent
        if action.decision == "cancel":
            leave.status = "cancelled"
            event = LeaveCancelled(
                leave_id=action.leave_id, cadre_id=action.cadre_id, reason=action.reason
            )
            return [(stream, event)]
        level = ApprovalLevel.COUNTY if action.by == "county" else ApprovalLevel.TOWNSHIP
        if leave.level is ApprovalLevel.COUNTY and level is ApprovalLevel.TOWNSHIP:
            raise SimulationError(f"leave {action.leave_id} needs the county's approval")
        if action.decision == "approve":
            for month in _months_touched(leave.first_day, leave.last_day):
                if (action.cadre_id, month) in self._closed:
                    raise SimulationError(f"leave {action.leave_id} touches closed month {month}")
            leave.status = "approved"
            event = LeaveApproved(
                leave_id=action.leave_id, cadre_id=action.cadre_id, approved_at_level=level
            )
        else:
            leave.status = "rejected"
            event = LeaveRejected(
                leave_id=action.leave_id, cadre_id=action.cadre_id, reason=action.reason
            )
        return [(stream, event)]

    def _approved_covering(self, cadre_id: str, day: date) -> str | None:
        for leave_id, leave in self._leaves[cadre_id].items():
            if leave.status == "approved" and leave.first_day <= day <= leave.last_day:
                return leave_id
        return None

    def _close(self, cadre_id: str, action: a.CloseCountyMonth) -> MonthClosed:
        """The month close, with attendance's arithmetic (``domain/tally.py``)."""
        post = self._post(cadre_id)
        month_name = action.month
        first, last = month_bounds(month_name)
        month = self._open_month(cadre_id, month_name)
        pack = self.pack(post.county, last)
        rules = pack.rules(AttendancePolicy)
        end = post.ended_on or last
        start = max(first, post.term_start)
        in_post = {start + timedelta(days=n) for n in range((min(last, end) - start).days + 1)}
        by_kind: dict[LeaveKind, set[date]] = defaultdict(set)
        for leave in self._leaves[cadre_id].values():
            if leave.status != "approved" or leave.last_day < first or leave.first_day > last:
                continue
            day = max(first, leave.first_day)
            while day <= min(last, leave.last_day):
                by_kind[leave.kind].add(day)
                day += timedelta(days=1)
        personal = by_kind[LeaveKind.PERSONAL] & in_post
        sick = (by_kind[LeaveKind.SICK] & in_post) - personal
        excused = personal | sick
        business = (by_kind[LeaveKind.VILLAGE_BUSINESS] & in_post) - excused
        presence = (month.presence & in_post) - excused
        in_village = presence | business
        eligible = len(in_post) - len(excused)
        required = rules.required_days(eligible, rules.period_days(first.year, first.month))
        approved = {
            leave_id
            for leave_id, leave in self._leaves[cadre_id].items()
            if leave.status == "approved"
        }
        unexcused = sum(
            1
            for _, absent, excuse in month.spot_checks
            if absent and (excuse is None or excuse not in approved)
        )
        closed = MonthClosed(
            cadre_id=cadre_id,
            month=month_name,
            assignment_ids=(post.assignment_id,),
            village_id=post.village_id,
            days_in_month=(last - first).days + 1,
            days_in_post=len(in_post),
            presence_days=len(presence),
            business_days=len(business),
            in_village_days=len(in_village),
            personal_leave_days=len(personal),
            sick_leave_days=len(sick),
            eligible_days=eligible,
            required_days=required,
            shortfall=max(0, required - len(in_village)),
            spot_checks=len(month.spot_checks),
            unexcused_absences=unexcused,
            policy_version=pack.version,
        )
        del self._months[(cadre_id, month_name)]  # the month is done
        self._closed.add((cadre_id, month_name))
        self.absences[(cadre_id, first.year)] += unexcused
        return closed

    # --- attendance through its deciders (strict) -------------------------------------------

    def _attendance_strict(self, action: a.Action) -> list[tuple[str, DomainEvent]]:
        match action:
            case a.CheckInBatch():
                out: list[tuple[str, DomainEvent]] = []
                post = self._post(action.cadre_id)
                by_month: dict[str, list[tc.CheckIn]] = defaultdict(list)
                for item in action.items():
                    day = local_day(item.occurred_at)
                    by_month[month_key(day)].append(
                        tc.CheckIn(
                            check_in_id=item.check_in_id,
                            cadre_id=action.cadre_id,
                            occurred_at=item.occurred_at,
                            location=None
                            if item.location is None
                            else tc.Coordinates(
                                latitude=item.location[0], longitude=item.location[1]
                            ),
                            post=self._post(action.cadre_id, day).attendance(),
                            received_at=item.occurred_at + timedelta(minutes=1),
                        )
                    )
                for month, commands in sorted(by_month.items()):
                    pack = self.pack(post.county, month_bounds(month)[0])
                    state = self._month_state(action.cadre_id, month)
                    events, outcomes = attendance.check_in_batch(commands, state, pack)
                    for outcome in outcomes:
                        if outcome.error is not None:
                            raise outcome.error
                    out.extend(self._fold_month(action.cadre_id, month, events))
                return out
            case a.ConfirmPresence():
                days = sorted(set(action.days))
                confirm = tc.ConfirmPresence(
                    confirmation_id=action.confirmation_id,
                    cadre_id=action.cadre_id,
                    days=tuple(days),
                    note=action.note,
                    post=self._post(action.cadre_id, days[0]).attendance(),
                    today=action.at.astimezone(a.SHANGHAI).date(),
                )
                months = sorted({month_key(d) for d in days})
                states = {m: self._month_state(action.cadre_id, m) for m in months}
                decided = attendance.confirm_presence(confirm, states)
                out = []
                for month, events in sorted(decided.items()):
                    out.extend(self._fold_month(action.cadre_id, month, events))
                return out
            case a.RequestLeave():
                post = self._post(action.cadre_id, action.first_day)
                request = tc.RequestLeave(
                    leave_id=action.leave_id,
                    cadre_id=action.cadre_id,
                    kind=action.leave_kind,
                    first_day=action.first_day,
                    last_day=action.last_day,
                    purpose=action.purpose,
                    post=post.attendance(),
                )
                months = attendance.months_touched(action.first_day, action.last_day)
                states = {m: self._month_state(action.cadre_id, m) for m in months}
                events = attendance.request_leave(
                    request,
                    self._leave_state(action.cadre_id),
                    states,
                    self.pack(post.county, action.first_day),
                )
                return self._fold_leave(action.cadre_id, events)
            case a.DecideLeave():
                leave_state = self._leave_state(action.cadre_id)
                known = leave_state.leaves[action.leave_id]
                months = attendance.months_touched(known.first_day, known.last_day)
                states = {m: self._month_state(action.cadre_id, m) for m in months}
                level = ApprovalLevel.COUNTY if action.by == "county" else ApprovalLevel.TOWNSHIP
                pack = self.pack(self._post(action.cadre_id).county, known.first_day)
                if action.decision == "approve":
                    events = attendance.approve_leave(
                        tc.ApproveLeave(
                            leave_id=action.leave_id, cadre_id=action.cadre_id, approver_level=level
                        ),
                        leave_state,
                        states,
                        pack,
                    )
                elif action.decision == "reject":
                    events = attendance.reject_leave(
                        tc.RejectLeave(
                            leave_id=action.leave_id,
                            cadre_id=action.cadre_id,
                            approver_level=level,
                            reason=action.reason,
                        ),
                        leave_state,
                    )
                else:
                    events = attendance.cancel_leave(
                        tc.CancelLeave(
                            leave_id=action.leave_id, cadre_id=action.cadre_id, reason=action.reason
                        ),
                        leave_state,
                        states,
                    )
                return self._fold_leave(action.cadre_id, events)
            case a.SpotCheck():
                month = month_key(action.day)
                check = tc.RecordSpotCheck(
                    spot_check_id=action.spot_check_id,
                    cadre_id=action.cadre_id,
                    day=action.day,
                    result=action.result,
                    findings=action.findings,
                    post=self._post(action.cadre_id, action.day).attendance(),
                    today=action.at.astimezone(a.SHANGHAI).date(),
                )
                events = attendance.record_spot_check(
                    check,
                    self._month_state(action.cadre_id, month),
                    self._leave_state(action.cadre_id),
                )
                return self._fold_month(action.cadre_id, month, events)
            case a.WriteDiary():
                command_d = tc.WriteDiaryEntry(
                    entry_id=action.entry_id,
                    cadre_id=action.cadre_id,
                    day=action.day,
                    text=action.text,
                    post=self._post(action.cadre_id, action.day).attendance(),
                    today=action.at.astimezone(a.SHANGHAI).date(),
                )
                return self._fold_work(
                    action.cadre_id,
                    attendance.write_diary_entry(command_d, self._work_state(action.cadre_id)),
                )
            case a.VisitHousehold():
                command_v = tc.RecordHouseholdVisit(
                    visit_id=action.visit_id,
                    cadre_id=action.cadre_id,
                    household_id=action.household_id,
                    visited_on=action.visited_on,
                    note=action.note,
                    post=self._post(action.cadre_id, action.visited_on).attendance(),
                    today=action.at.astimezone(a.SHANGHAI).date(),
                )
                return self._fold_work(
                    action.cadre_id,
                    attendance.record_household_visit(command_v, self._work_state(action.cadre_id)),
                )
            case a.CloseCountyMonth():
                out = []
                today = action.at.astimezone(a.SHANGHAI).date()
                last = month_bounds(action.month)[1]
                for cadre_id in sorted(action.expected):
                    post = self._post(cadre_id)
                    pack = self.pack(post.county, last)
                    command_c = tc.CloseMonth(
                        cadre_id=cadre_id,
                        month=action.month,
                        posts=(post.attendance(),),
                        today=today,
                    )
                    events = attendance.close_month(
                        command_c,
                        self._month_state(cadre_id, action.month),
                        self._leave_state(cadre_id),
                        pack,
                    )
                    for event in events:
                        if isinstance(event, MonthClosed):
                            self.absences[(cadre_id, last.year)] += event.unexcused_absences
                    out.extend(self._fold_month(cadre_id, action.month, events))
                return out
        raise TypeError(f"not an attendance action: {action!r}")

    def _month_state(self, cadre_id: str, month: str) -> attendance.MonthState:
        key = (cadre_id, month)
        if key not in self._month_states:
            self._month_states[key] = attendance.MonthState.empty(cadre_id, month)
        return self._month_states[key]

    def _leave_state(self, cadre_id: str) -> attendance.LeaveState:
        if cadre_id not in self._leave_states:
            self._leave_states[cadre_id] = attendance.LeaveState.empty(cadre_id)
        return self._leave_states[cadre_id]

    def _work_state(self, cadre_id: str) -> attendance.WorkState:
        if cadre_id not in self._work_states:
            self._work_states[cadre_id] = attendance.WorkState.empty(cadre_id)
        return self._work_states[cadre_id]

    def _fold_month(
        self, cadre_id: str, month: str, events: Iterable[DomainEvent]
    ) -> list[tuple[str, DomainEvent]]:
        state = self._month_state(cadre_id, month)
        out = []
        for event in events:
            state = attendance.evolve_month(state, event)
            out.append((attendance.month_stream(cadre_id, month), event))
        self._month_states[(cadre_id, month)] = state
        return out

    def _fold_leave(
        self, cadre_id: str, events: Iterable[DomainEvent]
    ) -> list[tuple[str, DomainEvent]]:
        state = self._leave_state(cadre_id)
        out = []
        for event in events:
            state = attendance.evolve_leave(state, event)
            out.append((attendance.leave_stream(cadre_id), event))
        self._leave_states[cadre_id] = state
        return out

    def _fold_work(
        self, cadre_id: str, events: Iterable[DomainEvent]
    ) -> list[tuple[str, DomainEvent]]:
        state = self._work_state(cadre_id)
        out = []
        for event in events:
            state = attendance.evolve_work(state, event)
            out.append((attendance.work_stream(cadre_id), event))
        self._work_states[cadre_id] = state
        return out

    # --- assessment (its deciders, always) --------------------------------------------------

    def _assessment(self, action: a.Action) -> list[tuple[str, DomainEvent]]:
        today = action.at.astimezone(a.SHANGHAI).date()
        match action:
            case a.InspectCadre():
                post = self._post(action.cadre_id, action.held_on).assessment()
                return self._on_cadre(
                    action.cadre_id,
                    lambda s: assessment.inspect_cadre(
                        ac.InspectCadre(
                            inspection_id=action.inspection_id,
                            kind=action.inspection_kind,
                            post=post,
                            held_on=action.held_on,
                            findings=action.findings,
                            problems_found=action.problems_found,
                            today=today,
                        ),
                        s,
                    ),
                )
            case a.InspectTeam():
                command_t = ac.InspectTeam(
                    inspection_id=action.inspection_id,
                    kind=action.inspection_kind,
                    team_id=action.team_id,
                    village_id=self._team_village(action.team_id),
                    county=action.county,
                    township=action.township,
                    held_on=action.held_on,
                    findings=action.findings,
                    problems_found=action.problems_found,
                    today=today,
                )
                state_t = self._team_states.get(action.team_id) or assessment.TeamState.empty(
                    action.team_id
                )
                events = assessment.inspect_team(command_t, state_t)
                for event in events:
                    state_t = assessment.evolve_team(state_t, event)
                self._team_states[action.team_id] = state_t
                return [(assessment.team_stream(action.team_id), e) for e in events]
            case a.EvaluateByVillagers():
                post = self._post(action.cadre_id).assessment()
                return self._on_cadre(
                    action.cadre_id,
                    lambda s: assessment.record_villager_evaluation(
                        ac.RecordVillagerEvaluation(
                            evaluation_id=action.evaluation_id,
                            post=post,
                            period=action.period,
                            satisfaction=action.satisfaction,
                            respondents=action.respondents,
                        ),
                        s,
                    ),
                )
            case a.RecordSanction():
                post = self._post(action.cadre_id).assessment()
                return self._on_cadre(
                    action.cadre_id,
                    lambda s: assessment.record_sanction(
                        ac.RecordSanction(
                            sanction_id=action.sanction_id,
                            post=post,
                            kind=action.sanction_kind,
                            decided_on=action.decided_on,
                            authority=action.authority,
                            reason=action.reason,
                            today=action.decided_on,
                        ),
                        s,
                    ),
                )
            case a.AssessTerm():
                post = self._post(action.cadre_id).assessment()
                last_day = post.ended_on or post.term_end
                facts = self._facts(action.cadre_id, last_day.year, action.absences)
                pack = self.pack(post.county, last_day)
                return self._on_cadre(
                    action.cadre_id,
                    lambda s: assessment.assess_term(
                        ac.AssessTerm(post=post, grade=action.grade, attendance=facts, today=today),
                        s,
                        pack,
                    ),
                )
            case a.AssessQuarter():
                post = self._post(action.cadre_id).assessment()
                last = assessment.quarter_bounds(action.quarter)[1]
                pack = self.pack(post.county, last)
                command_q = ac.AssessQuarter(
                    post=post,
                    quarter=action.quarter,
                    township_score=action.township_score,
                    villager_score=action.villager_score,
                    county_panel_score=action.county_panel_score,
                    obligation_id=f"talks-{action.cadre_id}-{action.quarter}",
                    today=today,
                )
                return self._on_quarter(
                    post.county,
                    action.quarter,
                    lambda s: assessment.assess_quarter(command_q, s, pack),
                )
            case a.HoldTalk():
                command_h = ac.RecordAdmonitionTalk(
                    obligation_id=action.obligation_id,
                    cadre_id=action.cadre_id,
                    by=action.by,
                    held_on=action.held_on,
                    note=action.note,
                    today=today,
                )
                return self._on_quarter(
                    action.county,
                    action.quarter,
                    lambda s: assessment.record_admonition_talk(command_h, s),
                )
            case a.PublishLists():
                last = assessment.quarter_bounds(action.quarter)[1]
                pack = self.pack(action.county, last)
                command_l = ac.PublishLists(
                    list_id=action.list_id,
                    county=action.county,
                    quarter=action.quarter,
                    today=today,
                )
                published = self._on_quarter(
                    action.county,
                    action.quarter,
                    lambda s: assessment.publish_lists(command_l, s, pack),
                )
                # The quarter is done (its talks come before its lists in the timeline).
                self._quarter_states.pop((action.county, action.quarter), None)
                return published
            case a.OpenAnnualRound():
                command_o = ac.OpenAnnualRound(
                    round_id=action.round_id, county=action.county, year=action.year, today=today
                )
                return self._on_annual(
                    action.county, action.year, lambda s: assessment.open_annual_round(command_o, s)
                )
            case a.ProposeAnnualGrade():
                post = self._post(action.cadre_id).assessment()
                facts = self._facts(action.cadre_id, action.year, action.absences)
                pack = self.pack(action.county, date(action.year, 12, 31))
                return self._on_annual(
                    action.county,
                    action.year,
                    lambda s: assessment.propose_annual_grade(
                        ac.ProposeAnnualGrade(
                            round_id=s.round_id,
                            county=action.county,
                            year=action.year,
                            post=post,
                            grade=action.grade,
                            attendance=facts,
                            today=today,
                        ),
                        s,
                        pack,
                    ),
                )
            case a.FinaliseAnnualRound():
                pack = self.pack(action.county, date(action.year, 12, 31))
                return self._on_annual(
                    action.county,
                    action.year,
                    lambda s: assessment.finalise_annual_round(
                        ac.FinaliseAnnualRound(
                            round_id=s.round_id,
                            county=action.county,
                            year=action.year,
                            today=today,
                        ),
                        s,
                        pack,
                    ),
                )
        raise TypeError(f"not an assessment action: {action!r}")

    def _facts(self, cadre_id: str, year: int, expected: int) -> ac.AttendanceFacts:
        absences = self.absences.get((cadre_id, year), 0)
        if absences != expected:
            raise SimulationError(
                f"cadre {cadre_id!r} has {absences} unexcused absences in {year},"
                f" the scenario planned {expected}"
            )
        return ac.AttendanceFacts(cadre_id=cadre_id, year=year, unexcused_absences=absences)

    def _team_village(self, team_id: str) -> str:
        for post in self.posts.values():
            if post.team_id == team_id:
                return post.village_id
        raise SimulationError(f"team {team_id!r} has nobody assigned")

    def _on_cadre(
        self, cadre_id: str, decide: Callable[[assessment.CadreState], list[DomainEvent]]
    ) -> list[tuple[str, DomainEvent]]:
        state = self._cadre_states.get(cadre_id) or assessment.CadreState.empty(cadre_id)
        events = decide(state)
        for event in events:
            state = assessment.evolve_cadre(state, event)
        self._cadre_states[cadre_id] = state
        return [(assessment.cadre_stream(cadre_id), e) for e in events]

    def _on_quarter(
        self,
        county: str,
        quarter: str,
        decide: Callable[[assessment.QuarterState], list[DomainEvent]],
    ) -> list[tuple[str, DomainEvent]]:
        key = (county, quarter)
        state = self._quarter_states.get(key) or assessment.QuarterState.empty(county, quarter)
        events = decide(state)
        for event in events:
            state = assessment.evolve_quarter(state, event)
        self._quarter_states[key] = state
        return [(assessment.quarter_stream(county, quarter), e) for e in events]

    def _on_annual(
        self, county: str, year: int, decide: Callable[[assessment.AnnualState], list[DomainEvent]]
    ) -> list[tuple[str, DomainEvent]]:
        key = (county, year)
        state = self._annual_states.get(key) or assessment.AnnualState.empty(county, year)
        events = decide(state)
        for event in events:
            state = assessment.evolve_annual(state, event)
        self._annual_states[key] = state
        return [(assessment.annual_stream(county, year), e) for e in events]


def _dispatch_command(action: a.DispatchAction) -> tuple[dispatch.DispatchCommand, date]:
    """The dispatch command of an action, and the date that picks the pack (as the HTTP edge
    does: the command's first date field)."""
    at = action.at.astimezone(a.SHANGHAI).date()
    match action:
        case a.RegisterVillage():
            return (
                dc.RegisterVillage(
                    village_id=action.village_id,
                    name=action.name,
                    township=action.township,
                    categories=action.categories,
                    geofence=Geofence(
                        latitude=action.latitude,
                        longitude=action.longitude,
                        radius_m=action.radius_m,
                    ),
                    households=action.households,
                    monitored_population=action.monitored_population,
                    county=action.county,
                ),
                at,
            )
        case a.DeclareNeeds():
            return (
                dc.DeclareVillageNeeds(
                    village_id=action.village_id, needs=action.needs, declared_on=action.declared_on
                ),
                action.declared_on,
            )
        case a.RegisterCadre():
            return (
                dc.RegisterCadre(
                    cadre_id=action.cadre_id,
                    sending_unit=action.sending_unit,
                    unit_kind=action.unit_kind,
                    unit_level=action.unit_level,
                    birth_year=action.birth_year,
                    party_member_since=action.party_member_since,
                    rural_experience_years=action.rural_experience_years,
                    skills=action.skills,
                    county=action.county,
                ),
                at,
            )
        case a.OpenRound():
            return (
                dc.OpenRound(
                    round_id=action.round_id,
                    county=action.county,
                    name=action.name,
                    opened_on=action.opened_on,
                ),
                action.opened_on,
            )
        case a.FormTeam():
            return (
                dc.FormTeam(
                    team_id=action.team_id,
                    round_id=action.round_id,
                    village_id=action.village_id,
                    formed_on=action.formed_on,
                ),
                action.formed_on,
            )
        case a.AssignCadre():
            return (
                dc.AssignCadre(
                    assignment_id=action.assignment_id,
                    team_id=action.team_id,
                    cadre_id=action.cadre_id,
                    role=action.role,
                    term_start=action.term_start,
                ),
                action.term_start,
            )
        case a.CloseRound():
            return dc.CloseRound(
                round_id=action.round_id, closed_on=action.closed_on
            ), action.closed_on
        case a.AppointLeader():
            return (
                dc.AppointTownshipLeader(
                    appointment_id=action.appointment_id,
                    township=action.township,
                    cadre_id=action.cadre_id,
                    term_start=action.term_start,
                ),
                action.term_start,
            )
        case a.EndAssignment():
            return (
                dc.EndAssignment(assignment_id=action.assignment_id, ended_on=action.ended_on),
                action.ended_on,
            )
    raise TypeError(f"not a dispatch action: {action!r}")


def _months_touched(first: date, last: date) -> list[str]:
    return attendance.months_touched(first, last)


def _travel_flag(
    occurred_at: datetime, distance: int, month: _Month, max_speed: float
) -> TravelFlag | None:
    """Impossible travel, as attendance judges it (``domain/presence.py``): against the
    month's located check-ins of the village, the closest in time wins."""
    found: TravelFlag | None = None
    for other_at, other_id, other_distance in month.located:
        gap = max(0, abs(distance - other_distance) - DISTANCE_ROUNDING_M)
        if gap == 0:
            continue
        seconds = abs((occurred_at - other_at).total_seconds())
        if seconds > 0 and gap * 3.6 <= max_speed * seconds:
            continue
        minutes = seconds / 60
        if found is None or minutes < found.minutes_apart:
            found = TravelFlag(
                other_check_in_id=other_id,
                minutes_apart=minutes,
                min_distance_m=gap,
                max_speed_kmh=max_speed,
            )
    return found


def run(scenario: Scenario, *, strict: bool = False, check_ins: bool = True) -> Iterable[Emitted]:
    """Every event of the scenario, in order (a convenience for tests)."""
    engine = Engine(scenario, strict=strict, check_ins=check_ins)
    for phase in scenario.phases():
        for action in phase.actions:
            yield from engine.apply(action)


__all__ = ["Emitted", "Engine", "SimulationError", "run"]
