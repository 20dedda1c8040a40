"""The rules of 用, as a pure function: a cadre's facts in, recall decisions and pool entries
out (``docs/decisions.md`` is the contract, rule by rule).

No I/O and no clock: :func:`evaluate` sees only the facts and the policy packs, so the live
projection, a rebuild, a what-if under another pack and the reference model agree whatever
order Kafka delivered the facts in.
"""

from __future__ import annotations

import calendar
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from zhucun.contracts.decisions.events import RULE_NAMES
from zhucun.projections.domain.policy import DecisionPolicy, LeaveLimit
from zhucun.shared.policy import PolicyBook, PolicyError, PolicyPack

#: Namespace of recall decision ids: ``uuid5(NS, "recall|<cadre>|<rule>|<key>")``.
DECISION_NAMESPACE = uuid.UUID("6f1c2a9e-7b4d-5e8f-9a10-3c2b1d0e4f5a")

FactKind = Literal[
    "month_close",
    "quarterly",
    "annual",
    "term",
    "sanction",
    "red_list",
    "villagers",
    "assignment",
    "recall",
    "dismissal",
]
DecisionStatus = Literal["recommended", "executed", "dismissed"]
EntryStatus = Literal["active", "withdrawn", "barred"]
Pool = Literal["reserve", "promote", "publicise", "commend"]


@dataclass(frozen=True, slots=True)
class Fact:
    """One fact about one cadre, taken from one event (``docs/decisions.md``, Facts).

    ``period`` is the fact's period or item: a month ``2025-04``, a quarter ``2025-Q2``, a year
    ``2025``, an evaluation period, a sanction id, an assignment id. ``ref`` is the decision a
    recall or a dismissal names, or the assignment of a term grade. ``on`` is the business
    date.
    """

    event_id: str
    cadre_id: str
    kind: FactKind
    on: date
    period: str = ""
    county: str | None = None
    policy_version: str | None = None
    grade: str | None = None
    shortfall: int = 0
    leave_days: int = 0
    absences: int = 0
    satisfaction: float = 0.0
    ref: str | None = None
    #: An assignment's term start.
    start: date | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    cadre_id: str
    rule: int
    key: str
    triggered_on: date
    evidence: tuple[str, ...]
    policy_version: str
    status: DecisionStatus
    reason: str
    #: The ``CadreRecalled`` fact that executed it (its event id, assignment and date).
    executed_by: Fact | None = None


@dataclass(frozen=True, slots=True)
class PoolEntry:
    cadre_id: str
    pool: Pool
    key: str
    county: str
    qualified_on: date
    evidence: tuple[str, ...]
    policy_version: str
    status: EntryStatus
    status_on: date | None
    status_reason: str | None
    status_evidence: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    decisions: tuple[Decision, ...]
    entries: tuple[PoolEntry, ...]
    #: Facts no pack could be found for (an unknown version, a county no pack covers): the
    #: rules skip them; the projection logs them.
    unresolved: tuple[str, ...] = ()


class Packs:
    """Which pack a fact applies: the version it recorded, else the one in force for its
    county on its date; or, for a what-if, one pack for everything."""

    def __init__(self, book: PolicyBook, *, override: PolicyPack | None = None) -> None:
        self.book = book
        self.override = override

    def of(self, fact: Fact, *, on: date | None = None) -> PolicyPack:
        if self.override is not None:
            return self.override
        if fact.policy_version is not None:
            return self.book.version(fact.policy_version)
        if fact.county is None:
            raise PolicyError(f"fact {fact.event_id} names neither a policy nor a county")
        return self.book.in_force(fact.county, on or fact.on)

    def in_force(self, county: str, on: date) -> PolicyPack:
        if self.override is not None:
            return self.override
        return self.book.in_force(county, on)


# --- calendar --------------------------------------------------------------------------------


def month_end(month: str) -> date:
    year, number = int(month[:4]), int(month[5:7])
    return date(year, number, calendar.monthrange(year, number)[1])


def quarter_end(quarter: str) -> date:
    year, number = int(quarter[:4]), int(quarter[-1])
    return month_end(f"{year}-{3 * number:02d}")


def period_end(period: str) -> date:
    """``2025`` -> 31 Dec 2025; ``2025-Q1`` -> 31 Mar 2025; ``2025-04`` -> 30 Apr 2025."""
    if len(period) == 4:
        return date(int(period), 12, 31)
    if "Q" in period:
        return quarter_end(period)
    return month_end(period)


def _month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def _quarter_index(quarter: str) -> int:
    return int(quarter[:4]) * 4 + int(quarter[-1]) - 1


def add_years(day: date, years: int) -> date:
    """``day`` plus whole years; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def decision_id(cadre_id: str, rule: int, key: str) -> str:
    return str(uuid.uuid5(DECISION_NAMESPACE, f"recall|{cadre_id}|{rule}|{key}"))


# --- recall decisions ----------------------------------------------------------------------


@dataclass
class _Triggers:
    cadre_id: str
    found: list[tuple[int, str, date, tuple[str, ...], str, str]] = field(default_factory=list)

    def add(
        self, rule: int, key: str, on: date, evidence: Iterable[Fact], pack: PolicyPack, why: str
    ) -> None:
        ids = tuple(sorted({fact.event_id for fact in evidence}))
        self.found.append((rule, key, on, ids, pack.version, why))


def _rules(pack: PolicyPack) -> DecisionPolicy:
    return pack.rules(DecisionPolicy)


def _runs(
    items: Sequence[Fact],
    index: Callable[[str], int],
    counts: Callable[[Fact], bool],
    needed: Callable[[Fact], int],
    fire: Callable[[list[Fact]], None],
) -> None:
    """The run counter of rules 1 and 5: consecutive periods that count; a trigger restarts
    the run at 0."""
    run: list[Fact] = []
    previous: int | None = None
    for fact in items:
        current = index(fact.period)
        if counts(fact):
            run = [*run, fact] if previous is not None and current == previous + 1 else [fact]
            if len(run) >= needed(fact):
                fire(run)
                run = []
        else:
            run = []
        previous = current


def _recall_decisions(
    cadre_id: str, facts: Sequence[Fact], packs: Packs, unresolved: list[str]
) -> _Triggers:
    triggers = _Triggers(cadre_id)

    def pack_of(fact: Fact, on: date | None = None) -> PolicyPack | None:
        try:
            pack = packs.of(fact, on=on)
            pack.rules(DecisionPolicy)
            pack.rules(LeaveLimit)
        except PolicyError:
            unresolved.append(fact.event_id)
            return None
        return pack

    closes = sorted(
        (f for f in facts if f.kind == "month_close" and pack_of(f) is not None),
        key=lambda f: (f.period, f.event_id),
    )
    _shortfall_runs(closes, packs, triggers)
    by_year: dict[str, list[Fact]] = defaultdict(list)
    for close in closes:
        by_year[close.period[:4]].append(close)
    for year, months in sorted(by_year.items()):
        _leave_and_absences(year, months, packs, triggers)
    for fact in facts:
        if fact.kind in ("annual", "term", "quarterly", "sanction"):
            pack = pack_of(fact)
            if pack is not None:
                _graded(fact, pack, triggers)
    quarters = sorted(
        (f for f in facts if f.kind == "quarterly" and pack_of(f) is not None),
        key=lambda f: (f.period, f.event_id),
    )
    _average_runs(quarters, packs, triggers)
    return triggers


def _shortfall_runs(closes: Sequence[Fact], packs: Packs, triggers: _Triggers) -> None:
    """Rule 1: short of the required days in consecutive closed months."""
    _runs(
        closes,
        _month_index,
        lambda f: f.shortfall > 0,
        lambda f: _rules(packs.of(f)).recall_shortfall_consecutive_months,
        lambda run: triggers.add(
            1,
            run[-1].period,
            month_end(run[-1].period),
            run,
            packs.of(run[-1]),
            f"short of the required days in {len(run)} consecutive closed months"
            f" ({run[0].period} to {run[-1].period}; shortfall"
            f" {', '.join(str(f.shortfall) for f in run)} days)",
        ),
    )


def _leave_and_absences(
    year: str, months: Sequence[Fact], packs: Packs, triggers: _Triggers
) -> None:
    """Rules 2 and 3: leave days and unexcused absences accumulated over a year's closes."""
    leave = absences = 0
    leave_done = absences_done = False
    for close in months:
        pack = packs.of(close)
        leave += close.leave_days
        absences += close.absences
        limit = pack.rules(LeaveLimit).annual_leave_limit_days
        if not leave_done and leave > limit:
            leave_done = True
            evidence = [m for m in months if m.leave_days > 0 and m.period <= close.period]
            triggers.add(
                2,
                year,
                month_end(close.period),
                evidence,
                pack,
                f"{leave} days of personal and sick leave in {year} by the close of"
                f" {close.period}, over the limit of {limit}",
            )
        threshold = _rules(pack).recall_unexcused_absences
        if not absences_done and absences >= threshold:
            absences_done = True
            evidence = [m for m in months if m.absences > 0 and m.period <= close.period]
            triggers.add(
                3,
                year,
                month_end(close.period),
                evidence,
                pack,
                f"{absences} unexcused spot-check absences in {year} by the close of"
                f" {close.period} (recall from {threshold})",
            )


def _graded(fact: Fact, pack: PolicyPack, triggers: _Triggers) -> None:
    """Rule 4 (recalling annual, term and quarterly grades) and rule 6 (a sanction)."""
    rules = _rules(pack)
    if fact.kind == "annual":
        if fact.grade in rules.recall_annual_grades:
            triggers.add(
                4,
                f"annual:{fact.period}",
                fact.on,
                [fact],
                pack,
                f"annual grade {fact.grade} for {fact.period}",
            )
    elif fact.kind == "term":
        if fact.grade in rules.recall_annual_grades:
            triggers.add(
                4,
                f"term:{fact.ref}",
                fact.on,
                [fact],
                pack,
                f"term grade {fact.grade} for the term ending {fact.on}",
            )
    elif fact.kind == "quarterly":
        if fact.grade in rules.recall_quarterly_grades:
            triggers.add(
                4,
                f"quarter:{fact.period}",
                fact.on,
                [fact],
                pack,
                f"quarterly grade {fact.grade} for {fact.period}",
            )
    elif rules.recall_on_sanction:
        triggers.add(
            6,
            fact.period,
            fact.on,
            [fact],
            pack,
            f"a disciplinary sanction decided on {fact.on}",
        )


def _average_runs(quarters: Sequence[Fact], packs: Packs, triggers: _Triggers) -> None:
    """Rule 5: 一般 in consecutive quarters."""
    _runs(
        quarters,
        _quarter_index,
        lambda f: f.grade == "average",
        lambda f: _rules(packs.of(f)).recall_average_consecutive_quarters,
        lambda run: triggers.add(
            5,
            run[-1].period,
            quarter_end(run[-1].period),
            run,
            packs.of(run[-1]),
            f"quarterly grade average (一般) in {len(run)} consecutive quarters"
            f" ({run[0].period} to {run[-1].period})",
        ),
    )


def _decisions(
    cadre_id: str, facts: Sequence[Fact], packs: Packs
) -> tuple[list[Decision], list[str]]:
    unresolved: list[str] = []
    triggers = _recall_decisions(cadre_id, facts, packs, unresolved)
    recalls = sorted((f for f in facts if f.kind == "recall"), key=lambda f: (f.on, f.event_id))
    dismissed = {f.ref for f in facts if f.kind == "dismissal"}
    decisions = []
    for rule, key, on, evidence, version, why in triggers.found:
        identifier = decision_id(cadre_id, rule, key)
        executed = next((f for f in recalls if f.ref == identifier), None)
        status: DecisionStatus = (
            "executed"
            if executed is not None
            else "dismissed"
            if identifier in dismissed
            else "recommended"
        )
        decisions.append(
            Decision(
                identifier,
                cadre_id,
                rule,
                key,
                on,
                evidence,
                version,
                status,
                f"rule {rule} ({RULE_NAMES[rule]}): {why}",
                executed,
            )
        )
    decisions.sort(key=lambda d: (d.triggered_on, d.rule, d.key))
    return decisions, sorted(set(unresolved))


# --- promotion pools -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Qualified:
    pool: Pool
    key: str
    county: str
    on: date
    evidence: tuple[str, ...]
    pack: PolicyPack
    reason: str


def _qualifications(
    facts: Sequence[Fact], decisions: Sequence[Decision], packs: Packs
) -> list[_Qualified]:
    pools = _Pools(packs)
    closes = [f for f in facts if f.kind == "month_close"]
    annuals = [f for f in facts if f.kind == "annual"]
    reds = sorted((f for f in facts if f.kind == "red_list"), key=lambda f: (f.period, f.event_id))
    assignments = {f.ref: f for f in facts if f.kind == "assignment" and f.ref is not None}
    live_decisions = [d for d in decisions if d.status != "dismissed"]
    for annual in annuals:
        pools.reserve_and_commend(annual, closes, reds)
    for term in (f for f in facts if f.kind == "term"):
        pools.promote(term, annuals, assignments, live_decisions)
    for assignment in sorted(assignments.values(), key=lambda f: f.event_id):
        pools.publicise_red_lists(assignment, reds)
    pools.publicise_villagers([f for f in facts if f.kind == "villagers"])
    return pools.found


@dataclass
class _Pools:
    """The pool entries one cadre qualifies for, found rule by rule."""

    packs: Packs
    found: list[_Qualified] = field(default_factory=list)

    def qualify(
        self,
        pool: Pool,
        key: str,
        county: str,
        on: date,
        evidence: Iterable[Fact | str],
        pack: PolicyPack,
        reason: str,
    ) -> None:
        ids = {e if isinstance(e, str) else e.event_id for e in evidence}
        self.found.append(_Qualified(pool, key, county, on, tuple(sorted(ids)), pack, reason))

    def in_force(self, county: str | None, on: date) -> PolicyPack | None:
        if county is None:
            return None
        try:
            pack = self.packs.in_force(county, on)
            pack.rules(DecisionPolicy)
        except PolicyError:
            return None
        return pack

    def reserve_and_commend(
        self, annual: Fact, closes: Sequence[Fact], reds: Sequence[Fact]
    ) -> None:
        pack = self.in_force(annual.county, annual.on)
        if pack is None or annual.county is None:
            return
        rules = _rules(pack)
        year_closes = [c for c in closes if c.period[:4] == annual.period]
        if (
            annual.grade == rules.reserve_annual_grade
            and year_closes
            and all(c.shortfall == 0 for c in year_closes)
        ):
            self.qualify(
                "reserve",
                annual.period,
                annual.county,
                annual.on,
                [annual, *year_closes],
                pack,
                f"annual grade {annual.grade} for {annual.period} and all"
                f" {len(year_closes)} closed months of the year compliant",
            )
        year_reds = [r for r in reds if r.period[:4] == annual.period]
        if annual.grade == rules.commend_annual_grade and year_reds:
            self.qualify(
                "commend",
                annual.period,
                annual.county,
                annual.on,
                [annual, *year_reds],
                pack,
                f"annual grade {annual.grade} for {annual.period} and on the red list in"
                f" {', '.join(r.period for r in year_reds)}",
            )

    def promote(
        self,
        term: Fact,
        annuals: Sequence[Fact],
        assignments: Mapping[str, Fact],
        live_decisions: Sequence[Decision],
    ) -> None:
        pack = self.in_force(term.county, term.on)
        if pack is None or term.county is None:
            return
        rules = _rules(pack)
        if term.grade != rules.promote_term_grade:
            return
        assignment = assignments.get(term.ref) if term.ref is not None else None
        start = assignment.start if assignment is not None else None
        recalled = [
            d
            for d in live_decisions
            if (start is None or start <= d.triggered_on) and d.triggered_on <= term.on
        ]
        first_year = start.year if start is not None else None
        term_annuals = [
            a
            for a in annuals
            if (first_year is None or first_year <= int(a.period)) and int(a.period) <= term.on.year
        ]
        low = [
            a
            for a in term_annuals
            if a.grade is not None
            and rules.annual_below(a.grade, rules.promote_lowest_annual_grade)
        ]
        if not recalled and not low:
            self.qualify(
                "promote",
                f"term:{term.ref}",
                term.county,
                term.on,
                [term, *term_annuals],
                pack,
                f"term grade {term.grade}, no recall decision in the term and no annual grade"
                f" below {rules.promote_lowest_annual_grade}",
            )

    def publicise_red_lists(self, assignment: Fact, reds: Sequence[Fact]) -> None:
        start, end = assignment.start, assignment.on
        in_term = [r for r in reds if start is not None and start <= quarter_end(r.period) <= end]
        for count, red in enumerate(in_term, start=1):
            pack = self.in_force(red.county, quarter_end(red.period))
            if pack is None or red.county is None:
                continue
            if count >= _rules(pack).publicise_red_lists_in_term:
                self.qualify(
                    "publicise",
                    f"red:{assignment.ref}",
                    red.county,
                    quarter_end(red.period),
                    in_term[:count],
                    pack,
                    f"on the red list {count} times in the term"
                    f" ({', '.join(r.period for r in in_term[:count])})",
                )
                break

    def publicise_villagers(self, evaluations: Sequence[Fact]) -> None:
        by_period: dict[str, list[Fact]] = defaultdict(list)
        for evaluation in evaluations:
            by_period[evaluation.period].append(evaluation)
        for period, of_period in sorted(by_period.items()):
            # The best evaluation of the period names the county, hence the pack.
            best = min(of_period, key=lambda f: (-f.satisfaction, f.event_id))
            on = period_end(period)
            pack = self.in_force(best.county, on)
            if pack is None or best.county is None:
                continue
            minimum = _rules(pack).publicise_villager_satisfaction_min
            good = [e for e in of_period if e.satisfaction >= minimum]
            if good:
                self.qualify(
                    "publicise",
                    f"villagers:{period}",
                    best.county,
                    on,
                    good,
                    pack,
                    f"villagers' evaluation of {period}:"
                    f" {max(e.satisfaction for e in good):g} (from {minimum:g})",
                )


def _status(
    entry: _Qualified, facts: Sequence[Fact], decisions: Sequence[Decision]
) -> tuple[EntryStatus, date | None, str | None, str | None]:
    rules = _rules(entry.pack)
    disqualifiers: list[tuple[date, int, str, str]] = []
    for decision in decisions:
        if decision.status != "dismissed":
            disqualifiers.append(
                (decision.triggered_on, 0, decision.decision_id, "recall_decision")
            )
    recalls = [f for f in facts if f.kind == "recall"]
    for recall in recalls:
        disqualifiers.append((recall.on, 1, recall.event_id, "recalled"))
    for fact in facts:
        low = (
            fact.kind in ("annual", "term") and fact.grade in rules.disqualifying_annual_grades
        ) or (fact.kind == "quarterly" and fact.grade in rules.disqualifying_quarterly_grades)
        if low:
            disqualifiers.append((fact.on, 2, fact.event_id, "low_grade"))
    later = [d for d in disqualifiers if d[0] >= entry.on]
    if later:
        on, _, evidence, reason = min(later)
        return "withdrawn", on, reason, evidence
    if entry.pool in rules.recall_barred_pools:
        bans = sorted(
            (r.on, r.event_id)
            for r in recalls
            if r.on < entry.on < add_years(r.on, rules.recall_ban_years)
        )
        if bans:
            return "barred", bans[0][0], "recall_ban", bans[0][1]
    return "active", None, None, None


# --- the whole verdict -------------------------------------------------------------------------


def evaluate(cadre_id: str, facts: Iterable[Fact], packs: Packs) -> Verdict:
    """Every recall decision and pool entry of one cadre, from all of the cadre's facts."""
    unique = sorted(
        {(f.event_id, f.kind): f for f in facts}.values(), key=lambda f: (f.on, f.event_id)
    )
    decisions, unresolved = _decisions(cadre_id, unique, packs)
    entries = []
    for found in _qualifications(unique, decisions, packs):
        status, status_on, status_reason, status_evidence = _status(found, unique, decisions)
        entries.append(
            PoolEntry(
                cadre_id,
                found.pool,
                found.key,
                found.county,
                found.on,
                found.evidence,
                found.pack.version,
                status,
                status_on,
                status_reason,
                status_evidence,
                found.reason,
            )
        )
    entries.sort(key=lambda e: (e.qualified_on, e.pool, e.key))
    return Verdict(tuple(decisions), tuple(entries), tuple(unresolved))
