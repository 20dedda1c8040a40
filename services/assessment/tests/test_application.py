"""The assessment use cases without HTTP, Kafka or PostgreSQL: each handler on the in-memory
event store, with in-memory stand-ins for the replicas of dispatch and attendance.

What they own: the stream each decision reads and guards (a concurrent append to it makes
the decision run again), the policy pack of the day that decides, the enrichment of the
command from the replicas (the cadre's post, the year's absences), the jurisdiction rules,
and the refusals of what the replicas do not know yet."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from zhucun.assessment import http
from zhucun.assessment.application import (
    Application,
    NoAssignment,
    UnknownTeam,
    VillageNotReplicated,
    annual,
    quarters,
    records,
)
from zhucun.assessment.domain import (
    AlreadyAssessed,
    AssessmentRuleViolation,
    ExcellentShareExceeded,
    ListsAlreadyPublished,
    NotOnPost,
    annual_stream,
    cadre_stream,
    quarter_stream,
    team_stream,
)
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.assessment.replicas.dispatch import AssignmentRow
from zhucun.contracts.assessment.events import (
    AnnualGrade,
    AnnualGradeProposed,
    InspectionKind,
    QuarterlyAssessed,
    QuarterlyGrade,
    TalkBy,
    registry,
)
from zhucun.shared.auth import Jurisdiction, Principal, Role
from zhucun.shared.commands import CommandAccepted, CommandPath, StateCache
from zhucun.shared.envelope import EventMetadata, NewEvent, RecordedEvent
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.policy import NoPolicyInForce, PolicyBook, PolicyPack, load_pack
from zhucun.shared.problems import rule_problem
from zhucun.shared.rules import OutsideJurisdiction
from zhucun.shared.store import ANY_VERSION, AppendResult, StreamWrite

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = load_pack(ROOT / "policies" / "reference-2021.toml")
COUNTY = "530102"
TODAY = date(2026, 1, 15)
CADRES = ["c1", "c2", "c3", "c4", "c5"]

ADMIN = Principal(subject="admin", role=Role.ORG_ADMIN, jurisdiction=Jurisdiction(county=COUNTY))
TOWNSHIP = Principal(
    subject="t1-staff",
    role=Role.TOWNSHIP,
    jurisdiction=Jurisdiction(county=COUNTY, township="t1"),
)
OTHER_TOWNSHIP = Principal(
    subject="t2-staff",
    role=Role.TOWNSHIP,
    jurisdiction=Jurisdiction(county=COUNTY, township="t2"),
)
OTHER_COUNTY = Principal(
    subject="elsewhere", role=Role.ORG_ADMIN, jurisdiction=Jurisdiction(county="539999")
)


def row(
    cadre_id: str,
    *,
    assignment_id: str | None = None,
    term_start: date = date(2025, 1, 1),
    term_end: date = date(2026, 12, 31),
    ended_on: date | None = None,
    township: str | None = "t1",
    team_id: str = "team-1",
) -> AssignmentRow:
    return AssignmentRow(
        assignment_id=assignment_id or f"a-{cadre_id}",
        cadre_id=cadre_id,
        team_id=team_id,
        village_id="v1",
        county=COUNTY,
        term_start=term_start,
        term_end=term_end,
        ended_on=ended_on,
        township=township,
    )


class FakeAssignments:
    """The replica of dispatch: assignments in memory, answered as the real one orders them."""

    def __init__(self, rows: Sequence[AssignmentRow]) -> None:
        self.rows = sorted(rows, key=lambda r: (r.term_start, r.assignment_id))

    async def assignments_of(self, cadre_id: str) -> list[AssignmentRow]:
        return [r for r in self.rows if r.cadre_id == cadre_id]

    async def assignments_between(
        self, cadre_id: str, first: date, last: date
    ) -> list[AssignmentRow]:
        return [
            r
            for r in self.rows
            if r.cadre_id == cadre_id
            and r.term_start <= last
            and (r.ended_on is None or first <= r.ended_on)
        ]

    async def team_assignments(self, team_id: str) -> list[AssignmentRow]:
        return [r for r in self.rows if r.team_id == team_id]


@dataclass
class FakeAbsences:
    """The replica of attendance: unexcused absences by (cadre, year); the questions asked."""

    counts: dict[tuple[str, int], int] = field(default_factory=dict)
    asked: list[tuple[str, int]] = field(default_factory=list)

    async def unexcused_absences(self, cadre_id: str, year: int) -> int:
        self.asked.append((cadre_id, year))
        return self.counts.get((cadre_id, year), 0)


class RacingStore(InMemoryEventStore):
    """The in-memory store, where another writer appends ``intruders`` to a stream just
    before our next append to it (one each time)."""

    def __init__(self) -> None:
        super().__init__()
        self.intruders: list[tuple[str, QuarterlyAssessed | AnnualGradeProposed]] = []
        self.appends = 0

    async def append_streams(self, writes: Sequence[StreamWrite]) -> AppendResult:
        self.appends += 1
        if self.intruders:
            stream_id, event = self.intruders.pop(0)
            await super().append_streams(
                [StreamWrite(stream_id, [NewEvent(event=event, metadata=metadata())], ANY_VERSION)]
            )
        return await super().append_streams(writes)


def metadata(principal: Principal | None = None) -> EventMetadata:
    actor = f"{principal.subject}:{principal.role.value}" if principal else "someone:else"
    return EventMetadata(occurred_at=datetime(2026, 1, 15, 9, tzinfo=UTC), actor=actor)


@dataclass
class World:
    store: RacingStore
    app: Application
    absences: FakeAbsences

    async def stream(self, stream_id: str) -> list[RecordedEvent]:
        return await self.store.read_stream(stream_id)

    async def types(self, stream_id: str) -> list[str]:
        return [e.event_type.removeprefix("assessment.") for e in await self.stream(stream_id)]


def world(
    rows: Sequence[AssignmentRow] | None = None,
    *,
    packs: Sequence[PolicyPack] = (REFERENCE,),
    absences: dict[tuple[str, int], int] | None = None,
    today: date = TODAY,
) -> World:
    store = RacingStore()
    facts = FakeAbsences(dict(absences or {}))
    app = Application(
        commands=CommandPath(store, registry, StateCache()),
        assignments=FakeAssignments([row(c) for c in CADRES] if rows is None else rows),
        absences=facts,
        policies=PolicyBook(packs),
        metadata=metadata,
        today=lambda: today,
    )
    return World(store, app, facts)


def pack_for_county(version: str, effective_from: date, **assessment: object) -> PolicyPack:
    """A pack of the county's own, in force from ``effective_from``."""
    rules = REFERENCE.rules(AssessmentPolicy).model_dump() | assessment
    return REFERENCE.model_copy(
        update={
            "version": version,
            "jurisdiction": COUNTY,
            "effective_from": effective_from,
            "assessment": rules,
        }
    )


async def assess(w: World, cadre_id: str, quarter: str, score: float) -> None:
    await quarters.assess_quarter(
        w.app,
        TOWNSHIP,
        cadre_id,
        quarter,
        township_score=score,
        villager_score=score,
        county_panel_score=score,
    )


async def inspect_c1(w: World, *, problems_found: int = 0) -> CommandAccepted:
    """Township staff record a weekly inspection of c1 on 6 May 2025."""
    return await records.inspect_cadre(
        w.app,
        TOWNSHIP,
        "c1",
        inspection_id="i1",
        kind=InspectionKind.WEEKLY_INSPECTION,
        held_on=date(2025, 5, 6),
        problems_found=problems_found,
    )


# --- cadre and team streams -----------------------------------------------------------------


async def test_an_inspection_is_appended_to_the_cadres_stream_with_the_replicated_post() -> None:
    w = world()
    accepted = await inspect_c1(w, problems_found=2)
    assert (accepted.duplicate, accepted.stream_id, accepted.stream_version) == (
        False,
        cadre_stream("c1"),
        1,
    )
    [stored] = await w.stream(cadre_stream("c1"))
    assert stored.event_type == "assessment.CadreInspected"
    # The county and township come from the replica of dispatch, not from the caller.
    assert (stored.data["county"], stored.data["township"]) == (COUNTY, "t1")
    assert stored.data["problems_found"] == 2
    assert stored.actor == "t1-staff:township"
    # The same command again stores nothing.
    again = await inspect_c1(w, problems_found=2)
    assert again.duplicate
    assert again.event_ids == []
    assert await w.store.head_position() == 1


async def test_a_team_inspection_is_at_the_village_of_the_teams_latest_post() -> None:
    w = world(
        [
            row("c1", term_start=date(2024, 1, 1), ended_on=date(2024, 12, 31)),
            row("c2", term_start=date(2025, 1, 1), township="t1"),
        ]
    )
    accepted = await records.inspect_team(
        w.app,
        TOWNSHIP,
        "team-1",
        inspection_id="ti1",
        kind=InspectionKind.MONTHLY_REVIEW,
        held_on=date(2025, 5, 6),
    )
    assert accepted.stream_id == team_stream("team-1")
    [stored] = await w.stream(team_stream("team-1"))
    assert (stored.data["village_id"], stored.data["township"]) == ("v1", "t1")


async def test_an_evaluation_and_a_sanction_share_the_cadres_stream() -> None:
    w = world()
    await records.record_villager_evaluation(
        w.app,
        TOWNSHIP,
        "c1",
        evaluation_id="e1",
        period="2025-Q2",
        satisfaction=92.5,
        respondents=40,
    )
    accepted = await records.record_sanction(
        w.app,
        ADMIN,
        "c1",
        sanction_id="s1",
        kind="警告",
        decided_on=date(2025, 9, 1),
        authority="县纪委",
    )
    assert accepted.stream_version == 2
    assert await w.types(cadre_stream("c1")) == ["VillagerEvaluationRecorded", "SanctionRecorded"]
    record = await records.cadre_record(w.app, ADMIN, "c1")
    assert set(record.evaluations) == {"e1"}
    assert set(record.sanctions) == {"s1"}
    assert record.model_dump(mode="json")["sanctions"]["s1"]["decided_on"] == "2025-09-01"


async def test_a_term_is_capped_by_the_absences_of_the_year_it_ended_under_that_days_pack() -> None:
    ended = row("c1", ended_on=date(2025, 6, 30))
    w = world(
        [ended],
        packs=[REFERENCE, pack_for_county("county-2025-07", date(2025, 7, 1))],
        absences={("c1", 2025): 2, ("c1", 2026): 0},
    )
    accepted = await records.assess_term(w.app, ADMIN, "c1", "a-c1", AnnualGrade.EXCELLENT)
    [event] = accepted.events
    assert w.absences.asked == [("c1", 2025)]
    assert event["grade"] == "basically_competent"
    assert event["cap"]["unexcused_absences"] == 2
    assert event["term_end"] == "2025-06-30"
    # Its last day on post (30 June) is before the county's own pack took effect.
    assert event["policy_version"] == "reference-2021"


async def test_a_term_of_another_assignment_of_the_cadre_is_refused_as_not_replicated_yet() -> None:
    w = world()
    with pytest.raises(NoAssignment) as refused:
        await records.assess_term(w.app, ADMIN, "c1", "a-unknown", AnnualGrade.COMPETENT)
    assert refused.value.retryable
    assert "called 'a-unknown'" in refused.value.message
    assert await w.store.head_position() == 0


# --- quarters -------------------------------------------------------------------------------


async def test_a_quarter_is_assessed_in_its_posts_county_under_its_last_days_pack() -> None:
    packs = [REFERENCE, pack_for_county("county-2025-07", date(2025, 7, 1))]
    w = world(packs=packs)
    await assess(w, "c1", "2025-Q2", 95)
    await assess(w, "c1", "2025-Q3", 95)
    [q2] = await w.stream(quarter_stream(COUNTY, "2025-Q2"))
    [q3] = await w.stream(quarter_stream(COUNTY, "2025-Q3"))
    # Q2 ends on 30 June, before the county's pack; Q3 under it.
    assert (q2.data["policy_version"], q3.data["policy_version"]) == (
        "reference-2021",
        "county-2025-07",
    )
    assert q2.data["township"] == "t1"


async def test_an_average_opens_the_double_admonition_and_the_obligations_read_flags_it() -> None:
    w = world(today=date(2025, 7, 5))
    await assess(w, "c3", "2025-Q2", 65)
    assert await w.types(quarter_stream(COUNTY, "2025-Q2")) == [
        "QuarterlyAssessed",
        "AdmonitionTalksRequired",
    ]
    [open_one] = await quarters.open_obligations(w.app, TOWNSHIP, COUNTY, "2025-Q2")
    assert (open_one.obligation_id, open_one.due_on, open_one.overdue) == (
        "talks-c3-2025-Q2",
        date(2025, 8, 4),
        False,
    )
    late_app = replace(w.app, today=lambda: date(2025, 9, 1))
    [overdue] = await quarters.open_obligations(late_app, TOWNSHIP, COUNTY, "2025-Q2")
    assert overdue.overdue is True
    for by in TalkBy:
        done = await quarters.record_admonition_talk(
            w.app,
            TOWNSHIP,
            COUNTY,
            "2025-Q2",
            "talks-c3-2025-Q2",
            cadre_id="c3",
            by=by,
            held_on=date(2025, 7, 5),
        )
    assert done.event_types[-1] == "assessment.AdmonitionTalksCompleted"
    assert await quarters.open_obligations(w.app, TOWNSHIP, COUNTY, "2025-Q2") == []
    quarter = await quarters.quarter_record(w.app, TOWNSHIP, COUNTY, "2025-Q2")
    assert quarter.obligations["talks-c3-2025-Q2"].completed_on == date(2025, 7, 5)
    assert quarter.obligations["talks-c3-2025-Q2"].talks == {
        TalkBy.TOWNSHIP: date(2025, 7, 5),
        TalkBy.SENDING_UNIT: date(2025, 7, 5),
    }


async def test_the_lists_rank_every_assessment_of_the_quarter_even_one_appended_meanwhile() -> None:
    w = world()
    for cadre_id, score in zip(CADRES[:3], (95, 85, 50), strict=True):
        await assess(w, cadre_id, "2025-Q2", score)
    # Another writer assesses c4 just before the lists are appended: the append at the
    # version read fails and the lists are ranked again, with c4.
    w.store.intruders.append(
        (
            quarter_stream(COUNTY, "2025-Q2"),
            QuarterlyAssessed(
                cadre_id="c4",
                county=COUNTY,
                township="t1",
                quarter="2025-Q2",
                township_score=99,
                villager_score=99,
                county_panel_score=99,
                score=99,
                grade=QuarterlyGrade.GOOD,
                policy_version="reference-2021",
            ),
        )
    )
    appends = w.store.appends
    accepted = await quarters.publish_lists(w.app, ADMIN, COUNTY, "2025-Q2", list_id="l1")
    assert w.store.appends - appends == 2
    [published] = accepted.events
    assert [e["cadre_id"] for e in published["red"]][:2] == ["c4", "c1"]
    assert accepted.stream_version == 5  # the 3 assessments, c4's, the lists
    # The quarter is closed to new assessments by its own stream.
    with pytest.raises(ListsAlreadyPublished):
        await assess(w, "c5", "2025-Q2", 90)


async def test_a_second_assessment_of_the_quarter_is_refused() -> None:
    w = world()
    await assess(w, "c1", "2025-Q2", 95)
    with pytest.raises(AlreadyAssessed):
        await assess(w, "c1", "2025-Q2", 70)
    assert len(await w.stream(quarter_stream(COUNTY, "2025-Q2"))) == 1


# --- annual rounds --------------------------------------------------------------------------


async def test_a_proposal_is_capped_by_the_years_absences_from_the_replica_of_attendance() -> None:
    w = world(absences={("c1", 2025): 2})
    await annual.open_annual_round(w.app, ADMIN, COUNTY, 2025, round_id="r-2025")
    capped = await annual.propose_annual_grade(
        w.app, ADMIN, COUNTY, 2025, "c1", AnnualGrade.EXCELLENT
    )
    clean = await annual.propose_annual_grade(
        w.app, ADMIN, COUNTY, 2025, "c2", AnnualGrade.EXCELLENT
    )
    assert w.absences.asked == [("c1", 2025), ("c2", 2025)]
    assert capped.events[0]["round_id"] == "r-2025"  # the round of the stream
    assert (capped.events[0]["grade"], capped.events[0]["cap"]["best_allowed"]) == (
        "basically_competent",
        "basically_competent",
    )
    assert (clean.events[0]["grade"], clean.events[0]["cap"]) == ("excellent", None)


async def test_an_annual_round_is_decided_under_the_pack_in_force_on_the_years_last_day() -> None:
    # The county's pack (30% 优秀) takes effect on 31 December: the whole round is under it.
    packs = [
        REFERENCE,
        pack_for_county("county-2025-12", date(2025, 12, 31), excellent_share_cap=0.3),
    ]
    w = world([row(c, term_start=date(2024, 1, 1)) for c in CADRES[:4]], packs=packs)
    for year in (2024, 2025):
        await annual.open_annual_round(w.app, ADMIN, COUNTY, year, round_id=f"r-{year}")
        for cadre_id, grade in zip(
            CADRES[:4], [AnnualGrade.EXCELLENT, *[AnnualGrade.COMPETENT] * 3], strict=True
        ):
            await annual.propose_annual_grade(w.app, ADMIN, COUNTY, year, cadre_id, grade)
    # 4 cadres: the reference pack allows floor(20% x 4) = 0 优秀, the county's floor(1.2) = 1.
    with pytest.raises(ExcellentShareExceeded) as refused:
        await annual.finalise_annual_round(w.app, ADMIN, COUNTY, 2024)
    assert (refused.value.excellent, refused.value.cap) == (1, 0)
    final = await annual.finalise_annual_round(w.app, ADMIN, COUNTY, 2025)
    assert final.events[0]["policy_version"] == "county-2025-12"
    assert final.event_types.count("assessment.AnnualResultIssued") == 4
    stored = await w.stream(annual_stream(COUNTY, 2025))
    proposals = [e for e in stored if e.event_type == "assessment.AnnualGradeProposed"]
    assert [e.data["policy_version"] for e in proposals] == ["county-2025-12"] * 4
    view = await annual.annual_round(w.app, TOWNSHIP, COUNTY, 2025)
    assert view.finalisation is not None
    assert view.finalisation.excellent_cap == 1
    assert view.results["c1"].grade is AnnualGrade.EXCELLENT


async def test_a_proposal_appended_meanwhile_makes_the_finalisation_decide_again() -> None:
    w = world()
    await annual.open_annual_round(w.app, ADMIN, COUNTY, 2025, round_id="r-2025")
    for cadre_id in CADRES:
        await annual.propose_annual_grade(
            w.app, ADMIN, COUNTY, 2025, cadre_id, AnnualGrade.COMPETENT
        )
    await annual.propose_annual_grade(w.app, ADMIN, COUNTY, 2025, "c1", AnnualGrade.EXCELLENT)
    # Five cadres allow one 优秀; a second one lands between the read and the append.
    w.store.intruders.append(
        (
            annual_stream(COUNTY, 2025),
            AnnualGradeProposed(
                round_id="r-2025",
                county=COUNTY,
                year=2025,
                cadre_id="c2",
                proposed_grade=AnnualGrade.EXCELLENT,
                grade=AnnualGrade.EXCELLENT,
                policy_version="reference-2021",
            ),
        )
    )
    with pytest.raises(ExcellentShareExceeded) as refused:
        await annual.finalise_annual_round(w.app, ADMIN, COUNTY, 2025)
    assert (refused.value.excellent, refused.value.cadres_assessed) == (2, 5)
    assert (await annual.annual_round(w.app, ADMIN, COUNTY, 2025)).finalisation is None


async def test_a_year_no_pack_covers_is_refused_as_invalid() -> None:
    w = world()
    await annual.open_annual_round(w.app, ADMIN, COUNTY, 2020, round_id="r-2020")
    with pytest.raises(NoPolicyInForce) as refused:
        await annual.finalise_annual_round(w.app, ADMIN, COUNTY, 2020)
    problem = rule_problem(refused.value, service="assessment")
    assert problem.status == 422
    assert problem.type.endswith("/assessment/no-policy-in-force")
    assert problem.extensions["code"] == "no_policy_in_force"
    assert problem.extensions["retryable"] is False
    assert "2020-12-31" in refused.value.message


# --- what the replicas do not know yet; jurisdiction ----------------------------------------


@pytest.mark.parametrize(
    ("rows", "refusal", "code"),
    [
        ([], NoAssignment, "no_assignment"),
        ([row("c1", township=None)], VillageNotReplicated, "village_not_replicated"),
        ([row("c1", term_start=date(2026, 1, 1))], NoAssignment, "no_assignment"),
    ],
    ids=["no-assignment", "village-not-replicated", "assigned-after-the-day"],
)
async def test_what_the_replica_does_not_know_yet_is_refused_as_retryable(
    rows: list[AssignmentRow], refusal: type[AssessmentRuleViolation], code: str
) -> None:
    w = world(rows)
    with pytest.raises(refusal) as refused:
        await inspect_c1(w)
    problem = rule_problem(refused.value, service="assessment")
    assert (problem.status, problem.headers["Retry-After"]) == (409, "5")
    assert problem.type.endswith("/assessment/" + code.replace("_", "-"))
    assert (problem.extensions["code"], problem.extensions["retryable"]) == (code, True)
    assert await w.store.head_position() == 0


async def test_an_unknown_team_is_refused_as_retryable() -> None:
    w = world()
    with pytest.raises(UnknownTeam) as refused:
        await records.inspect_team(
            w.app,
            TOWNSHIP,
            "team-x",
            inspection_id="ti1",
            kind=InspectionKind.WEEKLY_INSPECTION,
            held_on=date(2025, 5, 6),
        )
    assert (refused.value.code, refused.value.retryable, refused.value.team_id) == (
        "unknown_team",
        True,
        "team-x",
    )


async def test_a_post_that_does_not_cover_the_period_is_the_deciders_refusal() -> None:
    # Known to the replica, but in another county than the round's.
    w = world([row("c1")])
    admin_of_both = Principal(subject="province", role=Role.ORG_ADMIN)
    await annual.open_annual_round(w.app, admin_of_both, "530103", 2025, round_id="r")
    with pytest.raises(NotOnPost):
        await annual.propose_annual_grade(
            w.app, admin_of_both, "530103", 2025, "c1", AnnualGrade.COMPETENT
        )


async def test_writers_act_only_on_posts_and_counties_within_their_jurisdiction() -> None:
    w = world()
    with pytest.raises(OutsideJurisdiction) as elsewhere:
        await quarters.assess_quarter(
            w.app,
            OTHER_TOWNSHIP,
            "c1",
            "2025-Q2",
            township_score=90,
            villager_score=90,
            county_panel_score=90,
        )
    assert rule_problem(elsewhere.value, service="assessment").status == 403
    with pytest.raises(OutsideJurisdiction) as other_county:
        await annual.open_annual_round(w.app, OTHER_COUNTY, COUNTY, 2025, round_id="x")
    assert rule_problem(other_county.value, service="assessment").status == 403
    assert await w.store.head_position() == 0


async def test_readers_of_the_county_see_its_quarters_and_rounds_and_their_cadres() -> None:
    w = world(absences={("c1", 2025): 1})
    await assess(w, "c1", "2025-Q2", 95)
    quarter = await quarters.quarter_record(w.app, TOWNSHIP, COUNTY, "2025-Q2")
    assert quarter.assessments["c1"].score == 95
    facts = await records.attendance_facts(w.app, TOWNSHIP, "c1", 2025)
    assert (facts.cadre_id, facts.year, facts.unexcused_absences) == ("c1", 2025, 1)
    with pytest.raises(OutsideJurisdiction):
        await quarters.quarter_record(w.app, OTHER_COUNTY, COUNTY, "2025-Q2")
    with pytest.raises(OutsideJurisdiction):
        await records.cadre_record(w.app, OTHER_TOWNSHIP, "c1")


# --- the HTTP edge passes its bodies on as they are -----------------------------------------


@pytest.mark.parametrize(
    ("body", "handler"),
    [
        (http.InspectionBody, records.inspect_cadre),
        (http.InspectionBody, records.inspect_team),
        (http.EvaluationBody, records.record_villager_evaluation),
        (http.SanctionBody, records.record_sanction),
        (http.QuarterlyBody, quarters.assess_quarter),
        (http.TalkBody, quarters.record_admonition_talk),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_each_body_carries_exactly_the_keyword_inputs_of_its_use_case(
    body: type[BaseModel], handler: Callable[..., object]
) -> None:
    # The edge calls ``handler(..., **body.model_dump())``, which no type checker verifies.
    inputs = {
        name
        for name, parameter in inspect.signature(handler).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert set(body.model_fields) == inputs
