"""``generate(seed, cadres, ...) -> Scenario``: a seeded, reproducible county or province and
its two-year term, as phases of actions.

Pure: no clock (``today`` is an argument), no I/O beyond reading the policy packs, and every
random draw comes from ``random.Random`` seeded with the seed (or the seed and the entity and
period a draw is about), so the same arguments give the same commands and ids. Plans are kept
per cadre; the months are planned when the timeline reaches them, so a province of 30,000
cadres fits in memory.

The timeline (``Scenario.phases``) follows the county's year:

1. dispatch: villages and their needs, cadres, a round, teams, assignments, the round's close,
   township leaders;
2. every month: leave requested and decided (the township up to the pack's limit, the county
   beyond), check-ins uploaded, the township's confirmations, spot checks (四不两直),
   diaries, household visits, inspections, sanctions; then the county closes the month;
3. after a quarter's last close: quarterly assessments (three scores), the 双约谈 a 一般 opens,
   the red and blue lists;
4. after a year's last quarter: the villagers' evaluation and the annual round (proposals
   within the share of 优秀, then the final round), for years that are over;
5. at the term's end: the assignments end, the last month is closed, the term is assessed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

from zhucun.assessment.domain.periods import quarter_bounds
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.assessment.domain.rules import (
    capped_grade,
    excellent_cap,
    quarterly_grade,
    quarterly_score,
    rank_lists,
)
from zhucun.attendance.domain.days import month_bounds
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.contracts.assessment.events import AnnualGrade, InspectionKind, QuarterlyGrade, TalkBy
from zhucun.contracts.attendance.events import SpotCheckResult
from zhucun.dispatch.domain.lookups import add_months
from zhucun.dispatch.domain.policy import DispatchPolicy
from zhucun.projections.domain.policy import DecisionPolicy
from zhucun.shared.policy import PolicyBook, PolicyPack
from zhucun.shared.settings import DEFAULT_POLICIES_DIR
from zhucun.sim import actions as a
from zhucun.sim.actions import SHANGHAI, moment
from zhucun.sim.plans import (
    CadrePlan,
    Calendar,
    MonthPlan,
    band_scores,
    plan_cadre,
    plan_month,
)
from zhucun.sim.world import (
    DEFAULT_MIX_TEXT,
    Behaviour,
    Cadre,
    County,
    Mix,
    Village,
    build_world,
    county_codes,
)

#: Cadres per county when the number of counties is not given.
CADRES_PER_COUNTY = 500
#: The sections the simulator reads, validated in every pack when it loads the book.
SECTIONS = (DispatchPolicy, AttendancePolicy, AssessmentPolicy, DecisionPolicy)

_DIARY_TEXTS = (
    "走访脱贫户，了解务工和产业收入情况",
    "召开村两委会议，研究集体经济项目",
    "到合作社查看中药材种植进度",
    "组织党员学习，开展主题党日活动",
    "协调解决村道硬化遗留问题",
    "入户核查防返贫监测对象",
    "参加乡镇安排的森林防火巡查",
    "整理村级档案，更新帮扶台账",
)
_SANCTIONS = (
    ("诫勉谈话", "驻村期间多次擅自离岗"),
    ("通报批评", "驻村考勤弄虚作假"),
    ("党内警告", "违反驻村工作纪律"),
)


def default_start(today: date, months_back: int = 26) -> date:
    """The first day of the month ``months_back`` months before ``today``'s: with the
    default two-year term, the whole term lies in the past."""
    return add_months(date(today.year, today.month, 1), -months_back)


def today_in_shanghai() -> date:
    return datetime.now(SHANGHAI).date()


@dataclass(frozen=True, slots=True)
class QuarterResult:
    cadre_id: str
    county: str
    quarter: str
    township_score: float
    villager_score: float
    county_panel_score: float
    score: float
    grade: QuarterlyGrade


@dataclass(frozen=True, slots=True)
class AnnualProposal:
    cadre_id: str
    county: str
    year: int
    proposed: AnnualGrade
    absences: int
    #: The grade after the attendance cap (what the round issues).
    grade: AnnualGrade


@dataclass(frozen=True, slots=True)
class ScenarioArgs:
    """The arguments of ``generate``: enough to generate the same scenario again (the topics
    writer's worker processes each regenerate it and write their share of the counties)."""

    seed: int
    cadres: int
    counties: int | None
    mix: str
    start: date | None
    today: date
    province: str
    codes: tuple[str, ...] | None
    policies_dir: str | None = None

    def generate(self) -> Scenario:
        policies = Path(self.policies_dir) if self.policies_dir else None
        return generate(
            self.seed,
            self.cadres,
            self.counties,
            self.mix,
            self.start,
            today=self.today,
            province=self.province,
            codes=self.codes,
            policies=policies,
        )


@dataclass
class Scenario:
    """A generated world and its term. Iterate ``phases()`` to run it."""

    args: ScenarioArgs
    seed: int
    prefix: str
    mix: Mix
    calendar: Calendar
    counties: tuple[County, ...]
    policies: PolicyBook
    plans: Mapping[str, CadrePlan]
    _quarters: dict[tuple[str, str], QuarterResult] = field(default_factory=dict, repr=False)
    _village_of: dict[str, Village] = field(init=False, repr=False)
    _packs: dict[tuple[str, date], PolicyPack] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._village_of = {v.village_id: v for c in self.counties for v in c.villages}

    # --- what tests and drivers ask about -------------------------------------------------

    @property
    def cadre_ids(self) -> frozenset[str]:
        return frozenset(self.plans)

    @property
    def county_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.counties)

    @property
    def cadres(self) -> Iterator[Cadre]:
        for county in self.counties:
            yield from county.cadres

    def behaviour_counts(self) -> dict[str, int]:
        counts = Counter(plan.cadre.behaviour.value for plan in self.plans.values())
        return {b.value: counts.get(b.value, 0) for b in Behaviour}

    def pack(self, county: str, on: date) -> PolicyPack:
        key = (county, on)
        found = self._packs.get(key)
        if found is None:
            found = self._packs[key] = self.policies.in_force(county, on)
        return found

    def month_plan(self, cadre_id: str, month: str) -> MonthPlan:
        plan = self.plans[cadre_id]
        cadre = plan.cadre
        index = self.calendar.months.index(month)
        rules = self.pack(cadre.county, month_bounds(month)[1]).rules(AttendancePolicy)
        households = self._village_of[cadre.village_id].households
        return plan_month(self.seed, plan, self.calendar, index, households, rules)

    def quarter_result(self, cadre_id: str, quarter: str) -> QuarterResult:
        key = (cadre_id, quarter)
        found = self._quarters.get(key)
        if found is not None:
            return found
        plan = self.plans[cadre_id]
        county = plan.cadre.county
        pack = self.pack(county, quarter_bounds(quarter)[1])
        rng = random.Random(f"{self.seed}/{cadre_id}/{quarter}")
        township, villagers, panel = band_scores(rng, plan.bands[quarter], pack)
        rules = pack.rules(AssessmentPolicy)
        score = quarterly_score(township, villagers, panel, rules)
        result = QuarterResult(
            cadre_id=cadre_id,
            county=county,
            quarter=quarter,
            township_score=township,
            villager_score=villagers,
            county_panel_score=panel,
            score=score,
            grade=quarterly_grade(score, rules),
        )
        self._quarters[key] = result
        return result

    def lists(self, county: str, quarter: str) -> tuple[list[str], list[str]]:
        """The red and blue lists the quarter's scores make (cadre ids, best / worst first)."""
        rules = self.pack(county, quarter_bounds(quarter)[1]).rules(AssessmentPolicy)
        scores = {
            c.cadre_id: self.quarter_result(c.cadre_id, quarter).score
            for c in self._county(county).cadres
        }
        red, blue = rank_lists(scores, rules)
        return [e.cadre_id for e in red], [e.cadre_id for e in blue]

    def annual_proposals(self, county: str, year: int) -> list[AnnualProposal]:
        """Every cadre's proposal in the county's round: the 优秀 proposed go to the best
        excellent cadres without absences, within floor(share x cadres assessed), so the
        round can be finalised; the attendance cap then lowers what it must."""
        rules = self.pack(county, date(year, 12, 31)).rules(AssessmentPolicy)
        cadres = self._county(county).cadres
        cap = excellent_cap(len(cadres), rules)
        months = self.calendar.months
        candidates = sorted(
            (c for c in cadres if self.plans[c.cadre_id].annual.get(year) is AnnualGrade.EXCELLENT),
            key=lambda c: (-self._year_score(c.cadre_id, year), c.cadre_id),
        )
        winners: set[str] = set()
        for cadre in candidates:
            absences = self.plans[cadre.cadre_id].absences_in(year, months)
            grade, _ = capped_grade(AnnualGrade.EXCELLENT, absences, rules)
            if grade is AnnualGrade.EXCELLENT and len(winners) >= cap:
                continue
            winners.add(cadre.cadre_id)
        proposals = []
        for cadre in cadres:
            plan = self.plans[cadre.cadre_id]
            proposed = plan.annual.get(year, AnnualGrade.COMPETENT)
            if proposed is AnnualGrade.EXCELLENT and cadre.cadre_id not in winners:
                proposed = AnnualGrade.COMPETENT
            absences = plan.absences_in(year, months)
            grade, _ = capped_grade(proposed, absences, rules)
            proposals.append(
                AnnualProposal(cadre.cadre_id, county, year, proposed, absences, grade)
            )
        return proposals

    def term_result(self, cadre_id: str) -> tuple[AnnualGrade, AnnualGrade, int]:
        """(proposed, given, absences of the last year) of the term assessment."""
        plan = self.plans[cadre_id]
        year = self.calendar.term_end.year
        absences = plan.absences_in(year, self.calendar.months)
        rules = self.pack(plan.cadre.county, self.calendar.term_end).rules(AssessmentPolicy)
        grade, _ = capped_grade(plan.term_grade, absences, rules)
        return plan.term_grade, grade, absences

    def _year_score(self, cadre_id: str, year: int) -> float:
        scores = [
            self.quarter_result(cadre_id, q).score
            for q in self.calendar.quarters()
            if q.startswith(f"{year}-")
        ]
        mean = sum(scores) / len(scores) if scores else 0.0
        return mean + self.plans[cadre_id].quality / 1000

    def _county(self, code: str) -> County:
        return next(c for c in self.counties if c.code == code)

    # --- the timeline ---------------------------------------------------------------------

    def phases(self, only: Collection[str] | None = None) -> Iterator[a.Phase]:
        """The whole term, phase after phase (see the module docstring); only the counties
        of ``only`` when given (each county's streams are its own, so counties can be run
        apart)."""
        cal = self.calendar
        counties = [c for c in self.counties if only is None or c.code in only]
        cadre_ids = sorted(c.cadre_id for county in counties for c in county.cadres)
        yield from self._dispatch_phases(counties, cadre_ids)
        quarters = set(cal.quarters())
        rounds = set(cal.round_years())
        stub = cal.months[-1] if cal.term_over else None
        for month in cal.months:
            yield a.Phase(f"{month} activity", self._month_actions(counties, month))
            if stub == month:
                yield a.Phase("term end: assignments end", self._end_assignments(counties))
            if cal.closable(month):
                barriers: tuple[a.Barrier, ...] = ()
                if stub == month:
                    days = len(cal.days_in_post(month))
                    barriers = (
                        a.Barrier("ended", tuple((c, f"{month}:{days}") for c in cadre_ids)),
                    )
                yield a.Phase(f"{month} close", self._closes(counties, month), barriers)
            year, number = int(month[:4]), int(month[5:])
            quarter = f"{year}-Q{(number - 1) // 3 + 1}"
            # A quarter is assessed after its last close, or after the term's last month
            # when it is over by then.
            over = number % 3 == 0 or (month == stub and quarter_bounds(quarter)[1] < cal.today)
            if quarter in quarters and over:
                yield from self._quarter_phases(counties, quarter)
                quarters.discard(quarter)
            if month == stub:
                yield from self._term_phases(counties)
            if number == 12 and year in rounds:
                yield from self._annual_phases(counties, year)
                rounds.discard(year)
        # A quarter or a year that ended after the term's last month (the term ended early in
        # it) is assessed once over.
        for quarter in sorted(quarters):
            yield from self._quarter_phases(counties, quarter)
        for year in sorted(rounds):
            yield from self._annual_phases(counties, year)

    def _dispatch_phases(
        self, counties: Sequence[County], cadre_ids: Sequence[str]
    ) -> Iterator[a.Phase]:
        start = self.calendar.term_start
        actions: list[a.Action] = []
        for county in counties:
            code = county.code
            t0 = start - timedelta(days=45)
            for village in county.villages:
                actions.append(
                    a.RegisterVillage(
                        at=moment(t0),
                        county=code,
                        village_id=village.village_id,
                        name=village.name,
                        township=village.township,
                        categories=village.categories,
                        latitude=village.latitude,
                        longitude=village.longitude,
                        radius_m=village.radius_m,
                        households=village.households,
                        monitored_population=village.monitored_population,
                    )
                )
            declared = start - timedelta(days=40)
            for village in county.villages:
                actions.append(
                    a.DeclareNeeds(
                        at=moment(declared),
                        county=code,
                        village_id=village.village_id,
                        needs=village.needs,
                        declared_on=declared,
                    )
                )
            for cadre in county.cadres:
                actions.append(
                    a.RegisterCadre(
                        at=moment(start - timedelta(days=35)),
                        county=code,
                        cadre_id=cadre.cadre_id,
                        sending_unit=cadre.sending_unit,
                        unit_kind=cadre.unit_kind,
                        unit_level=cadre.unit_level,
                        birth_year=cadre.birth_year,
                        party_member_since=cadre.party_member_since,
                        rural_experience_years=cadre.rural_experience_years,
                        skills=cadre.skills,
                    )
                )
            opened = start - timedelta(days=30)
            actions.append(
                a.OpenRound(
                    at=moment(opened),
                    county=code,
                    round_id=county.round_id,
                    name=f"{start.year}年{county.name}第一批驻村工作队",
                    opened_on=opened,
                )
            )
            formed = start - timedelta(days=20)
            for team in county.teams:
                actions.append(
                    a.FormTeam(
                        at=moment(formed),
                        county=code,
                        team_id=team.team_id,
                        round_id=county.round_id,
                        village_id=team.village_id,
                        formed_on=formed,
                    )
                )
            by_id = {c.cadre_id: c for c in county.cadres}
            for team in county.teams:
                for cadre_id in team.cadre_ids:
                    cadre = by_id[cadre_id]
                    actions.append(
                        a.AssignCadre(
                            at=moment(start - timedelta(days=10)),
                            county=code,
                            assignment_id=cadre.assignment_id,
                            team_id=team.team_id,
                            cadre_id=cadre_id,
                            role=cadre.role,
                            term_start=start,
                        )
                    )
            for township, (leader, _) in sorted(county.leaders.items()):
                actions.append(
                    a.AppointLeader(
                        at=moment(start, 10),
                        county=code,
                        appointment_id=f"{township}-leader-1",
                        township=township,
                        cadre_id=leader,
                        term_start=start,
                    )
                )
            # The close comes last: a closed round means the county's dispatch is complete
            # (the HTTP driver skips it on a re-run).
            actions.append(
                a.CloseRound(
                    at=moment(start, 11), county=code, round_id=county.round_id, closed_on=start
                )
            )
        yield a.Phase("dispatch: villages, cadres, the round", actions)
        yield a.Phase(
            "replicas learn the assignments",
            (),
            (a.Barrier("assigned", tuple((c, "") for c in cadre_ids)),),
        )

    def _month_actions(self, counties: Sequence[County], month: str) -> list[a.Action]:
        cal = self.calendar
        first, last = month_bounds(month)
        actions: list[a.Action] = []
        leaders_again = add_months(cal.term_start, 12)
        for county in counties:
            if first <= leaders_again <= last and leaders_again < cal.term_end:
                for township, (_, leader) in sorted(county.leaders.items()):
                    actions.append(
                        a.AppointLeader(
                            at=moment(leaders_again, 10),
                            county=county.code,
                            appointment_id=f"{township}-leader-2",
                            township=township,
                            cadre_id=leader,
                            term_start=leaders_again,
                        )
                    )
            for cadre in county.cadres:
                actions.extend(self._cadre_month(cadre, month))
            review = min(last.replace(day=25), cal.horizon)
            if len(cal.days_in_post(month)) >= 10 and review >= first:
                for team in county.teams:
                    rng = random.Random(f"{self.seed}/{team.team_id}/{month}")
                    problems = rng.choice((0, 0, 0, 1, 2))
                    actions.append(
                        a.InspectTeam(
                            at=moment(review, 15),
                            team_id=team.team_id,
                            county=county.code,
                            township=team.township,
                            inspection_id=f"{team.team_id}-review-{month}",
                            inspection_kind=InspectionKind.MONTHLY_REVIEW,
                            held_on=review,
                            findings="工作队月度调度"
                            + (f"，发现问题{problems}项" if problems else ""),
                            problems_found=problems,
                        )
                    )
        return actions

    def _cadre_month(self, cadre: Cadre, month: str) -> list[a.Action]:
        cal = self.calendar
        plan = self.plans[cadre.cadre_id]
        mp = self.month_plan(cadre.cadre_id, month)
        village = self._village_of[cadre.village_id]
        common = {"cadre_id": cadre.cadre_id, "county": cadre.county, "township": cadre.township}
        actions: list[a.Action] = []
        rng = random.Random(f"{self.seed}/{cadre.cadre_id}/{month}/times")
        for leave in mp.requests:
            pack = self.pack(cadre.county, leave.first_day)
            limit = pack.rules(AttendancePolicy).township_leave_approval_max_days
            level: Literal["township", "county"] = "township" if leave.days <= limit else "county"
            requested = moment(leave.requested_on, 8, rng.randint(0, 59))
            actions.append(
                a.RequestLeave(
                    at=requested,
                    **common,
                    leave_id=leave.leave_id,
                    leave_kind=leave.kind,
                    first_day=leave.first_day,
                    last_day=leave.last_day,
                    purpose=leave.purpose,
                )
            )
            decided = requested + timedelta(hours=1, minutes=rng.randint(0, 50))
            if leave.fate == "approve":
                actions.append(
                    a.DecideLeave(
                        at=decided, **common, leave_id=leave.leave_id, decision="approve", by=level
                    )
                )
            elif leave.fate == "reject":
                actions.append(
                    a.DecideLeave(
                        at=decided,
                        **common,
                        leave_id=leave.leave_id,
                        decision="reject",
                        by=level,
                        reason="村内脱贫攻坚验收期间，暂不批准",
                    )
                )
            else:
                actions.append(
                    a.DecideLeave(
                        at=decided,
                        **common,
                        leave_id=leave.leave_id,
                        decision="cancel",
                        by="cadre",
                        reason="事情已处理，撤回请假",
                    )
                )
        for check in mp.spot_checks:
            actions.append(
                a.SpotCheck(
                    at=moment(check.day, 14, rng.randint(0, 59)),
                    **common,
                    spot_check_id=f"{cadre.cadre_id}-sc-{check.day:%Y%m%d}",
                    day=check.day,
                    result=SpotCheckResult.ABSENT if check.absent else SpotCheckResult.PRESENT,
                    findings="四不两直暗访，未在村" if check.absent else "四不两直暗访，在岗",
                )
            )
        for day in mp.diaries:
            actions.append(
                a.WriteDiary(
                    at=moment(day, 21, rng.randint(0, 59)),
                    **common,
                    entry_id=f"{cadre.cadre_id}-d-{day:%Y%m%d}",
                    day=day,
                    text=rng.choice(_DIARY_TEXTS),
                )
            )
        tag = month.replace("-", "")
        for n, (household, day) in enumerate(mp.visits):
            actions.append(
                a.VisitHousehold(
                    at=moment(day, 10 + n % 8, rng.randint(0, 59)),
                    **common,
                    visit_id=f"{cadre.cadre_id}-hv{tag}-{n:03d}",
                    household_id=f"h{household:03d}",
                    visited_on=day,
                )
            )
        if mp.inspection is not None:
            day, problems = mp.inspection
            actions.append(
                a.InspectCadre(
                    at=moment(day, 16),
                    **common,
                    inspection_id=f"{cadre.cadre_id}-insp-{day:%Y%m%d}",
                    inspection_kind=InspectionKind.WEEKLY_INSPECTION,
                    held_on=day,
                    findings="周督查" + (f"：发现问题{problems}项" if problems else "：无问题"),
                    problems_found=problems,
                )
            )
        if plan.sanction_on is not None and mp.month == f"{plan.sanction_on:%Y-%m}":
            kind, reason = _SANCTIONS[int(cadre.cadre_id[-1]) % len(_SANCTIONS)]
            actions.append(
                a.RecordSanction(
                    at=moment(plan.sanction_on, 11),
                    **common,
                    sanction_id=f"{cadre.cadre_id}-sanction-1",
                    sanction_kind=kind,
                    decided_on=plan.sanction_on,
                    authority="县纪委监委",
                    reason=reason,
                )
            )
        live = [d for d in cal.days_in_post(month) if d <= cal.horizon]
        if live:
            upload = moment(live[-1], 21, 30)
            if mp.check_ins:
                actions.append(
                    a.CheckInBatch(
                        at=upload,
                        **common,
                        days=mp.check_ins,
                        location_share=plan.location_share,
                        village_latitude=village.latitude,
                        village_longitude=village.longitude,
                        radius_m=village.radius_m,
                        rng_seed=f"{self.seed}/{cadre.cadre_id}/{month}/check-ins",
                    )
                )
            if mp.confirmed:
                actions.append(
                    a.ConfirmPresence(
                        at=moment(live[-1], 18),
                        **common,
                        confirmation_id=f"{cadre.cadre_id}-pc-{tag}",
                        days=mp.confirmed,
                        note="乡镇党委核实在村",
                    )
                )
        year = int(month[:4])
        evaluated = (
            month.endswith("-12") and date(year, 12, 31) < cal.today and cal.term_end.year != year
        )
        if evaluated and year in plan.satisfaction:
            actions.append(self._evaluation(cadre, year, date(year, 12, 20)))
        actions.sort(key=lambda action: action.at)
        return actions

    def _evaluation(self, cadre: Cadre, year: int, on: date) -> a.EvaluateByVillagers:
        rng = random.Random(f"{self.seed}/{cadre.cadre_id}/{year}/evaluation")
        return a.EvaluateByVillagers(
            at=moment(on, 15),
            cadre_id=cadre.cadre_id,
            county=cadre.county,
            township=cadre.township,
            evaluation_id=f"{cadre.cadre_id}-ve-{year}",
            period=str(year),
            satisfaction=self.plans[cadre.cadre_id].satisfaction[year],
            respondents=rng.randint(25, 80),
        )

    def _closes(self, counties: Sequence[County], month: str) -> list[a.Action]:
        last = month_bounds(month)[1]
        at = moment(self.calendar.clamp(last + timedelta(days=3)), 10)
        return [
            a.CloseCountyMonth(
                at=at,
                county=county.code,
                month=month,
                expected=tuple(sorted(c.cadre_id for c in county.cadres)),
            )
            for county in counties
        ]

    def _end_assignments(self, counties: Sequence[County]) -> list[a.Action]:
        end = self.calendar.term_end
        return [
            a.EndAssignment(
                at=moment(end, 17),
                county=cadre.county,
                assignment_id=cadre.assignment_id,
                cadre_id=cadre.cadre_id,
                ended_on=end,
            )
            for county in counties
            for cadre in county.cadres
        ]

    def _quarter_phases(self, counties: Sequence[County], quarter: str) -> Iterator[a.Phase]:
        cal = self.calendar
        last = quarter_bounds(quarter)[1]
        assessed_on = cal.clamp(last + timedelta(days=8))
        assessments: list[a.Action] = []
        follow: list[a.Action] = []
        for county in counties:
            for cadre in county.cadres:
                result = self.quarter_result(cadre.cadre_id, quarter)
                common = {
                    "cadre_id": cadre.cadre_id,
                    "county": cadre.county,
                    "township": cadre.township,
                }
                assessments.append(
                    a.AssessQuarter(
                        at=moment(assessed_on, 10),
                        **common,
                        quarter=quarter,
                        township_score=result.township_score,
                        villager_score=result.villager_score,
                        county_panel_score=result.county_panel_score,
                    )
                )
                if result.grade is QuarterlyGrade.AVERAGE:
                    rng = random.Random(f"{self.seed}/{cadre.cadre_id}/{quarter}/talks")
                    late = rng.random() < 0.1
                    for by in (TalkBy.TOWNSHIP, TalkBy.SENDING_UNIT):
                        days = (
                            rng.randint(31, 45)
                            if late and by is TalkBy.SENDING_UNIT
                            else rng.randint(2, 20)
                        )
                        held = cal.clamp(assessed_on + timedelta(days=days))
                        follow.append(
                            a.HoldTalk(
                                at=moment(held, 15 if by is TalkBy.TOWNSHIP else 16),
                                **common,
                                quarter=quarter,
                                obligation_id=f"talks-{cadre.cadre_id}-{quarter}",
                                by=by,
                                held_on=held,
                                note="季度考核一般，约谈提醒",
                            )
                        )
            follow.append(
                a.PublishLists(
                    at=moment(cal.clamp(last + timedelta(days=15)), 10),
                    county=county.code,
                    quarter=quarter,
                    list_id=f"{self.prefix}-{county.code}-{quarter}-lists",
                )
            )
        yield a.Phase(f"{quarter} assessments", assessments)
        yield a.Phase(f"{quarter} lists and talks", follow)

    def _annual_phases(self, counties: Sequence[County], year: int) -> Iterator[a.Phase]:
        cal = self.calendar
        opened = cal.clamp(date(year + 1, 1, 5))
        proposed = cal.clamp(date(year + 1, 1, 12))
        final = cal.clamp(date(year + 1, 1, 20))
        yield a.Phase(
            f"{year} annual rounds open",
            [
                a.OpenAnnualRound(
                    at=moment(opened, 9),
                    county=c.code,
                    year=year,
                    round_id=f"{self.prefix}-{c.code}-{year}-annual",
                )
                for c in counties
            ],
        )
        proposals: list[a.Action] = []
        expectations = []
        for county in counties:
            by_id = {c.cadre_id: c for c in county.cadres}
            for p in self.annual_proposals(county.code, year):
                cadre = by_id[p.cadre_id]
                proposals.append(
                    a.ProposeAnnualGrade(
                        at=moment(proposed, 10),
                        cadre_id=cadre.cadre_id,
                        county=cadre.county,
                        township=cadre.township,
                        year=year,
                        grade=p.proposed,
                        absences=p.absences,
                    )
                )
                if p.absences:
                    expectations.append((p.cadre_id, str(p.absences)))
        yield a.Phase(
            f"{year} annual proposals",
            proposals,
            (a.Barrier("absences", tuple(expectations), year=year),) if expectations else (),
        )
        yield a.Phase(
            f"{year} annual rounds final",
            [
                a.FinaliseAnnualRound(at=moment(final, 16), county=c.code, year=year)
                for c in counties
            ],
        )

    def _term_phases(self, counties: Sequence[County]) -> Iterator[a.Phase]:
        cal = self.calendar
        end = cal.term_end
        assessed = cal.clamp(end + timedelta(days=12))
        evaluations: list[a.Action] = []
        terms: list[a.Action] = []
        expectations = []
        for cadre in (c for county in counties for c in county.cadres):
            if end.year in self.plans[cadre.cadre_id].satisfaction:
                evaluations.append(
                    self._evaluation(cadre, end.year, cal.clamp(end + timedelta(days=5)))
                )
            proposed, _, absences = self.term_result(cadre.cadre_id)
            terms.append(
                a.AssessTerm(
                    at=moment(assessed, 11),
                    cadre_id=cadre.cadre_id,
                    county=cadre.county,
                    township=cadre.township,
                    assignment_id=cadre.assignment_id,
                    grade=proposed,
                    absences=absences,
                    year=end.year,
                )
            )
            if absences:
                expectations.append((cadre.cadre_id, str(absences)))
        yield a.Phase("term end: villagers' evaluations", evaluations)
        yield a.Phase(
            "term end: term assessments",
            terms,
            (a.Barrier("absences", tuple(expectations), year=end.year),) if expectations else (),
        )


def generate(
    seed: int,
    cadres: int,
    counties: int | None = None,
    mix: Mix | str = DEFAULT_MIX_TEXT,
    start: date | None = None,
    *,
    today: date | None = None,
    province: str = "53",
    codes: Sequence[str] | None = None,
    policies: PolicyBook | Path | None = None,
) -> Scenario:
    """A world of ``cadres`` cadres in ``counties`` counties (default: one per 500 cadres)
    and its term from ``start`` (default: the first day of the month 26 months before
    ``today``, which defaults to today in Asia/Shanghai). Same arguments, same scenario."""
    if seed < 0:
        raise ValueError("the seed is a non-negative integer")
    if isinstance(mix, str):
        mix = Mix.parse(mix)
    today = today or today_in_shanghai()
    start = start or default_start(today)
    count = counties or max(1, -(-cadres // CADRES_PER_COUNTY))
    policies_dir = str(policies) if isinstance(policies, Path) else None
    if isinstance(policies, Path):
        policies = PolicyBook.load(policies, sections=SECTIONS)
    policies = policies or PolicyBook.load(DEFAULT_POLICIES_DIR, sections=SECTIONS)
    if codes is not None:
        if len(codes) != count and counties is not None:
            raise ValueError(f"{len(codes)} county codes for {count} counties")
        count = len(codes)
        codes = list(codes)
    else:
        codes = county_codes(seed, count, province)
    if len(set(codes)) != len(codes):
        raise ValueError("county codes repeat")
    min_per_county = 3
    if cadres < count * min_per_county:
        raise ValueError(f"{count} counties need at least {count * min_per_county} cadres")
    packs = {code: policies.in_force(code, start) for code in codes}
    terms = {p.rules(DispatchPolicy).min_term_months for p in packs.values()}
    if len(terms) != 1:
        raise ValueError("the counties' packs have different term lengths; pick other counties")
    term_end = add_months(start, terms.pop())
    calendar = Calendar(term_start=start, term_end=term_end, today=today)
    if start >= today:
        raise ValueError(f"the term must start in the past (start {start}, today {today})")

    rng = random.Random(seed)
    prefix = f"s{seed}"
    per_county = [cadres // count + (1 if i < cadres % count else 0) for i in range(count)]
    behaviours: list[Behaviour] = []
    for behaviour, n in mix.counts(cadres).items():
        behaviours.extend([behaviour] * n)
    rng.shuffle(behaviours)
    world = build_world(
        rng,
        prefix=prefix,
        codes=codes,
        cadres_per_county=per_county,
        behaviours=behaviours,
        term_start=start,
        rules={code: pack.rules(DispatchPolicy) for code, pack in packs.items()},
    )
    plans: dict[str, CadrePlan] = {}
    for county in world:
        year_packs = {y: policies.in_force(county.code, date(y, 6, 30)) for y in calendar.years()}
        for cadre in county.cadres:
            plans[cadre.cadre_id] = plan_cadre(seed, cadre, calendar, year_packs)
    _deal_sanctions(rng, plans, calendar)
    args = ScenarioArgs(
        seed=seed,
        cadres=cadres,
        counties=counties,
        mix=mix.text(),
        start=start,
        today=today,
        province=province,
        codes=tuple(codes),
        policies_dir=policies_dir,
    )
    return Scenario(
        args=args,
        seed=seed,
        prefix=prefix,
        mix=mix,
        calendar=calendar,
        counties=world,
        policies=policies,
        plans=plans,
    )


def _deal_sanctions(rng: random.Random, plans: dict[str, CadrePlan], calendar: Calendar) -> None:
    """Rare disciplinary sanctions (recall rule 6): one per 250 cadres, at least one, among
    the absentees and the mediocre, decided in the middle of the term."""
    candidates = sorted(
        cadre_id
        for cadre_id, plan in plans.items()
        if plan.cadre.behaviour in (Behaviour.ABSENTEE, Behaviour.MEDIOCRE)
    )
    months = [m for m in calendar.months if calendar.closable(m)]
    if not candidates or len(months) < 4:
        return
    count = min(len(candidates), max(1, round(len(plans) / 250)))
    for cadre_id in rng.sample(candidates, count):
        month = rng.choice(months[2:-1])
        first, last = month_bounds(month)
        day = first + timedelta(days=rng.randint(0, (min(last, calendar.horizon) - first).days))
        plans[cadre_id] = replace(plans[cadre_id], sanction_on=day)


__all__ = [
    "AnnualProposal",
    "QuarterResult",
    "Scenario",
    "ScenarioArgs",
    "default_start",
    "generate",
    "today_in_shanghai",
]
