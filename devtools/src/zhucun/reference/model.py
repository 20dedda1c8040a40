"""The reference model: recall decisions and promotion pools of docs/decisions.md, in memory.

A second, deliberately plain implementation of the written contract, for the tests to compare
with the ``decisions`` projection. It never looks at the projection's code: both are read off
docs/decisions.md. Everything is recomputed from the whole set of facts on each call, with
plain loops over per-cadre lists, so that it can be checked against the document line by
line. Speed is not a goal.

Input: the events of the topics as ``(event id, event type, data)`` records (``Fact``), or
``PublishedEvent`` / ``RecordedEvent`` as ``read_topic`` and the event store return them. Data
is the JSON of the event (dates as ISO strings) or the same dict with ``date`` objects. Event
types the rules do not use are ignored; an event id seen twice is taken once.

Output: the *normal form* of docs/decisions.md, as sets of tuples:

* decision: ``(decision_id, cadre_id, rule, key, business_date, evidence ids, policy_version,
  status)``;
* pool entry: ``(cadre_id, pool, key, county, qualified_on, evidence ids, policy_version,
  status, status_on, status_reason, status_evidence)``, the last three ``None`` when active.

Where the document leaves a choice open, the reading taken is written in a comment marked
``READING``. Two apply everywhere:

* READING: "a pure function of the facts" wins over "published decisions are never
  rewritten": the model knows only the final set of facts, so a late fact that moves a run
  (a month closed after the months following it) moves the decisions too.
* READING: a pack that cannot be found (an unknown ``policy_version``, or no pack covering a
  county on a date) is an error (``PackError``), not a rule that is skipped.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID, uuid5

from zhucun.reference.packs import Pack, Packs
from zhucun.shared.envelope import RecordedEvent
from zhucun.shared.testing import PublishedEvent

DECISION_NAMESPACE = UUID("6f1c2a9e-7b4d-5e8f-9a10-3c2b1d0e4f5a")

MONTH_CLOSED = "attendance.MonthClosed"
QUARTERLY_ASSESSED = "assessment.QuarterlyAssessed"
ANNUAL_RESULT_ISSUED = "assessment.AnnualResultIssued"
TERM_ASSESSED = "assessment.TermAssessed"
SANCTION_RECORDED = "assessment.SanctionRecorded"
RED_BLUE_LISTS_PUBLISHED = "assessment.RedBlueListsPublished"
VILLAGER_EVALUATION_RECORDED = "assessment.VillagerEvaluationRecorded"
CADRE_ASSIGNED = "dispatch.CadreAssigned"
CADRE_RECALLED = "dispatch.CadreRecalled"
RECALL_DISMISSED = "decisions.RecallDismissed"

RECOMMENDED = "recommended"
EXECUTED = "executed"
DISMISSED = "dismissed"

ACTIVE = "active"
WITHDRAWN = "withdrawn"
BARRED = "barred"

#: The annual and term scale, best first.
ANNUAL_GRADES = ("excellent", "competent", "basically_competent", "incompetent")

DecisionRow = tuple[str, str, int, str, date, tuple[str, ...], str, str]
PoolRow = tuple[
    str, str, str, str, date, tuple[str, ...], str, str, date | None, str | None, str | None
]


class AmbiguousFacts(Exception):
    """Two different events state the same fact (one month's close, one quarter's grade...):
    docs/decisions.md does not say which one counts, so the model refuses to guess."""


# --- input ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One event as the model reads it."""

    event_id: str
    event_type: str
    data: Mapping[str, Any]


EventLike = Fact | RecordedEvent | PublishedEvent | tuple[Any, str, Mapping[str, Any]]


def as_fact(event: EventLike) -> Fact:
    """A ``Fact`` from a ``PublishedEvent`` (``read_topic``), a ``RecordedEvent`` (the event
    store) or an ``(event id, event type, data)`` tuple."""
    if isinstance(event, Fact):
        return event
    if isinstance(event, PublishedEvent):
        event = event.event
    if isinstance(event, RecordedEvent):
        return Fact(str(event.event_id), event.event_type, event.data)
    event_id, event_type, data = event
    return Fact(str(event_id), event_type, data)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _quarter_parts(quarter: str) -> tuple[int, int]:
    """``"2025-Q2"`` -> ``(2025, 2)``."""
    year, q = quarter.split("-Q")
    return int(year), int(q)


def _quarter_end(quarter: str) -> date:
    year, q = _quarter_parts(quarter)
    return _month_end(year, 3 * q)


def _period_end(period: str) -> date:
    """A villager evaluation's period: ``"2025"`` or ``"2025-Q1"``."""
    if "-Q" in period:
        return _quarter_end(period)
    return date(int(period), 12, 31)


def add_years(day: date, years: int) -> date:
    """``day`` plus whole years; 29 February + n years is 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


# --- the facts of docs/decisions.md ---------------------------------------------------------


@dataclass(frozen=True)
class MonthClose:
    event_id: str
    month: str  # YYYY-MM
    year: int
    index: int  # months since year 0: consecutive months differ by 1
    end: date
    shortfall: int
    leave_days: int  # personal + sick
    unexcused_absences: int
    policy_version: str


@dataclass(frozen=True)
class QuarterlyGrade:
    event_id: str
    quarter: str
    index: int  # quarters since year 0
    end: date
    county: str
    grade: str
    policy_version: str


@dataclass(frozen=True)
class AnnualGrade:
    event_id: str
    year: int
    end: date  # 31 December
    county: str
    grade: str


@dataclass(frozen=True)
class TermGrade:
    event_id: str
    assignment_id: str
    term_end: date
    county: str
    grade: str
    policy_version: str


@dataclass(frozen=True)
class Sanction:
    event_id: str
    sanction_id: str
    decided_on: date
    county: str


@dataclass(frozen=True)
class RedList:
    """One cadre on the red list of one ``RedBlueListsPublished``."""

    event_id: str
    quarter: str
    year: int
    index: int
    end: date
    county: str


@dataclass(frozen=True)
class Evaluation:
    event_id: str
    period: str
    end: date
    county: str
    satisfaction: float


@dataclass(frozen=True)
class Assignment:
    event_id: str
    assignment_id: str
    cadre_id: str
    term_start: date
    term_end: date
    county: str


@dataclass(frozen=True)
class Recall:
    event_id: str
    recalled_on: date
    decision_id: str | None


@dataclass
class CadreFacts:
    """Everything the rules know about one cadre."""

    months: list[MonthClose] = field(default_factory=list)
    quarters: list[QuarterlyGrade] = field(default_factory=list)
    annuals: list[AnnualGrade] = field(default_factory=list)
    terms: list[TermGrade] = field(default_factory=list)
    sanctions: list[Sanction] = field(default_factory=list)
    red_lists: list[RedList] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    recalls: list[Recall] = field(default_factory=list)


@dataclass
class History:
    cadres: dict[str, CadreFacts] = field(default_factory=dict)
    #: Every assignment by id (a term grade looks its assignment up here).
    assignments: dict[str, Assignment] = field(default_factory=dict)
    #: Decision ids cited by a ``dispatch.CadreRecalled``.
    executed: set[str] = field(default_factory=set)
    #: Decision ids named by a ``decisions.RecallDismissed``.
    dismissed: set[str] = field(default_factory=set)

    def cadre(self, cadre_id: str) -> CadreFacts:
        if cadre_id not in self.cadres:
            self.cadres[cadre_id] = CadreFacts()
        return self.cadres[cadre_id]


def read_history(events: Iterable[EventLike]) -> History:
    """Sort the events into facts per cadre, once per event id."""
    history = History()
    seen: set[str] = set()
    for event in events:
        fact = as_fact(event)
        if fact.event_id in seen:
            continue
        seen.add(fact.event_id)
        _add(history, fact)
    _refuse_duplicates(history)
    return history


def _add(history: History, fact: Fact) -> None:
    d = fact.data
    eid = fact.event_id
    kind = fact.event_type
    if kind == MONTH_CLOSED:
        year, month = (int(part) for part in d["month"].split("-"))
        history.cadre(d["cadre_id"]).months.append(
            MonthClose(
                event_id=eid,
                month=d["month"],
                year=year,
                index=year * 12 + month - 1,
                end=_month_end(year, month),
                shortfall=d["shortfall"],
                leave_days=d["personal_leave_days"] + d["sick_leave_days"],
                unexcused_absences=d["unexcused_absences"],
                policy_version=d["policy_version"],
            )
        )
    elif kind == QUARTERLY_ASSESSED:
        year, q = _quarter_parts(d["quarter"])
        history.cadre(d["cadre_id"]).quarters.append(
            QuarterlyGrade(
                event_id=eid,
                quarter=d["quarter"],
                index=year * 4 + q - 1,
                end=_quarter_end(d["quarter"]),
                county=d["county"],
                grade=str(d["grade"]),
                policy_version=d["policy_version"],
            )
        )
    elif kind == ANNUAL_RESULT_ISSUED:
        history.cadre(d["cadre_id"]).annuals.append(
            AnnualGrade(
                event_id=eid,
                year=int(d["year"]),
                end=date(int(d["year"]), 12, 31),
                county=d["county"],
                grade=str(d["grade"]),
            )
        )
    elif kind == TERM_ASSESSED:
        history.cadre(d["cadre_id"]).terms.append(
            TermGrade(
                event_id=eid,
                assignment_id=d["assignment_id"],
                term_end=_day(d["term_end"]),
                county=d["county"],
                grade=str(d["grade"]),
                policy_version=d["policy_version"],
            )
        )
    elif kind == SANCTION_RECORDED:
        history.cadre(d["cadre_id"]).sanctions.append(
            Sanction(
                event_id=eid,
                sanction_id=d["sanction_id"],
                decided_on=_day(d["decided_on"]),
                county=d["county"],
            )
        )
    elif kind == RED_BLUE_LISTS_PUBLISHED:
        year, q = _quarter_parts(d["quarter"])
        # One fact per cadre on the red list (a name twice on one list still counts once).
        for cadre_id in sorted({entry["cadre_id"] for entry in d["red"]}):
            history.cadre(cadre_id).red_lists.append(
                RedList(
                    event_id=eid,
                    quarter=d["quarter"],
                    year=year,
                    index=year * 4 + q - 1,
                    end=_quarter_end(d["quarter"]),
                    county=d["county"],
                )
            )
    elif kind == VILLAGER_EVALUATION_RECORDED:
        history.cadre(d["cadre_id"]).evaluations.append(
            Evaluation(
                event_id=eid,
                period=d["period"],
                end=_period_end(d["period"]),
                county=d["county"],
                satisfaction=float(d["satisfaction"]),
            )
        )
    elif kind == CADRE_ASSIGNED:
        assignment = Assignment(
            event_id=eid,
            assignment_id=d["assignment_id"],
            cadre_id=d["cadre_id"],
            term_start=_day(d["term_start"]),
            term_end=_day(d["term_end"]),
            county=d["county"],
        )
        history.cadre(d["cadre_id"]).assignments.append(assignment)
        if assignment.assignment_id in history.assignments:
            raise AmbiguousFacts(f"assignment {assignment.assignment_id} is assigned twice")
        history.assignments[assignment.assignment_id] = assignment
    elif kind == CADRE_RECALLED:
        decision_id = d.get("decision_id")
        history.cadre(d["cadre_id"]).recalls.append(
            Recall(
                event_id=eid,
                recalled_on=_day(d["recalled_on"]),
                decision_id=None if decision_id is None else str(decision_id),
            )
        )
        # READING: a recall executes the decision it names, whatever cadre the decision is
        # about (the document matches by decision id only).
        if decision_id is not None:
            history.executed.add(str(decision_id))
    elif kind == RECALL_DISMISSED:
        history.dismissed.add(str(d["decision_id"]))
    # Any other event type: not a fact of docs/decisions.md.


def _refuse_duplicates(history: History) -> None:
    """READING: the document assumes one fact per cadre and period (one close per month, one
    quarterly grade per quarter, one annual grade per year, one term grade per assignment, one
    event per sanction id). It does not say which of two would count, so the model refuses."""
    for cadre_id, facts in history.cadres.items():
        checks: list[tuple[str, list[str]]] = [
            ("month close", [m.month for m in facts.months]),
            ("quarterly grade", [q.quarter for q in facts.quarters]),
            ("annual grade", [str(a.year) for a in facts.annuals]),
            ("term grade", [t.assignment_id for t in facts.terms]),
            ("sanction", [s.sanction_id for s in facts.sanctions]),
        ]
        for what, periods in checks:
            for period in periods:
                if periods.count(period) > 1:
                    raise AmbiguousFacts(f"cadre {cadre_id} has two events for the {what} {period}")


# --- recall decisions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    decision_id: str
    cadre_id: str
    rule: int
    key: str
    business_date: date
    evidence: tuple[str, ...]
    policy_version: str
    status: str

    def row(self) -> DecisionRow:
        return (
            self.decision_id,
            self.cadre_id,
            self.rule,
            self.key,
            self.business_date,
            self.evidence,
            self.policy_version,
            self.status,
        )


def decision_id(cadre_id: str, rule: int, key: str) -> str:
    return str(uuid5(DECISION_NAMESPACE, f"recall|{cadre_id}|{rule}|{key}"))


def _decision(
    history: History,
    cadre_id: str,
    rule: int,
    key: str,
    business_date: date,
    evidence: Iterable[str],
    pack: Pack,
) -> Decision:
    the_id = decision_id(cadre_id, rule, key)
    if the_id in history.executed:
        status = EXECUTED
    elif the_id in history.dismissed:
        status = DISMISSED
    else:
        status = RECOMMENDED
    return Decision(
        decision_id=the_id,
        cadre_id=cadre_id,
        rule=rule,
        key=key,
        business_date=business_date,
        evidence=tuple(sorted(evidence)),
        policy_version=pack.version,
        status=status,
    )


def cadre_decisions(
    history: History, cadre_id: str, facts: CadreFacts, packs: Packs
) -> list[Decision]:
    """Rules 1-6 for one cadre."""
    found: list[Decision] = []
    months = sorted(facts.months, key=lambda m: m.index)
    quarters = sorted(facts.quarters, key=lambda q: q.index)

    # Rule 1: shortfall in consecutive closed months. The run is the list of its month closes.
    # READING: "reaches" is >= (it only differs from == when the threshold of the month's pack
    # drops below the current run between two months).
    run: list[MonthClose] = []
    previous: MonthClose | None = None
    for month in months:
        if month.shortfall > 0:
            if previous is not None and month.index == previous.index + 1:
                run.append(month)  # directly after the previous calendar month: adds one
            else:
                run = [month]  # any other month with a shortfall starts the run at 1
            pack = packs.by_version(month.policy_version)
            if len(run) >= pack.recall_shortfall_consecutive_months:
                evidence = [m.event_id for m in run]
                found.append(
                    _decision(history, cadre_id, 1, month.month, month.end, evidence, pack)
                )
                run = []  # the run restarts at 0
        else:
            run = []
        previous = month

    # Rules 2 and 3: leave and unexcused absences per calendar year, once per year.
    years = sorted({m.year for m in months})
    for year in years:
        year_months = [m for m in months if m.year == year]

        # Rule 2: the first month where the year's leave *exceeds* the limit of its pack.
        # READING: "closes with leave" are the closes with personal + sick leave > 0.
        leave = 0
        with_leave: list[MonthClose] = []
        for month in year_months:
            leave += month.leave_days
            if month.leave_days > 0:
                with_leave.append(month)
            pack = packs.by_version(month.policy_version)
            if leave > pack.annual_leave_limit_days:
                evidence = [m.event_id for m in with_leave]
                found.append(_decision(history, cadre_id, 2, str(year), month.end, evidence, pack))
                break

        # Rule 3: the first month where the year's absences *reach* the threshold.
        # READING: the threshold is that month's pack's (the table's "Pack of: the month
        # close"; only rule 2's text says "of that month's pack"), "reaches" is >=, and "closes
        # with absences" are the closes with unexcused_absences > 0.
        absences = 0
        with_absences: list[MonthClose] = []
        for month in year_months:
            absences += month.unexcused_absences
            if month.unexcused_absences > 0:
                with_absences.append(month)
            pack = packs.by_version(month.policy_version)
            if absences >= pack.recall_unexcused_absences:
                evidence = [m.event_id for m in with_absences]
                found.append(_decision(history, cadre_id, 3, str(year), month.end, evidence, pack))
                break

    # Rule 4: grades. Annual grades record no pack: the pack in force for the grade's county
    # on 31 December. Term and quarterly grades: the pack they recorded.
    for annual in facts.annuals:
        pack = packs.in_force(annual.county, annual.end)
        if annual.grade in pack.recall_annual_grades:
            key = f"annual:{annual.year}"
            found.append(_decision(history, cadre_id, 4, key, annual.end, [annual.event_id], pack))
    for term in facts.terms:
        pack = packs.by_version(term.policy_version)
        if term.grade in pack.recall_annual_grades:
            key = f"term:{term.assignment_id}"
            found.append(_decision(history, cadre_id, 4, key, term.term_end, [term.event_id], pack))
    for quarter in quarters:
        pack = packs.by_version(quarter.policy_version)
        if quarter.grade in pack.recall_quarterly_grades:
            key = f"quarter:{quarter.quarter}"
            found.append(
                _decision(history, cadre_id, 4, key, quarter.end, [quarter.event_id], pack)
            )

    # Rule 5: 一般 (average) in consecutive quarters; same walk as rule 1.
    # READING: the threshold is the pack of the quarter being walked (the candidate trigger),
    # and "reaches" is >=.
    average_run: list[QuarterlyGrade] = []
    previous_quarter: QuarterlyGrade | None = None
    for quarter in quarters:
        if quarter.grade == "average":
            if previous_quarter is not None and quarter.index == previous_quarter.index + 1:
                average_run.append(quarter)
            else:
                average_run = [quarter]
            pack = packs.by_version(quarter.policy_version)
            if len(average_run) >= pack.recall_average_consecutive_quarters:
                evidence = [q.event_id for q in average_run]
                found.append(
                    _decision(history, cadre_id, 5, quarter.quarter, quarter.end, evidence, pack)
                )
                average_run = []
        else:
            average_run = []
        previous_quarter = quarter

    # Rule 6: each sanction. READING: "the sanction id" is the event's ``sanction_id`` field,
    # not its event id.
    for sanction in facts.sanctions:
        pack = packs.in_force(sanction.county, sanction.decided_on)
        if pack.recall_on_sanction:
            found.append(
                _decision(
                    history,
                    cadre_id,
                    6,
                    sanction.sanction_id,
                    sanction.decided_on,
                    [sanction.event_id],
                    pack,
                )
            )
    return found


# --- promotion pools ------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolEntry:
    cadre_id: str
    pool: str
    key: str
    county: str
    qualified_on: date
    evidence: tuple[str, ...]
    policy_version: str
    status: str
    status_on: date | None
    status_reason: str | None
    status_evidence: str | None

    def row(self) -> PoolRow:
        return (
            self.cadre_id,
            self.pool,
            self.key,
            self.county,
            self.qualified_on,
            self.evidence,
            self.policy_version,
            self.status,
            self.status_on,
            self.status_reason,
            self.status_evidence,
        )


def _ranks_below(grade: str, lowest: str) -> bool:
    return ANNUAL_GRADES.index(grade) > ANNUAL_GRADES.index(lowest)


def _status(
    facts: CadreFacts, decisions: list[Decision], pool: str, qualified_on: date, pack: Pack
) -> tuple[str, date | None, str | None, str | None]:
    """withdrawn, else barred, else active; under the entry's pack."""
    # 1. Disqualifiers dated on or after the qualifying day. Sorting (date, reason's rank,
    # evidence id) names the earliest, ties broken as the document says.
    # READING: "D >= Q" includes the qualifying day itself (a Q4 差 or a December decision
    # withdraws the reserve entry of that year).
    disqualifiers: list[tuple[date, int, str, str]] = []
    for decision in decisions:
        if decision.status != DISMISSED and decision.business_date >= qualified_on:
            disqualifiers.append(
                (decision.business_date, 0, decision.decision_id, "recall_decision")
            )
    for recall in facts.recalls:
        if recall.recalled_on >= qualified_on:
            disqualifiers.append((recall.recalled_on, 1, recall.event_id, "recalled"))
    for annual in facts.annuals:
        if annual.grade in pack.disqualifying_annual_grades and annual.end >= qualified_on:
            disqualifiers.append((annual.end, 2, annual.event_id, "low_grade"))
    for term in facts.terms:
        if term.grade in pack.disqualifying_annual_grades and term.term_end >= qualified_on:
            disqualifiers.append((term.term_end, 2, term.event_id, "low_grade"))
    for quarter in facts.quarters:
        if quarter.grade in pack.disqualifying_quarterly_grades and quarter.end >= qualified_on:
            disqualifiers.append((quarter.end, 2, quarter.event_id, "low_grade"))
    if disqualifiers:
        day, _, evidence, reason = min(disqualifiers)
        return WITHDRAWN, day, reason, evidence

    # 2. The ban after a recall by dispatch: R < Q < R + n years.
    # READING: with several such recalls the earliest is named (then the smaller event id).
    if pool in pack.recall_barred_pools:
        bans: list[tuple[date, str]] = []
        for recall in facts.recalls:
            ban_end = add_years(recall.recalled_on, pack.recall_ban_years)
            if recall.recalled_on < qualified_on < ban_end:
                bans.append((recall.recalled_on, recall.event_id))
        if bans:
            day, evidence = min(bans)
            return BARRED, day, "recall_ban", evidence

    # 3.
    return ACTIVE, None, None, None


def _entry(
    cadre_id: str,
    facts: CadreFacts,
    decisions: list[Decision],
    pool: str,
    key: str,
    county: str,
    qualified_on: date,
    evidence: Iterable[str],
    pack: Pack,
) -> PoolEntry:
    status, status_on, reason, status_evidence = _status(facts, decisions, pool, qualified_on, pack)
    return PoolEntry(
        cadre_id=cadre_id,
        pool=pool,
        key=key,
        county=county,
        qualified_on=qualified_on,
        evidence=tuple(sorted(set(evidence))),
        policy_version=pack.version,
        status=status,
        status_on=status_on,
        status_reason=reason,
        status_evidence=status_evidence,
    )


def cadre_pools(
    history: History,
    cadre_id: str,
    facts: CadreFacts,
    decisions: list[Decision],
    packs: Packs,
) -> list[PoolEntry]:
    """The four pools for one cadre. Every entry uses the pack in force for its county on the
    day it qualified (READING: even for a term grade, which records a ``policy_version``)."""
    found: list[PoolEntry] = []

    # reserve: an annual grade of reserve_annual_grade, at least one closed month that year,
    # and every closed month of that year without shortfall.
    for annual in facts.annuals:
        pack = packs.in_force(annual.county, annual.end)
        if annual.grade != pack.reserve_annual_grade:
            continue
        closes = [m for m in facts.months if m.year == annual.year]
        if not closes:
            continue
        if any(m.shortfall > 0 for m in closes):
            continue
        evidence = [annual.event_id] + [m.event_id for m in closes]
        found.append(
            _entry(
                cadre_id,
                facts,
                decisions,
                "reserve",
                str(annual.year),
                annual.county,
                annual.end,
                evidence,
                pack,
            )
        )

    # promote: a term grade of promote_term_grade, no recall decision (not dismissed) dated
    # within the term, no annual grade below promote_lowest_annual_grade in the term's years.
    for term in facts.terms:
        pack = packs.in_force(term.county, term.term_end)
        if term.grade != pack.promote_term_grade:
            continue
        assignment = history.assignments.get(term.assignment_id)
        # READING: with the assignment unknown, neither the decisions nor the annual grades
        # have a lower bound (the document says so for the decisions only).
        term_start = assignment.term_start if assignment is not None else None
        blocked = False
        for decision in decisions:
            if decision.status == DISMISSED:
                continue
            after_start = term_start is None or decision.business_date >= term_start
            if after_start and decision.business_date <= term.term_end:
                blocked = True
        years_annuals = [
            a
            for a in facts.annuals
            if (term_start is None or a.year >= term_start.year) and a.year <= term.term_end.year
        ]
        for annual in years_annuals:
            if _ranks_below(annual.grade, pack.promote_lowest_annual_grade):
                blocked = True
        if blocked:
            continue
        evidence = [term.event_id] + [a.event_id for a in years_annuals]
        found.append(
            _entry(
                cadre_id,
                facts,
                decisions,
                "promote",
                f"term:{term.assignment_id}",
                term.county,
                term.term_end,
                evidence,
                pack,
            )
        )

    # publicise (a): red lists within one assignment's term.
    # READING: the term is the planned [term_start, term_end] of CadreAssigned (an early end,
    # e.g. a recall, does not shorten it); red lists of any county count; lists of one quarter
    # are walked in event id order; each list is counted against its own pack's threshold.
    for assignment in facts.assignments:
        in_term = [
            r for r in facts.red_lists if assignment.term_start <= r.end <= assignment.term_end
        ]
        in_term.sort(key=lambda r: (r.index, r.event_id))
        counted: list[RedList] = []
        for red in in_term:
            counted.append(red)
            pack = packs.in_force(red.county, red.end)
            if len(counted) >= pack.publicise_red_lists_in_term:
                found.append(
                    _entry(
                        cadre_id,
                        facts,
                        decisions,
                        "publicise",
                        f"red:{assignment.assignment_id}",
                        red.county,
                        red.end,
                        [r.event_id for r in counted],
                        pack,
                    )
                )
                break

    # publicise (b): villager evaluations of one period at or above the minimum. The period's
    # best evaluation (ties: the smaller event id) names the county and so the pack; every
    # evaluation of the period at or above that pack's minimum is evidence.
    periods = sorted({e.period for e in facts.evaluations})
    for period in periods:
        of_period = [e for e in facts.evaluations if e.period == period]
        best = sorted(of_period, key=lambda e: (-e.satisfaction, e.event_id))[0]
        pack = packs.in_force(best.county, best.end)
        qualifying = [
            e for e in of_period if e.satisfaction >= pack.publicise_villager_satisfaction_min
        ]
        if not qualifying:
            continue
        found.append(
            _entry(
                cadre_id,
                facts,
                decisions,
                "publicise",
                f"villagers:{period}",
                best.county,
                best.end,
                [e.event_id for e in qualifying],
                pack,
            )
        )

    # commend: an annual grade of commend_annual_grade and a red list of a quarter of that
    # year (READING: of any county).
    for annual in facts.annuals:
        pack = packs.in_force(annual.county, annual.end)
        if annual.grade != pack.commend_annual_grade:
            continue
        reds = [r for r in facts.red_lists if r.year == annual.year]
        if not reds:
            continue
        evidence = [annual.event_id] + [r.event_id for r in reds]
        found.append(
            _entry(
                cadre_id,
                facts,
                decisions,
                "commend",
                str(annual.year),
                annual.county,
                annual.end,
                evidence,
                pack,
            )
        )
    return found


# --- the whole model ------------------------------------------------------------------------


def reference_model(
    events: Iterable[EventLike], packs: Packs
) -> tuple[set[DecisionRow], set[PoolRow]]:
    """The normal form of every cadre's recall decisions and pool entries."""
    history = read_history(events)
    decisions: set[DecisionRow] = set()
    pools: set[PoolRow] = set()
    for cadre_id in sorted(history.cadres):
        facts = history.cadres[cadre_id]
        found = cadre_decisions(history, cadre_id, facts, packs)
        decisions.update(d.row() for d in found)
        pools.update(e.row() for e in cadre_pools(history, cadre_id, facts, found, packs))
    return decisions, pools


def reference_decisions(events: Iterable[EventLike], packs: Packs) -> set[DecisionRow]:
    return reference_model(events, packs)[0]


def reference_pools(events: Iterable[EventLike], packs: Packs) -> set[PoolRow]:
    return reference_model(events, packs)[1]
