"""What each simulated cadre does over the term, as plans the timeline turns into actions.

A ``CadrePlan`` is decided once per cadre (which months fall short, which year has three
unexcused absences or too much leave, which quarters are graded 一般...): it is what makes
the behaviours trigger the rules of ``docs/decisions.md``. A ``MonthPlan`` (presence days,
business trips, spot checks, diaries, visits) is derived on demand from the cadre plan and a
random generator seeded with the seed, the cadre and the month, so a province's months never
need to be held in memory at once and the same month is always planned the same way.

The month plan also computes what the month close must say (``MonthFigures``), with the same
arithmetic as attendance's tally (``zhucun.attendance.domain.tally``): the topics writer
publishes these figures, and the tests check them against the service's own tally.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from zhucun.assessment.domain.periods import quarter_bounds
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.attendance.domain.days import month_bounds, parse_month
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.contracts.assessment.events import AnnualGrade
from zhucun.contracts.attendance.events import LeaveKind
from zhucun.contracts.dispatch.events import Role
from zhucun.projections.domain.policy import DecisionPolicy
from zhucun.shared.policy import PolicyPack
from zhucun.sim.world import Behaviour, Cadre

Fate = Literal["approve", "reject", "cancel"]
Band = Literal["top", "good", "fairly_good", "average", "poor"]


@dataclass(frozen=True, slots=True)
class Calendar:
    """The term and what of it lies in the past.

    ``today`` is the day the simulation is run "as of" (Asia/Shanghai). The services refuse
    evidence from the future, closes of months not over, assessments of quarters not over and
    term assessments before the term ends, so activity stops at ``horizon`` (yesterday, or the
    term's last day) and each period is closed or assessed only once it is over."""

    term_start: date
    #: The planned end (``term_start`` + the pack's minimum term), the last day on post.
    term_end: date
    today: date
    #: Months with days on post up to the horizon, in order (computed).
    months: tuple[str, ...] = ()
    #: Quarters to assess: over, with at least 30 days on post (computed).
    assessed_quarters: tuple[str, ...] = ()
    #: The last day of activity: yesterday, or the term's last day (computed).
    horizon: date = date.min
    #: Month -> its days on post (computed).
    _days: Mapping[str, tuple[date, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizon", min(self.term_end, self.today - timedelta(days=1)))
        months = []
        year, number = self.term_start.year, self.term_start.month
        while (year, number) <= (self.horizon.year, self.horizon.month):
            months.append(f"{year:04d}-{number:02d}")
            year, number = (year + 1, 1) if number == 12 else (year, number + 1)
        object.__setattr__(self, "months", tuple(months))
        quarters: list[str] = []
        for month in months:
            year, number = parse_month(month)
            quarter = f"{year}-Q{(number - 1) // 3 + 1}"
            if quarter in quarters:
                continue
            first, last = quarter_bounds(quarter)
            on_post = (min(last, self.term_end) - max(first, self.term_start)).days + 1
            if last < self.today and on_post >= 30:
                quarters.append(quarter)
        object.__setattr__(self, "assessed_quarters", tuple(quarters))
        days = {}
        for month in months:
            first, last = month_bounds(month)
            first, last = max(first, self.term_start), min(last, self.term_end)
            days[month] = tuple(first + timedelta(days=n) for n in range((last - first).days + 1))
        object.__setattr__(self, "_days", days)

    @property
    def term_over(self) -> bool:
        return self.term_end < self.today

    def closable(self, month: str) -> bool:
        return month_bounds(month)[1] < self.today

    def days_in_post(self, month: str) -> tuple[date, ...]:
        known = self._days.get(month)
        if known is not None:
            return known
        first, last = month_bounds(month)
        first, last = max(first, self.term_start), min(last, self.term_end)
        return tuple(first + timedelta(days=n) for n in range((last - first).days + 1))

    def quarters(self) -> tuple[str, ...]:
        return self.assessed_quarters

    def round_years(self) -> tuple[int, ...]:
        """Years of the term that are over: each gets an annual round."""
        return tuple(
            year
            for year in range(self.term_start.year, self.term_end.year + 1)
            if date(year, 12, 31) < self.today
        )

    def years(self) -> tuple[int, ...]:
        return tuple(range(self.term_start.year, self.horizon.year + 1))

    def clamp(self, day: date) -> date:
        """A business date never later than ``today``."""
        return min(day, self.today)


@dataclass(frozen=True, slots=True)
class LeavePlan:
    """A leave request and what becomes of it."""

    leave_id: str
    kind: LeaveKind
    first_day: date
    last_day: date
    fate: Fate
    requested_on: date
    purpose: str = ""

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def each_day(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.days)]


@dataclass(frozen=True, slots=True)
class CadrePlan:
    """The term-long decisions about one cadre (see the module docstring)."""

    cadre: Cadre
    #: Indices (in ``Calendar.months``) of the months planned short of the required days.
    shortfall_months: frozenset[int]
    #: Month index -> unexcused spot-check absences planned in it.
    absences: Mapping[int, int]
    #: Personal and sick leave over the term (business trips are planned month by month).
    leaves: tuple[LeavePlan, ...]
    #: Quarter -> the grade band its scores are drawn in.
    bands: Mapping[str, Band]
    #: Year -> the annual grade the county proposes (before the attendance cap and the share
    #: of 优秀; see ``Scenario.annual_proposals``).
    annual: Mapping[int, AnnualGrade]
    term_grade: AnnualGrade
    #: Year -> villagers' satisfaction (群众评议).
    satisfaction: Mapping[int, float]
    #: Share of presence days checked in with the app (the rest: confirmed by the township).
    app_share: float
    #: Share of check-ins that carry a location.
    location_share: float
    #: A disciplinary sanction on this day, if any.
    sanction_on: date | None = None
    #: Quality among the excellent (tie-break of the 优秀 share: the best first).
    quality: float = 0.0

    def absences_in(self, year: int, months: Sequence[str]) -> int:
        return sum(n for i, n in self.absences.items() if months[i].startswith(f"{year}-"))


@dataclass(frozen=True, slots=True)
class SpotCheckPlan:
    day: date
    absent: bool
    #: The leave that excuses an absence (approved leave or business trip covering the day).
    excused_by: str | None


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """What the month close says (the fields of ``attendance.MonthClosed``)."""

    days_in_month: int
    days_in_post: int
    presence_days: int
    business_days: int
    in_village_days: int
    personal_leave_days: int
    sick_leave_days: int
    eligible_days: int
    required_days: int
    shortfall: int
    spot_checks: int
    unexcused_absences: int


@dataclass(frozen=True, slots=True)
class MonthPlan:
    cadre_id: str
    month: str
    index: int
    #: Leave (personal, sick, business trips) requested this month, in request order.
    requests: tuple[LeavePlan, ...]
    #: Days checked in inside the geofence (presence) or outside it (not presence).
    check_ins: tuple[tuple[date, bool], ...]
    #: Days the township confirms.
    confirmed: tuple[date, ...]
    spot_checks: tuple[SpotCheckPlan, ...]
    diaries: tuple[date, ...]
    #: (household number, day).
    visits: tuple[tuple[int, date], ...]
    #: (day, problems found) of a weekly inspection of the cadre, if any.
    inspection: tuple[date, int] | None
    figures: MonthFigures | None = field(default=None)


# --- the cadre plan -------------------------------------------------------------------------


def plan_cadre(
    seed: int,
    cadre: Cadre,
    calendar: Calendar,
    packs: Mapping[int, PolicyPack],
) -> CadrePlan:
    """Decide the cadre's term. ``packs``: the pack in force for the cadre's county in each
    year of the term (on 30 June: leave limits, satisfaction thresholds)."""
    rng = random.Random(f"{seed}/{cadre.cadre_id}/plan")
    months = calendar.months
    closable = [i for i, m in enumerate(months) if calendar.closable(m)]
    # The stub month (the term's last day) and months too short to fall short are excluded.
    full = [i for i in closable if len(calendar.days_in_post(months[i])) >= 20]
    quarters = calendar.quarters()
    round_years = calendar.round_years()
    behaviour, trait = cadre.behaviour, cadre.trait

    shortfall: set[int] = set()
    absences: dict[int, int] = {}
    bands: dict[str, Band] = {}
    annual: dict[int, AnnualGrade] = {}
    term_grade = AnnualGrade.COMPETENT
    leaves: list[LeavePlan] = []
    reserved: set[date] = set()

    fullest = _fullest_year(calendar, round_years)
    if behaviour is Behaviour.ABSENTEE:
        shortfall = _shortfall_runs(rng, full)
        for year in calendar.years():
            in_year = [i for i in full if months[i].startswith(f"{year}-")]
            if not in_year:
                continue
            if trait == "three_absences" and year == fullest and len(in_year) >= 3:
                for i in rng.sample(in_year, 3):
                    absences[i] = absences.get(i, 0) + 1
            else:
                for i in rng.sample(in_year, min(len(in_year), rng.randint(0, 2))):
                    absences[i] = absences.get(i, 0) + 1
        if trait == "long_leave" and fullest is not None:
            limit = packs[fullest].rules(AttendancePolicy).annual_leave_limit_days
            leaves.extend(_long_leave(rng, cadre.cadre_id, calendar, fullest, limit, reserved))
        for quarter in quarters:
            bands[quarter] = "fairly_good" if rng.random() < 0.65 else "average"
        for year in round_years:
            annual[year] = AnnualGrade.COMPETENT  # the county proposes; the cap decides
        term_grade = AnnualGrade.COMPETENT
    elif behaviour is Behaviour.MEDIOCRE:
        for quarter in quarters:
            bands[quarter] = "fairly_good"
        poor_year = None
        if trait == "consecutive_average" and len(quarters) >= 2:
            start = rng.randrange(len(quarters) - 1)
            bands[quarters[start]] = bands[quarters[start + 1]] = "average"
        elif trait == "poor" and quarters:
            in_round = [q for q in quarters if int(q[:4]) in round_years]
            chosen = rng.choice(in_round or list(quarters))
            bands[chosen] = "poor"
            poor_year = int(chosen[:4])
            _isolated_average(rng, quarters, bands)
        elif quarters:
            _isolated_average(rng, quarters, bands)
        for year in round_years:
            if trait == "poor":
                annual[year] = (
                    AnnualGrade.INCOMPETENT
                    if year == poor_year
                    else AnnualGrade.BASICALLY_COMPETENT
                )
            elif trait == "consecutive_average":
                annual[year] = AnnualGrade.BASICALLY_COMPETENT
            else:
                annual[year] = AnnualGrade.COMPETENT
        term_grade = {
            "poor": AnnualGrade.INCOMPETENT,
            "consecutive_average": AnnualGrade.BASICALLY_COMPETENT,
        }.get(trait, AnnualGrade.COMPETENT)
    elif behaviour is Behaviour.EXCELLENT:
        for quarter in quarters:
            bands[quarter] = "top"
        for year in round_years:
            annual[year] = AnnualGrade.EXCELLENT
        term_grade = AnnualGrade.EXCELLENT
        if trait == "capped" and round_years:
            year = round_years[0]
            in_year = [i for i in full if months[i].startswith(f"{year}-")]
            if in_year:
                absences[rng.choice(in_year)] = 1
    else:
        for quarter in quarters:
            bands[quarter] = "good" if rng.random() < 0.3 else "fairly_good"
        for year in round_years:
            annual[year] = AnnualGrade.COMPETENT
        term_grade = AnnualGrade.COMPETENT

    leaves.extend(_ordinary_leave(rng, cadre.cadre_id, calendar, behaviour, reserved, len(leaves)))
    leaves.sort(key=lambda leave: (leave.requested_on, leave.first_day))

    satisfaction = {}
    for year in calendar.years():
        threshold = packs[year].rules(DecisionPolicy).publicise_villager_satisfaction_min
        satisfaction[year] = round(
            {
                Behaviour.EXCELLENT: rng.uniform(threshold + 0.5, min(100.0, threshold + 4.5)),
                Behaviour.DILIGENT: rng.uniform(80, threshold - 0.6),
                Behaviour.MEDIOCRE: rng.uniform(68, 88),
                Behaviour.ABSENTEE: rng.uniform(55, 80),
            }[behaviour],
            1,
        )
    # Most cadres check in every day they are there; some forget now and then (the township
    # confirms those days); about one in eight has no app at all (the township confirms all).
    roll = rng.random()
    app_share = 0.0 if roll < 0.12 else rng.uniform(0.85, 0.97) if roll < 0.35 else 1.0
    return CadrePlan(
        cadre=cadre,
        shortfall_months=frozenset(shortfall),
        absences=absences,
        leaves=tuple(leaves),
        bands=bands,
        annual=annual,
        term_grade=term_grade,
        satisfaction=satisfaction,
        app_share=app_share,
        location_share=rng.uniform(0.3, 0.9),
        quality=rng.random(),
    )


def _fullest_year(calendar: Calendar, preferred: Sequence[int]) -> int | None:
    """The year with the most closable months on post, among ``preferred`` when one of them
    has at least three."""
    counts: dict[int, int] = {}
    for month in calendar.months:
        if calendar.closable(month) and len(calendar.days_in_post(month)) >= 20:
            counts[int(month[:4])] = counts.get(int(month[:4]), 0) + 1
    if not counts:
        return None
    good = [y for y in preferred if counts.get(y, 0) >= 3]
    pool = good or list(counts)
    return max(pool, key=lambda y: (counts.get(y, 0), -y))


def _shortfall_runs(rng: random.Random, full: Sequence[int]) -> set[int]:
    """One or two runs of 2-3 consecutive short months, and up to two single ones."""
    chosen: set[int] = set()
    if len(full) < 2:
        return set(full[:1])
    for _ in range(rng.randint(1, 2)):
        length = rng.randint(2, 3)
        for _attempt in range(10):
            start = rng.randrange(len(full) - 1)
            run = [i for i in full[start : start + length] if i - full[start] < length]
            if len(run) >= 2 and not chosen & set(run) and not chosen & {run[0] - 1, run[-1] + 1}:
                chosen.update(run)
                break
    for _ in range(rng.randint(0, 2)):
        single = rng.choice(list(full))
        if not chosen & {single - 1, single, single + 1}:
            chosen.add(single)
    return chosen


def _isolated_average(rng: random.Random, quarters: Sequence[str], bands: dict[str, Band]) -> None:
    """One 一般 not next to another 一般 or a 差 (it opens the 双约谈, no more)."""
    free = [
        i
        for i, q in enumerate(quarters)
        if bands[q] == "fairly_good"
        and all(
            bands.get(quarters[j]) == "fairly_good"
            for j in (i - 1, i + 1)
            if 0 <= j < len(quarters)
        )
    ]
    if free:
        bands[quarters[rng.choice(free)]] = "average"


def _long_leave(
    rng: random.Random,
    cadre_id: str,
    calendar: Calendar,
    year: int,
    limit: int,
    reserved: set[date],
) -> list[LeavePlan]:
    """Sick and personal leave adding up to more than ``limit`` days in ``year`` (recall
    rule 2), in blocks of 8-14 days in different months of the year."""
    months = [
        m
        for m in calendar.months
        if m.startswith(f"{year}-") and calendar.closable(m) and len(calendar.days_in_post(m)) >= 20
    ]
    target = limit + rng.randint(3, 10)
    plans: list[LeavePlan] = []
    total = 0
    kinds = [LeaveKind.SICK, LeaveKind.PERSONAL, LeaveKind.PERSONAL, LeaveKind.SICK]
    for n, month in enumerate(rng.sample(months, min(len(months), 4))):
        if total >= target:
            break
        days = calendar.days_in_post(month)
        length = min(rng.randint(8, 14), target - total)
        length = max(length, 1)
        start = rng.randint(0, max(0, len(days) - length - 1))
        first = days[start]
        last = first + timedelta(days=length - 1)
        if last.year != year or last > calendar.horizon - timedelta(days=1):
            continue
        span = {first + timedelta(days=k) for k in range(length)}
        if span & reserved:
            continue
        reserved.update(span)
        plans.append(
            LeavePlan(
                leave_id=f"{cadre_id}-l9{n:02d}",
                kind=kinds[n % len(kinds)],
                first_day=first,
                last_day=last,
                fate="approve",
                requested_on=max(calendar.term_start, first - timedelta(days=rng.randint(0, 3))),
            )
        )
        total += length
    return plans


def _ordinary_leave(
    rng: random.Random,
    cadre_id: str,
    calendar: Calendar,
    behaviour: Behaviour,
    reserved: set[date],
    numbered: int,
) -> list[LeavePlan]:
    """A few days of personal leave a year (some rejected or withdrawn) and now and then a
    sick leave, placed on days no other leave takes."""
    plans: list[LeavePlan] = []
    first_allowed = calendar.term_start + timedelta(days=10)
    last_allowed = calendar.horizon - timedelta(days=2)
    if last_allowed <= first_allowed:
        return plans
    n = numbered
    for year in calendar.years():
        lo = max(first_allowed, date(year, 1, 1))
        hi = min(last_allowed, date(year, 12, 31))
        if hi - lo < timedelta(days=20):
            continue
        wanted: list[tuple[LeaveKind, int]] = []
        for _ in range(rng.randint(0, 3 if behaviour is not Behaviour.ABSENTEE else 4)):
            wanted.append((LeaveKind.PERSONAL, rng.randint(1, 3)))
        if rng.random() < 0.3:
            wanted.append((LeaveKind.SICK, rng.randint(2, 7)))
        for kind, length in wanted:
            for _attempt in range(20):
                first = lo + timedelta(days=rng.randint(0, (hi - lo).days - length))
                span = {first + timedelta(days=k) for k in range(length)}
                margin = {first - timedelta(days=1), first + timedelta(days=length)}
                if (span | margin) & reserved or (first + timedelta(days=length - 1)).year != year:
                    continue
                reserved.update(span)
                roll = rng.random()
                fate: Fate = "approve"
                if kind is LeaveKind.PERSONAL and roll < 0.1:
                    fate = "reject"
                elif kind is LeaveKind.PERSONAL and roll < 0.15:
                    fate = "cancel"
                plans.append(
                    LeavePlan(
                        leave_id=f"{cadre_id}-l{n:03d}",
                        kind=kind,
                        first_day=first,
                        last_day=first + timedelta(days=length - 1),
                        fate=fate,
                        requested_on=max(
                            calendar.term_start, first - timedelta(days=rng.randint(0, 6))
                        ),
                    )
                )
                n += 1
                break
    return plans


# --- the month plan -------------------------------------------------------------------------

_MARGIN = {
    Behaviour.DILIGENT: (1, 5),
    Behaviour.EXCELLENT: (3, 7),
    Behaviour.MEDIOCRE: (0, 2),
    Behaviour.ABSENTEE: (0, 2),
}
_DIARIES = {
    Behaviour.DILIGENT: (2, 4),
    Behaviour.EXCELLENT: (3, 6),
    Behaviour.MEDIOCRE: (1, 2),
    Behaviour.ABSENTEE: (0, 1),
}
_TRIP_PURPOSES = (
    "到县农业农村局对接产业项目",
    "参加县委组织部驻村干部培训",
    "到乡镇汇报村集体经济发展情况",
    "赴州府协调帮扶资金",
    "参加乡镇党委季度工作会议",
)


def plan_month(
    seed: int,
    plan: CadrePlan,
    calendar: Calendar,
    index: int,
    households: int,
    rules: AttendancePolicy,
) -> MonthPlan:
    """The cadre's month ``calendar.months[index]``. ``rules`` are the attendance rules of the
    pack in force for the close (the month's last day)."""
    cadre = plan.cadre
    month = calendar.months[index]
    rng = random.Random(f"{seed}/{cadre.cadre_id}/{month}")
    behaviour = cadre.behaviour
    in_post = calendar.days_in_post(month)
    live = [d for d in in_post if d <= calendar.horizon]
    first, last = month_bounds(month)

    # Leave: what the term plan approved this month, and what it requested this month.
    approved: dict[date, tuple[LeaveKind, str]] = {}
    planned: set[date] = set()
    for leave in plan.leaves:
        if leave.last_day < first or leave.first_day > last:
            continue
        for day in leave.each_day():
            if first <= day <= last:
                planned.add(day)
                if leave.fate == "approve":
                    approved[day] = (leave.kind, leave.leave_id)
    requests = [leave for leave in plan.leaves if first <= leave.requested_on <= last]

    # Business trips (公出), requested and decided within the month.
    trips: list[LeavePlan] = []
    busy = set(planned)
    trip_count = rng.choices((0, 1, 2), weights=(0.35, 0.45, 0.2), k=1)[0]
    stub = len(in_post) < 10
    for n in range(0 if stub else trip_count):
        length = rng.randint(1, 3) if rng.random() < 0.93 else rng.randint(4, 5)
        for _attempt in range(10):
            if len(live) <= length + 2:
                break
            start = rng.randrange(1, len(live) - length)
            span = live[start : start + length]
            if len(span) < length or span[-1] - span[0] != timedelta(days=length - 1):
                continue
            if (set(span) | {span[0] - timedelta(days=1), span[-1] + timedelta(days=1)}) & busy:
                continue
            busy.update(span)
            fate: Fate = "approve" if rng.random() < 0.95 else "reject"
            trip = LeavePlan(
                leave_id=f"{cadre.cadre_id}-trip-{month.replace('-', '')}-{n}",
                kind=LeaveKind.VILLAGE_BUSINESS,
                first_day=span[0],
                last_day=span[-1],
                fate=fate,
                requested_on=max(first, calendar.term_start, span[0] - timedelta(days=2)),
                purpose=rng.choice(_TRIP_PURPOSES),
            )
            trips.append(trip)
            if fate == "approve":
                for day in span:
                    approved[day] = (LeaveKind.VILLAGE_BUSINESS, trip.leave_id)
            break
    requests.extend(trips)
    requests.sort(key=lambda leave: (leave.requested_on, leave.first_day))

    in_post_set = set(in_post)
    personal = {d for d, (k, _) in approved.items() if k is LeaveKind.PERSONAL} & in_post_set
    sick = {d for d, (k, _) in approved.items() if k is LeaveKind.SICK} & in_post_set - personal
    excused = personal | sick
    business = (
        {d for d, (k, _) in approved.items() if k is LeaveKind.VILLAGE_BUSINESS} & in_post_set
    ) - excused
    year, number = parse_month(month)
    eligible = len(in_post) - len(excused)
    required = rules.required_days(eligible, rules.period_days(year, number))
    need = max(0, required - len(business))
    avail = [d for d in live if d not in excused and d not in business]
    if index in plan.shortfall_months and calendar.closable(month) and need > 0:
        present_n = max(0, min(need, len(avail)) - rng.randint(2, 8))
    else:
        low, high = _MARGIN[behaviour]
        present_n = min(len(avail), need + rng.randint(low, high))
    presence = set(rng.sample(avail, present_n))
    if stub:  # everyone is there on the last day, for the handover
        presence.update(avail)

    # Planned unexcused absences: days away, on no leave of any kind or fate.
    away = [d for d in live if d not in presence and d not in business and d not in planned]
    away = [d for d in away if d not in {x for t in trips for x in t.each_day()}]
    checks: list[SpotCheckPlan] = []
    wanted_absences = plan.absences.get(index, 0) if calendar.closable(month) else 0
    if wanted_absences > len(away):
        # Make room: a day of presence becomes a day away (the month was planned with margin).
        spare = sorted(presence)
        while wanted_absences > len(away) and spare and len(presence) + len(business) > required:
            day = spare.pop(rng.randrange(len(spare)))
            presence.discard(day)
            away.append(day)
    for day in rng.sample(away, min(wanted_absences, len(away))):
        checks.append(SpotCheckPlan(day, absent=True, excused_by=None))
    chance = 0.3 if behaviour is Behaviour.ABSENTEE else 0.08
    if not stub and rng.random() < chance:
        on_leave = [d for d in sorted(approved) if d in in_post_set and d <= calendar.horizon]
        taken = {c.day for c in checks}
        if on_leave and rng.random() < 0.2:
            day = rng.choice(on_leave)
            if day not in taken:
                checks.append(SpotCheckPlan(day, absent=True, excused_by=approved[day][1]))
        elif presence:
            day = rng.choice(sorted(presence))
            if day not in taken:
                checks.append(SpotCheckPlan(day, absent=False, excused_by=None))
    checks.sort(key=lambda c: c.day)

    # Evidence: check-ins (inside), the township's confirmations, check-ins from elsewhere.
    check_ins: list[tuple[date, bool]] = []
    confirmed: list[date] = []
    for day in sorted(presence):
        if plan.app_share >= 1.0 or rng.random() < plan.app_share:
            check_ins.append((day, True))
        else:
            confirmed.append(day)
    outside = 0.15 if behaviour is Behaviour.ABSENTEE else 0.02
    for day in away:
        if rng.random() < outside:
            check_ins.append((day, False))
    check_ins.sort()

    low, high = _DIARIES[behaviour]
    diary_days = sorted(rng.sample(sorted(presence), min(len(presence), rng.randint(low, high))))
    visits = _visits(seed, rng, plan, calendar, live, presence, households)
    inspection = None
    if live and not stub and rng.random() < 0.1:
        problems = {
            Behaviour.ABSENTEE: rng.randint(1, 3),
            Behaviour.MEDIOCRE: rng.randint(0, 2),
        }.get(behaviour, 1 if rng.random() < 0.1 else 0)
        inspection = (rng.choice(live), problems)

    figures = None
    if calendar.closable(month):
        in_village = (presence - excused) | business
        unexcused = sum(1 for c in checks if c.absent and c.excused_by is None)
        figures = MonthFigures(
            days_in_month=(last - first).days + 1,
            days_in_post=len(in_post),
            presence_days=len(presence - excused),
            business_days=len(business),
            in_village_days=len(in_village),
            personal_leave_days=len(personal),
            sick_leave_days=len(sick),
            eligible_days=eligible,
            required_days=required,
            shortfall=max(0, required - len(in_village)),
            spot_checks=len(checks),
            unexcused_absences=unexcused,
        )
    return MonthPlan(
        cadre_id=cadre.cadre_id,
        month=month,
        index=index,
        requests=tuple(requests),
        check_ins=tuple(check_ins),
        confirmed=tuple(confirmed),
        spot_checks=tuple(checks),
        diaries=tuple(diary_days),
        visits=visits,
        inspection=inspection,
        figures=figures,
    )


def _visits(
    seed: int,
    rng: random.Random,
    plan: CadrePlan,
    calendar: Calendar,
    live: Sequence[date],
    presence: set[date],
    households: int,
) -> tuple[tuple[int, date], ...]:
    """入户走访: in the first 30 days on post the first secretary visits every household (an
    absentee most of them), members a share; afterwards a few follow-up visits a month.

    The first-month schedule is drawn once per cadre (it may span two months); each month
    takes its part and moves each visit to the nearest day the cadre was in the village."""
    if not live:
        return ()
    behaviour = plan.cadre.behaviour
    window_end = min(calendar.term_start + timedelta(days=29), calendar.horizon)
    visits: list[tuple[int, date]] = []
    if live[0] <= window_end:
        window = [
            calendar.term_start + timedelta(days=n)
            for n in range((window_end - calendar.term_start).days + 1)
        ]
        schedule_rng = random.Random(f"{seed}/{plan.cadre.cadre_id}/visits")
        if plan.cadre.role is Role.FIRST_SECRETARY:
            share = schedule_rng.uniform(0.6, 0.85) if behaviour is Behaviour.ABSENTEE else 1.0
        else:
            share = schedule_rng.uniform(0.15, 0.3)
        wanted = round(households * share)
        order = schedule_rng.sample(range(1, households + 1), wanted)
        near = sorted(presence)
        for n, household in enumerate(order):
            day = window[n * len(window) // max(1, wanted)]
            if day < live[0] or day > live[-1]:
                continue
            if near:
                day = min(near, key=lambda d: (abs((d - day).days), d))
            visits.append((household, day))
    else:
        follow_ups = rng.randint(0, 1) if behaviour is Behaviour.ABSENTEE else rng.randint(0, 2)
        pool = sorted(presence) or list(live)
        for _ in range(follow_ups):
            visits.append((rng.randint(1, households), rng.choice(pool)))
    visits.sort(key=lambda v: (v[1], v[0]))
    return tuple(visits)


def band_scores(rng: random.Random, band: Band, pack: PolicyPack) -> tuple[float, float, float]:
    """(township, villagers, county panel) scores, each 0-100 with one decimal, all drawn in
    the band's range so that their weighted sum lands in the band (the weights sum to 100)."""
    rules = pack.rules(AssessmentPolicy)
    good, fairly, average = (
        rules.quarterly_good_min,
        rules.quarterly_fairly_good_min,
        rules.quarterly_average_min,
    )
    top = max(good + 3.0, 95.0)
    low, high = {
        "top": (top, 99.8),
        "good": (good + 0.5, top - 0.1),
        "fairly_good": (fairly + 0.5, good - 0.6),
        "average": (average + 0.5, fairly - 0.6),
        "poor": (max(0.0, average - 20), average - 1.0),
    }[band]
    return tuple(round(rng.uniform(low, high), 1) for _ in range(3))  # type: ignore[return-value]
