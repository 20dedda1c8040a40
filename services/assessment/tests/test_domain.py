"""The assessment decider: given(events) / when(command) / then(events or a typed refusal)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from zhucun.assessment.domain import (
    ANNUAL_ORDER,
    AlreadyAssessed,
    AnnualState,
    AssessmentRuleViolation,
    AssessQuarter,
    AssessTerm,
    AttendanceFacts,
    CadreState,
    DuplicateId,
    DuplicateTalk,
    ExcellentShareExceeded,
    FinaliseAnnualRound,
    FutureDate,
    InspectCadre,
    InspectTeam,
    ListsAlreadyPublished,
    NothingToFinalise,
    NothingToRank,
    NotOnPost,
    OpenAnnualRound,
    Post,
    ProposeAnnualGrade,
    PublishLists,
    QuarterNotOver,
    QuarterState,
    RecordAdmonitionTalk,
    RecordSanction,
    RecordVillagerEvaluation,
    RoundAlreadyFinalised,
    RoundAlreadyOpen,
    RoundNotOpen,
    TeamState,
    TermNotOver,
    UnknownObligation,
    WrongRound,
    YearNotOver,
    annual_stream,
    apply_cap,
    assess_quarter,
    assess_term,
    cadre_stream,
    capped_grade,
    evolve_annual,
    evolve_cadre,
    evolve_quarter,
    evolve_team,
    excellent_cap,
    finalise_annual_round,
    fold_annual,
    fold_cadre,
    fold_quarter,
    fold_team,
    grade_cap,
    inspect_cadre,
    inspect_team,
    open_annual_round,
    open_obligations,
    overdue_obligations,
    period_bounds,
    propose_annual_grade,
    publish_lists,
    quarter_bounds,
    quarter_of,
    quarter_stream,
    quarterly_grade,
    quarterly_score,
    rank_lists,
    record_admonition_talk,
    record_sanction,
    record_villager_evaluation,
    team_stream,
)
from zhucun.assessment.domain import errors as error_module
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.contracts.assessment.events import (
    AdmonitionTalkHeld,
    AdmonitionTalksCompleted,
    AdmonitionTalksRequired,
    AnnualGrade,
    AnnualGradeProposed,
    AnnualResultIssued,
    AnnualRoundFinalised,
    AnnualRoundOpened,
    CadreInspected,
    GradeCap,
    InspectionKind,
    ListEntry,
    QuarterlyAssessed,
    QuarterlyGrade,
    RedBlueListsPublished,
    SanctionRecorded,
    TalkBy,
    TeamInspected,
    TermAssessed,
    VillagerEvaluationRecorded,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack, load_pack

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
PACK = load_pack(ROOT / "policies" / "reference-2021.toml")
RULES = PACK.rules(AssessmentPolicy)
COUNTY = "530102"
QUARTER = "2025-Q2"
AFTER_Q2 = date(2025, 7, 5)
YEAR = 2025
ROUND = "r-2025"
CADRE = "c1"

E = AnnualGrade.EXCELLENT
C = AnnualGrade.COMPETENT
B = AnnualGrade.BASICALLY_COMPETENT
INC = AnnualGrade.INCOMPETENT


def pack_with(**assessment: object) -> PolicyPack:
    """The reference pack with other assessment rules."""
    rules = RULES.model_dump() | assessment
    version = "test-" + "-".join(f"{k}={v}" for k, v in assessment.items())
    return PACK.model_copy(update={"assessment": rules, "version": version})


def post_of(
    cadre_id: str = CADRE,
    *,
    start: date = date(2024, 3, 1),
    end: date = date(2026, 2, 28),
    ended_on: date | None = None,
    county: str = COUNTY,
    assignment_id: str | None = None,
) -> Post:
    return Post(
        assignment_id=assignment_id or f"a-{cadre_id}",
        cadre_id=cadre_id,
        team_id="team-1",
        village_id="v1",
        township="t1",
        county=county,
        term_start=start,
        term_end=end,
        ended_on=ended_on,
    )


POST = post_of()


# --- given: states --------------------------------------------------------------------------


def given_cadre(*events: DomainEvent) -> CadreState:
    return fold_cadre(CadreState.empty(CADRE), events)


def given_quarter(*events: DomainEvent, quarter: str = QUARTER) -> QuarterState:
    return fold_quarter(QuarterState.empty(COUNTY, quarter), events)


def given_annual(*events: DomainEvent) -> AnnualState:
    return fold_annual(AnnualState.empty(COUNTY, YEAR), events)


def opened() -> AnnualRoundOpened:
    return AnnualRoundOpened(round_id=ROUND, county=COUNTY, year=YEAR, opened_on=date(2025, 12, 1))


# --- when: command factories ----------------------------------------------------------------


def assess_cmd(
    cadre_id: str = CADRE,
    township: float = 95,
    villager: float = 95,
    panel: float = 95,
    *,
    post: Post | None = None,
    quarter: str = QUARTER,
    today: date = AFTER_Q2,
    obligation_id: str | None = None,
) -> AssessQuarter:
    return AssessQuarter(
        post=post or post_of(cadre_id),
        quarter=quarter,
        township_score=township,
        villager_score=villager,
        county_panel_score=panel,
        obligation_id=obligation_id or f"ob-{cadre_id}",
        today=today,
    )


def assessed(state: QuarterState, command: AssessQuarter) -> QuarterState:
    return fold_quarter(state, assess_quarter(command, state, PACK))


def quarter_with_scores(scores: dict[str, float]) -> QuarterState:
    state = given_quarter()
    for cadre_id, score in scores.items():
        state = assessed(state, assess_cmd(cadre_id, score, score, score))
    return state


def talk_cmd(
    by: TalkBy,
    held_on: date,
    *,
    obligation_id: str = f"ob-{CADRE}",
    cadre_id: str = CADRE,
    today: date | None = None,
) -> RecordAdmonitionTalk:
    return RecordAdmonitionTalk(
        obligation_id=obligation_id,
        cadre_id=cadre_id,
        by=by,
        held_on=held_on,
        today=today or held_on,
    )


def propose_cmd(
    cadre_id: str,
    grade: AnnualGrade,
    absences: int = 0,
    *,
    post: Post | None = None,
    round_id: str | None = ROUND,
    facts_year: int = YEAR,
    today: date = date(2026, 1, 5),
) -> ProposeAnnualGrade:
    return ProposeAnnualGrade(
        round_id=round_id,
        county=COUNTY,
        year=YEAR,
        post=post or post_of(cadre_id),
        grade=grade,
        attendance=AttendanceFacts(cadre_id=cadre_id, year=facts_year, unexcused_absences=absences),
        today=today,
    )


def round_with(grades: list[AnnualGrade], absences: int = 0) -> AnnualState:
    state = given_annual(opened())
    for n, grade in enumerate(grades):
        state = fold_annual(
            state, propose_annual_grade(propose_cmd(f"c{n:03d}", grade, absences), state, PACK)
        )
    return state


def finalise_cmd(today: date = date(2026, 1, 10)) -> FinaliseAnnualRound:
    return FinaliseAnnualRound(round_id=ROUND, county=COUNTY, year=YEAR, today=today)


def term_cmd(
    post: Post,
    grade: AnnualGrade = C,
    absences: int = 0,
    *,
    today: date,
    facts_year: int | None = None,
) -> AssessTerm:
    last_day = post.ended_on or post.term_end
    return AssessTerm(
        post=post,
        grade=grade,
        attendance=AttendanceFacts(
            cadre_id=post.cadre_id,
            year=facts_year or last_day.year,
            unexcused_absences=absences,
        ),
        today=today,
    )


# --- periods and streams --------------------------------------------------------------------


def test_stream_names() -> None:
    assert cadre_stream("c1") == "assessment-cadre-c1"
    assert team_stream("t9") == "assessment-team-t9"
    assert quarter_stream(COUNTY, "2025-Q2") == "assessment-quarter-530102-2025-Q2"
    assert annual_stream(COUNTY, 2025) == "assessment-annual-530102-2025"
    with pytest.raises(ValueError, match="quarter"):
        quarter_stream(COUNTY, "2025-Q5")


@pytest.mark.parametrize(
    ("quarter", "first", "last"),
    [
        ("2025-Q1", date(2025, 1, 1), date(2025, 3, 31)),
        ("2025-Q2", date(2025, 4, 1), date(2025, 6, 30)),
        ("2025-Q3", date(2025, 7, 1), date(2025, 9, 30)),
        ("2024-Q4", date(2024, 10, 1), date(2024, 12, 31)),
    ],
)
def test_quarter_bounds_and_the_quarter_of_a_day(quarter: str, first: date, last: date) -> None:
    assert quarter_bounds(quarter) == (first, last)
    assert quarter_of(first) == quarter_of(last) == quarter
    assert quarter_of(first - timedelta(days=1)) != quarter


def test_periods_of_villager_evaluations_and_malformed_quarters() -> None:
    assert period_bounds("2025") == (date(2025, 1, 1), date(2025, 12, 31))
    assert period_bounds("2024-Q1") == (date(2024, 1, 1), date(2024, 3, 31))
    for malformed in ("2025-Q0", "2025Q1", "25-Q1", "2025-03"):
        with pytest.raises(ValueError, match="quarter"):
            quarter_bounds(malformed)


# --- the quarterly score and grade ----------------------------------------------------------


@pytest.mark.parametrize(
    ("township", "villager", "panel", "score"),
    [
        (100, 100, 100, 100.0),
        (0, 0, 0, 0.0),
        (90, 80, 70, 86.0),  # 63 + 16 + 7
        (100, 0, 0, 70.0),
        (0, 100, 0, 20.0),
        (0, 0, 100, 10.0),
        (85.5, 92.25, 77.7, 86.07),  # 59.85 + 18.45 + 7.77
        (0, 0, 0.05, 0.01),  # 0.005 rounds half up
        (60, 60, 60.05, 60.01),  # 60.005 rounds half up
        (33.33, 33.33, 33.33, 33.33),
    ],
)
def test_the_quarterly_score_is_the_weighted_sum_rounded_to_cents(
    township: float, villager: float, panel: float, score: float
) -> None:
    assert quarterly_score(township, villager, panel, RULES) == score


def test_a_score_that_prints_as_59_995_rounds_up_to_the_average_band() -> None:
    # In binary floating point the weighted sum is 59.99499999..., which would round to 59.99.
    score = quarterly_score(59.995, 59.995, 59.995, RULES)
    assert score == 60.0
    assert quarterly_grade(score, RULES) is QuarterlyGrade.AVERAGE


def test_the_weights_come_from_the_pack() -> None:
    rules = pack_with(township_weight=50, villager_weight=30, county_panel_weight=20).rules(
        AssessmentPolicy
    )
    assert quarterly_score(90, 80, 70, rules) == 83.0  # 45 + 24 + 14
    with pytest.raises(ValueError, match="0-100"):
        quarterly_score(101, 0, 0, RULES)


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        (100, QuarterlyGrade.GOOD),
        (90, QuarterlyGrade.GOOD),
        (89.99, QuarterlyGrade.FAIRLY_GOOD),
        (80, QuarterlyGrade.FAIRLY_GOOD),
        (79.99, QuarterlyGrade.AVERAGE),
        (60, QuarterlyGrade.AVERAGE),
        (59.99, QuarterlyGrade.POOR),
        (0, QuarterlyGrade.POOR),
    ],
)
def test_grade_bands_include_their_minimum(score: float, grade: QuarterlyGrade) -> None:
    assert quarterly_grade(score, RULES) is grade


# --- caps from attendance -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("absences", "best"),
    [(0, None), (1, C), (2, B), (3, INC), (5, INC)],
)
def test_each_absence_count_caps_the_grade(absences: int, best: AnnualGrade | None) -> None:
    cap = grade_cap(absences, RULES)
    if best is None:
        assert cap is None
        return
    assert cap is not None
    assert cap.best_allowed is best
    assert cap.unexcused_absences == absences
    assert cap.reason.startswith(f"{absences} unexcused spot-check absence")


#: (absences, proposed) -> grade given.
CAPPED = {
    0: {E: E, C: C, B: B, INC: INC},
    1: {E: C, C: C, B: B, INC: INC},
    2: {E: B, C: B, B: B, INC: INC},
    3: {E: INC, C: INC, B: INC, INC: INC},
    5: {E: INC, C: INC, B: INC, INC: INC},
}


@pytest.mark.parametrize(
    ("absences", "proposed", "given"),
    [(n, proposed, given) for n, row in CAPPED.items() for proposed, given in row.items()],
)
def test_the_grade_given_is_the_worse_of_the_proposal_and_the_cap(
    absences: int, proposed: AnnualGrade, given: AnnualGrade
) -> None:
    assert apply_cap(proposed, grade_cap(absences, RULES)) is given
    grade, cap = capped_grade(proposed, absences, RULES)
    assert grade is given
    # The cap is recorded only when it lowered the grade.
    assert (cap is not None) == (given != proposed)


def test_caps_follow_the_pack_thresholds() -> None:
    rules = pack_with(absences_bar_excellent=2, absences_cap_basic=4, absences_incompetent=6).rules(
        AssessmentPolicy
    )
    caps = [grade_cap(n, rules) for n in (1, 2, 3, 4, 5, 6)]
    assert [cap.best_allowed if cap else None for cap in caps] == [None, C, C, B, B, INC]
    assert apply_cap(E, None) is E
    assert ANNUAL_ORDER == (E, C, B, INC)


# --- the share of 优秀 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cadres", "cap"),
    [(0, 0), (1, 0), (4, 0), (5, 1), (9, 1), (10, 2), (11, 2), (14, 2), (15, 3), (100, 20)],
)
def test_the_excellent_cap_is_the_floor_of_a_fifth(cadres: int, cap: int) -> None:
    assert excellent_cap(cadres, RULES) == cap


@pytest.mark.parametrize(
    ("share", "cadres", "cap"),
    [(0.29, 100, 29), (0.57, 100, 57), (0.3, 10, 3), (0.7, 10, 7), (0.15, 7, 1), (1.0, 3, 3)],
)
def test_the_excellent_cap_has_no_float_error(share: float, cadres: int, cap: int) -> None:
    # 0.29 x 100 is 28.999999999999996 in binary floating point.
    rules = pack_with(excellent_share_cap=share).rules(AssessmentPolicy)
    assert excellent_cap(cadres, rules) == cap


# --- red and blue lists ---------------------------------------------------------------------


def entries(*items: tuple[int, str, float]) -> tuple[ListEntry, ...]:
    return tuple(ListEntry(rank=r, cadre_id=c, score=s) for r, c, s in items)


def small_lists(**sizes: int) -> PolicyPack:
    return pack_with(**{"red_list_size": 2, "blue_list_size": 2, **sizes})


def test_lists_take_the_best_and_the_worst() -> None:
    scores = {"a": 90.0, "b": 80.0, "c": 70.0, "d": 60.0, "e": 50.0, "f": 40.0}
    red, blue = rank_lists(scores, small_lists().rules(AssessmentPolicy))
    assert red == entries((1, "a", 90.0), (2, "b", 80.0))
    assert blue == entries((1, "f", 40.0), (2, "e", 50.0))


def test_everyone_tied_at_the_red_edge_is_on_the_red_list_with_competition_ranks() -> None:
    scores = {"a": 95.0, "b": 90.0, "c": 90.0, "d": 90.0, "e": 70.0, "f": 60.0, "g": 50.0}
    red, blue = rank_lists(scores, small_lists().rules(AssessmentPolicy))
    assert red == entries((1, "a", 95.0), (2, "b", 90.0), (2, "c", 90.0), (2, "d", 90.0))
    assert blue == entries((1, "g", 50.0), (2, "f", 60.0))


def test_everyone_tied_at_the_blue_edge_is_on_the_blue_list() -> None:
    scores = {"a": 95.0, "b": 90.0, "c": 80.0, "d": 60.0, "e": 60.0, "f": 60.0, "g": 50.0}
    red, blue = rank_lists(scores, small_lists().rules(AssessmentPolicy))
    assert [e.cadre_id for e in red] == ["a", "b"]
    assert blue == entries((1, "g", 50.0), (2, "d", 60.0), (2, "e", 60.0), (2, "f", 60.0))


def test_ranks_skip_after_ties_1224() -> None:
    scores = {"a": 90.0, "b": 85.0, "c": 85.0, "d": 80.0, "e": 10.0}
    red, _ = rank_lists(
        scores, small_lists(red_list_size=4, blue_list_size=0).rules(AssessmentPolicy)
    )
    assert [(e.rank, e.cadre_id) for e in red] == [(1, "a"), (2, "b"), (2, "c"), (4, "d")]


def test_with_fewer_cadres_than_both_lists_each_takes_at_most_half() -> None:
    scores = {"a": 90.0, "b": 80.0, "c": 70.0, "d": 60.0, "e": 50.0}
    red, blue = rank_lists(scores, RULES)  # 10 red, 5 blue, but only 5 cadres
    assert [e.cadre_id for e in red] == ["a", "b"]
    assert blue == entries((1, "e", 50.0), (2, "d", 60.0))
    red, blue = rank_lists({"a": 90.0, "b": 80.0, "c": 70.0}, RULES)
    assert [e.cadre_id for e in red] == ["a"]
    assert blue == entries((1, "c", 70.0))


def test_when_all_scores_are_equal_everyone_is_on_the_red_list() -> None:
    scores = {f"c{n}": 75.0 for n in range(6)}
    red, blue = rank_lists(scores, small_lists().rules(AssessmentPolicy))
    assert [e.cadre_id for e in red] == [f"c{n}" for n in range(6)]
    assert {e.rank for e in red} == {1}
    assert blue == ()


def test_empty_lists_and_list_size_zero() -> None:
    assert rank_lists({}, RULES) == ((), ())
    red, blue = rank_lists(
        {"a": 1.0, "b": 2.0}, small_lists(red_list_size=0).rules(AssessmentPolicy)
    )
    assert red == ()
    assert blue == entries((1, "a", 1.0), (2, "b", 2.0))


# --- quarterly assessment -------------------------------------------------------------------


def test_a_good_quarter_is_assessed_without_obligation() -> None:
    [event] = assess_quarter(assess_cmd(township=90, villager=95, panel=100), given_quarter(), PACK)
    assert event == QuarterlyAssessed(
        cadre_id=CADRE,
        county=COUNTY,
        township="t1",
        quarter=QUARTER,
        township_score=90,
        villager_score=95,
        county_panel_score=100,
        score=92.0,
        grade=QuarterlyGrade.GOOD,
        policy_version=PACK.version,
    )


def test_an_average_quarter_opens_the_admonition_obligation() -> None:
    events = assess_quarter(assess_cmd(township=70, villager=70, panel=70), given_quarter(), PACK)
    assert [type(e) for e in events] == [QuarterlyAssessed, AdmonitionTalksRequired]
    required = events[1]
    assert isinstance(required, AdmonitionTalksRequired)
    assert required.obligation_id == f"ob-{CADRE}"
    assert required.due_on == AFTER_Q2 + timedelta(days=30)
    state = fold_quarter(given_quarter(), events)
    assert [o.obligation_id for o in open_obligations(state)] == [f"ob-{CADRE}"]
    assert state.obligations[f"ob-{CADRE}"].missing == (TalkBy.TOWNSHIP, TalkBy.SENDING_UNIT)


@pytest.mark.parametrize("score", [95, 85, 50])
def test_other_grades_open_no_obligation(score: float) -> None:
    events = assess_quarter(
        assess_cmd(township=score, villager=score, panel=score), given_quarter(), PACK
    )
    assert len(events) == 1


@pytest.mark.parametrize(
    ("today", "accepted"),
    [(date(2025, 6, 29), False), (date(2025, 6, 30), True), (date(2025, 7, 1), True)],
)
def test_a_quarter_is_assessed_from_its_last_day(today: date, accepted: bool) -> None:
    command = assess_cmd(today=today)
    if accepted:
        assert assess_quarter(command, given_quarter(), PACK)
    else:
        with pytest.raises(QuarterNotOver) as refused:
            assess_quarter(command, given_quarter(), PACK)
        assert refused.value.last_day == date(2025, 6, 30)


@pytest.mark.parametrize(
    "post",
    [
        post_of(start=date(2025, 7, 1)),
        post_of(start=date(2024, 1, 1), ended_on=date(2025, 3, 31)),
        post_of(county="530103"),
    ],
    ids=["starts-after", "ended-before", "other-county"],
)
def test_a_cadre_off_post_during_the_quarter_is_refused_as_retryable(post: Post) -> None:
    with pytest.raises(NotOnPost) as refused:
        assess_quarter(assess_cmd(post=post), given_quarter(), PACK)
    assert refused.value.kind == "retryable"
    assert refused.value.assignment_id == post.assignment_id


def test_a_post_overlapping_one_day_of_the_quarter_is_enough() -> None:
    for post in (post_of(start=date(2025, 6, 30)), post_of(ended_on=date(2025, 4, 1))):
        assert assess_quarter(assess_cmd(post=post), given_quarter(), PACK)


def test_a_repeated_assessment_is_a_no_op_and_another_is_refused() -> None:
    command = assess_cmd(township=70, villager=70, panel=70)
    state = assessed(given_quarter(), command)
    assert assess_quarter(command, state, PACK) == []
    assert assess_quarter(command.model_copy(update={"today": date(2025, 8, 1)}), state, PACK) == []
    with pytest.raises(AlreadyAssessed):
        assess_quarter(assess_cmd(township=71, villager=70, panel=70), state, PACK)
    with pytest.raises(AlreadyAssessed):
        assess_quarter(command.model_copy(update={"obligation_id": "ob-other"}), state, PACK)


def test_an_obligation_id_taken_by_another_cadre_is_refused() -> None:
    state = assessed(given_quarter(), assess_cmd("c1", 70, 70, 70, obligation_id="ob"))
    with pytest.raises(DuplicateId):
        assess_quarter(assess_cmd("c2", 70, 70, 70, obligation_id="ob"), state, PACK)
    # The id is unused when the grade opens no obligation.
    assert assess_quarter(assess_cmd("c2", 95, 95, 95, obligation_id="ob"), state, PACK)


def test_a_quarter_with_published_lists_takes_no_new_assessment() -> None:
    state = quarter_with_scores({"c1": 90.0})
    state = fold_quarter(
        state,
        publish_lists(
            PublishLists(list_id="L", county=COUNTY, quarter=QUARTER, today=AFTER_Q2), state, PACK
        ),
    )
    with pytest.raises(ListsAlreadyPublished):
        assess_quarter(assess_cmd("c2"), state, PACK)
    # The repeat of an assessment made before the lists is still a no-op.
    assert assess_quarter(assess_cmd("c1", 90, 90, 90), state, PACK) == []


def test_an_assessment_on_another_quarters_stream_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="2025-Q1"):
        assess_quarter(assess_cmd(quarter="2025-Q1"), given_quarter(), PACK)


# --- 双约谈 -----------------------------------------------------------------------------------


def average_quarter() -> QuarterState:
    return assessed(given_quarter(), assess_cmd(township=65, villager=65, panel=65))


DUE = AFTER_Q2 + timedelta(days=30)


def test_both_talks_on_time_complete_the_obligation() -> None:
    state = average_quarter()
    first = record_admonition_talk(talk_cmd(TalkBy.TOWNSHIP, date(2025, 7, 10)), state)
    assert [type(e) for e in first] == [AdmonitionTalkHeld]
    state = fold_quarter(state, first)
    second = record_admonition_talk(talk_cmd(TalkBy.SENDING_UNIT, DUE), state)
    assert second[1] == AdmonitionTalksCompleted(
        obligation_id=f"ob-{CADRE}", cadre_id=CADRE, completed_on=DUE, overdue=False
    )
    state = fold_quarter(state, second)
    obligation = state.obligations[f"ob-{CADRE}"]
    assert obligation.completed
    assert obligation.overdue is False
    assert open_obligations(state) == []


def test_a_talk_after_the_due_date_completes_it_overdue() -> None:
    state = average_quarter()
    state = fold_quarter(
        state, record_admonition_talk(talk_cmd(TalkBy.SENDING_UNIT, date(2025, 7, 8)), state)
    )
    late = DUE + timedelta(days=1)
    events = record_admonition_talk(talk_cmd(TalkBy.TOWNSHIP, late), state)
    assert isinstance(events[1], AdmonitionTalksCompleted)
    assert events[1].overdue is True
    assert events[1].completed_on == late


def test_completion_is_the_later_talk_whatever_the_order_they_are_recorded_in() -> None:
    state = average_quarter()
    late = DUE + timedelta(days=3)
    state = fold_quarter(state, record_admonition_talk(talk_cmd(TalkBy.TOWNSHIP, late), state))
    events = record_admonition_talk(
        talk_cmd(TalkBy.SENDING_UNIT, date(2025, 7, 9), today=late), state
    )
    completed = events[-1]
    assert isinstance(completed, AdmonitionTalksCompleted)
    assert (completed.completed_on, completed.overdue) == (late, True)


def test_a_repeated_talk_is_a_no_op_and_one_on_another_day_is_refused() -> None:
    state = average_quarter()
    command = talk_cmd(TalkBy.TOWNSHIP, date(2025, 7, 10))
    state = fold_quarter(state, record_admonition_talk(command, state))
    assert record_admonition_talk(command, state) == []
    with pytest.raises(DuplicateTalk) as refused:
        record_admonition_talk(talk_cmd(TalkBy.TOWNSHIP, date(2025, 7, 11)), state)
    assert refused.value.held_on == date(2025, 7, 10)


def test_talks_of_unknown_obligations_or_in_the_future_are_refused() -> None:
    state = average_quarter()
    with pytest.raises(UnknownObligation):
        record_admonition_talk(talk_cmd(TalkBy.TOWNSHIP, AFTER_Q2, obligation_id="nope"), state)
    with pytest.raises(UnknownObligation):
        record_admonition_talk(talk_cmd(TalkBy.TOWNSHIP, AFTER_Q2, cadre_id="c2"), state)
    with pytest.raises(FutureDate):
        record_admonition_talk(
            talk_cmd(TalkBy.TOWNSHIP, date(2025, 7, 20), today=date(2025, 7, 19)), state
        )


def test_overdue_obligations_are_the_open_ones_past_their_due_date() -> None:
    state = given_quarter()
    for cadre_id in ("c1", "c2", "c3"):
        state = assessed(state, assess_cmd(cadre_id, 65, 65, 65))
    for by in TalkBy:  # c2 fulfilled
        state = fold_quarter(
            state,
            record_admonition_talk(
                talk_cmd(by, date(2025, 7, 10), obligation_id="ob-c2", cadre_id="c2"), state
            ),
        )
    state = fold_quarter(  # c3 half done
        state,
        record_admonition_talk(
            talk_cmd(TalkBy.TOWNSHIP, date(2025, 7, 10), obligation_id="ob-c3", cadre_id="c3"),
            state,
        ),
    )
    assert [o.obligation_id for o in open_obligations(state)] == ["ob-c1", "ob-c3"]
    assert overdue_obligations(state, DUE) == []
    assert [o.obligation_id for o in overdue_obligations(state, DUE + timedelta(days=1))] == [
        "ob-c1",
        "ob-c3",
    ]
    assert state.obligations["ob-c3"].missing == (TalkBy.SENDING_UNIT,)


# --- publishing the lists -------------------------------------------------------------------


def publish_cmd(list_id: str = "L1") -> PublishLists:
    return PublishLists(list_id=list_id, county=COUNTY, quarter=QUARTER, today=date(2025, 7, 20))


def test_lists_are_published_from_the_quarters_scores() -> None:
    state = quarter_with_scores({f"c{n:02d}": 50.0 + n for n in range(20)})
    [event] = publish_lists(publish_cmd(), state, PACK)
    assert isinstance(event, RedBlueListsPublished)
    assert event.cadres_ranked == 20
    assert [e.cadre_id for e in event.red] == [f"c{n:02d}" for n in range(19, 9, -1)]
    assert [e.cadre_id for e in event.blue] == [f"c{n:02d}" for n in range(5)]
    assert (event.published_on, event.policy_version) == (date(2025, 7, 20), PACK.version)
    state = fold_quarter(state, [event])
    assert state.published == event
    assert publish_lists(publish_cmd(), state, PACK) == []
    with pytest.raises(ListsAlreadyPublished):
        publish_lists(publish_cmd("L2"), state, PACK)


def test_a_quarter_without_assessments_has_nothing_to_rank() -> None:
    with pytest.raises(NothingToRank):
        publish_lists(publish_cmd(), given_quarter(), PACK)


# --- the annual round -----------------------------------------------------------------------


def test_a_round_is_opened_once() -> None:
    command = OpenAnnualRound(round_id=ROUND, county=COUNTY, year=YEAR, today=date(2025, 12, 1))
    [event] = open_annual_round(command, given_annual())
    assert event == opened()
    state = given_annual(event)
    assert state.opened
    assert not state.finalised
    assert open_annual_round(command, state) == []
    with pytest.raises(RoundAlreadyOpen) as refused:
        open_annual_round(command.model_copy(update={"round_id": "other"}), state)
    assert refused.value.round_id == ROUND


@pytest.mark.parametrize(
    ("year", "today", "from_day"),
    [
        (2027, date(2026, 12, 3), "2027-12-01"),  # issue 15: a year not begun
        (2025, date(2025, 11, 30), "2025-12-01"),  # the year's last month not come
    ],
)
def test_a_round_opens_from_its_years_last_month(year: int, today: date, from_day: str) -> None:
    command = OpenAnnualRound(round_id="r", county=COUNTY, year=year, today=today)
    with pytest.raises(YearNotOver) as refused:
        open_annual_round(command, fold_annual(AnnualState.empty(COUNTY, year), []))
    assert (refused.value.code, refused.value.kind) == ("year_not_over", "conflict")
    assert (refused.value.year, refused.value.action, refused.value.from_day) == (
        year,
        "open",
        from_day,
    )
    assert open_annual_round(
        command.model_copy(update={"today": date(year, 12, 1)}),
        fold_annual(AnnualState.empty(COUNTY, year), []),
    )


def test_grades_are_proposed_and_finalised_from_the_years_last_day() -> None:
    state = given_annual(opened())
    with pytest.raises(YearNotOver) as early:
        propose_annual_grade(propose_cmd(CADRE, C, today=date(2025, 12, 30)), state, PACK)
    assert (early.value.action, early.value.from_day, early.value.today) == (
        "propose",
        "2025-12-31",
        "2025-12-30",
    )
    assert "from the year's last day (2025-12-31)" in early.value.message
    state = fold_annual(
        state, propose_annual_grade(propose_cmd(CADRE, C, today=date(2025, 12, 31)), state, PACK)
    )
    with pytest.raises(YearNotOver) as not_final:
        finalise_annual_round(finalise_cmd(date(2025, 12, 30)), state, PACK)
    assert not_final.value.action == "finalise"
    # A repeat of what is recorded stays a no-op, whatever the day.
    assert propose_annual_grade(propose_cmd(CADRE, C, today=date(2025, 12, 30)), state, PACK) == []
    [final, _] = finalise_annual_round(finalise_cmd(date(2025, 12, 31)), state, PACK)
    assert isinstance(final, AnnualRoundFinalised)


def test_proposals_need_the_open_round_they_name() -> None:
    with pytest.raises(RoundNotOpen):
        propose_annual_grade(propose_cmd(CADRE, C), given_annual(), PACK)
    with pytest.raises(WrongRound) as refused:
        propose_annual_grade(
            propose_cmd(CADRE, C, round_id="r-other"), given_annual(opened()), PACK
        )
    assert refused.value.actual == ROUND
    with pytest.raises(WrongRound):
        propose_annual_grade(
            propose_cmd(CADRE, C), fold_annual(AnnualState.empty(COUNTY, 2024), []), PACK
        )
    with pytest.raises(RoundNotOpen):
        finalise_annual_round(finalise_cmd(), given_annual(), PACK)
    # The use cases pass the stream's round id: none while no round is open.
    with pytest.raises(RoundNotOpen):
        propose_annual_grade(propose_cmd(CADRE, C, round_id=None), given_annual(), PACK)


def test_a_proposal_is_capped_by_the_years_absences() -> None:
    [event] = propose_annual_grade(propose_cmd(CADRE, E, absences=1), given_annual(opened()), PACK)
    assert isinstance(event, AnnualGradeProposed)
    assert (event.proposed_grade, event.grade) == (E, C)
    assert event.cap is not None
    assert event.cap.best_allowed is C
    [event] = propose_annual_grade(propose_cmd(CADRE, E, absences=3), given_annual(opened()), PACK)
    assert isinstance(event, AnnualGradeProposed)
    assert event.grade is INC
    [event] = propose_annual_grade(propose_cmd(CADRE, B, absences=1), given_annual(opened()), PACK)
    assert isinstance(event, AnnualGradeProposed)
    assert (event.grade, event.cap) == (B, None)


def test_a_later_proposal_replaces_the_earlier_and_a_repeat_is_a_no_op() -> None:
    state = given_annual(opened())
    state = fold_annual(state, propose_annual_grade(propose_cmd(CADRE, E), state, PACK))
    assert propose_annual_grade(propose_cmd(CADRE, E), state, PACK) == []
    events = propose_annual_grade(propose_cmd(CADRE, C), state, PACK)
    state = fold_annual(state, events)
    assert state.proposals[CADRE].grade is C
    # New attendance facts change the capped grade: a new proposal, not a no-op.
    assert propose_annual_grade(propose_cmd(CADRE, C, absences=2), state, PACK)


def test_a_proposal_is_refused_off_post_or_with_facts_of_another_year() -> None:
    state = given_annual(opened())
    with pytest.raises(NotOnPost):
        propose_annual_grade(
            propose_cmd(CADRE, C, post=post_of(start=date(2026, 1, 1))), state, PACK
        )
    with pytest.raises(NotOnPost):
        propose_annual_grade(
            propose_cmd(
                CADRE, C, post=post_of(start=date(2023, 1, 1), ended_on=date(2024, 12, 31))
            ),
            state,
            PACK,
        )
    with pytest.raises(ValueError, match="2024"):
        propose_annual_grade(propose_cmd(CADRE, C, facts_year=2024), state, PACK)


def test_finalising_over_the_share_cap_is_refused_with_the_counts() -> None:
    state = round_with([E, E, E] + [C] * 7)  # 3 of 10, cap 2
    with pytest.raises(ExcellentShareExceeded) as refused:
        finalise_annual_round(finalise_cmd(), state, PACK)
    error = refused.value
    assert (error.excellent, error.cadres_assessed, error.cap) == (3, 10, 2)
    assert error.message.startswith("3 cadres graded excellent (优秀) among 10 assessed")
    assert "at most 2" in error.message
    assert "20%" in error.message


def test_finalising_at_the_cap_issues_one_result_per_cadre() -> None:
    state = round_with([C, E, C, C, C, B, C, E, C, INC])  # 2 of 10
    events = finalise_annual_round(finalise_cmd(), state, PACK)
    head, *results = events
    assert head == AnnualRoundFinalised(
        round_id=ROUND,
        county=COUNTY,
        year=YEAR,
        finalised_on=date(2026, 1, 10),
        cadres_assessed=10,
        excellent=2,
        excellent_cap=2,
        policy_version=PACK.version,
    )
    assert all(isinstance(r, AnnualResultIssued) for r in results)
    assert [r.cadre_id for r in results if isinstance(r, AnnualResultIssued)] == [
        f"c{n:03d}" for n in range(10)
    ]
    state = fold_annual(state, events)
    assert state.finalised
    assert state.results["c001"].grade is E
    assert finalise_annual_round(finalise_cmd(), state, PACK) == []
    with pytest.raises(RoundAlreadyFinalised):
        propose_annual_grade(propose_cmd("c002", E), state, PACK)
    assert propose_annual_grade(propose_cmd("c001", E), state, PACK) == []  # a repeat


def test_excellent_proposals_capped_by_absences_do_not_count_against_the_share() -> None:
    state = round_with([E] * 5, absences=1)  # all capped to 称职
    events = finalise_annual_round(finalise_cmd(), state, PACK)
    head = events[0]
    assert isinstance(head, AnnualRoundFinalised)
    assert (head.excellent, head.excellent_cap) == (0, 1)
    results = [e for e in events if isinstance(e, AnnualResultIssued)]
    assert all(r.grade is C and r.cap is not None for r in results)


def test_a_round_without_proposals_has_nothing_to_finalise() -> None:
    with pytest.raises(NothingToFinalise):
        finalise_annual_round(finalise_cmd(), given_annual(opened()), PACK)


def test_a_larger_share_in_the_pack_allows_more_excellent() -> None:
    state = round_with([E, E, E] + [C] * 7)
    events = finalise_annual_round(finalise_cmd(), state, pack_with(excellent_share_cap=0.3))
    assert isinstance(events[0], AnnualRoundFinalised)
    assert events[0].excellent_cap == 3


# --- term-end assessment --------------------------------------------------------------------


def test_a_term_is_assessed_once_it_is_over() -> None:
    post = post_of(end=date(2026, 2, 28))
    with pytest.raises(TermNotOver):
        assess_term(term_cmd(post, today=date(2026, 2, 27)), given_cadre(), PACK)
    [event] = assess_term(term_cmd(post, E, today=date(2026, 2, 28)), given_cadre(), PACK)
    assert event == TermAssessed(
        assignment_id=post.assignment_id,
        cadre_id=CADRE,
        county=COUNTY,
        term_end=date(2026, 2, 28),
        proposed_grade=E,
        grade=E,
        cap=None,
        policy_version=PACK.version,
    )


def test_an_assignment_ended_early_is_assessed_at_its_end_with_the_cap() -> None:
    post = post_of(ended_on=date(2025, 9, 30))
    [event] = assess_term(
        term_cmd(post, E, absences=2, today=date(2025, 10, 8)), given_cadre(), PACK
    )
    assert isinstance(event, TermAssessed)
    assert (event.term_end, event.grade) == (date(2025, 9, 30), B)
    assert event.cap == grade_cap(2, RULES)
    with pytest.raises(ValueError, match="2026"):
        assess_term(term_cmd(post, facts_year=2026, today=date(2026, 1, 8)), given_cadre(), PACK)


def test_one_term_assessment_per_assignment() -> None:
    post = post_of(ended_on=date(2025, 9, 30))
    command = term_cmd(post, C, today=date(2025, 10, 8))
    state = fold_cadre(given_cadre(), assess_term(command, given_cadre(), PACK))
    assert assess_term(command, state, PACK) == []
    with pytest.raises(AlreadyAssessed):
        assess_term(term_cmd(post, E, today=date(2025, 10, 8)), state, PACK)
    # Another assignment of the same cadre has its own term.
    other = post_of(assignment_id="a-2", start=date(2025, 10, 1), end=date(2025, 12, 31))
    assert assess_term(term_cmd(other, C, today=date(2026, 1, 2)), state, PACK)


# --- inspections, evaluations, sanctions ----------------------------------------------------


def inspect_cmd(
    inspection_id: str = "i1", held_on: date = date(2025, 5, 6), **changes: object
) -> InspectCadre:
    return InspectCadre(
        inspection_id=inspection_id,
        kind=InspectionKind.WEEKLY_INSPECTION,
        post=POST,
        held_on=held_on,
        findings="台账不全",
        problems_found=1,
        today=date(2025, 5, 6),
    ).model_copy(update=changes)


def test_a_cadre_inspection_is_recorded_and_its_repeat_is_a_no_op() -> None:
    [event] = inspect_cadre(inspect_cmd(), given_cadre())
    assert isinstance(event, CadreInspected)
    assert (event.township, event.problems_found) == ("t1", 1)
    state = given_cadre(event)
    assert inspect_cadre(inspect_cmd(), state) == []
    with pytest.raises(DuplicateId):
        inspect_cadre(inspect_cmd(findings="都好", problems_found=0), state)


def test_a_cadre_inspection_in_the_future_or_off_post_is_refused() -> None:
    with pytest.raises(FutureDate):
        inspect_cadre(inspect_cmd(held_on=date(2025, 5, 7)), given_cadre())
    with pytest.raises(NotOnPost):
        inspect_cadre(inspect_cmd(held_on=date(2024, 2, 29)), given_cadre())
    ended = post_of(ended_on=date(2025, 4, 30))
    with pytest.raises(NotOnPost):
        inspect_cadre(inspect_cmd(post=ended), given_cadre())
    with pytest.raises(ValueError, match="c2"):
        inspect_cadre(inspect_cmd(post=post_of("c2")), given_cadre())


def test_a_team_inspection() -> None:
    command = InspectTeam(
        inspection_id="ti1",
        kind=InspectionKind.MONTHLY_REVIEW,
        team_id="team-1",
        village_id="v1",
        county=COUNTY,
        township="t1",
        held_on=date(2025, 5, 31),
        today=date(2025, 6, 1),
    )
    state = TeamState.empty("team-1")
    [event] = inspect_team(command, state)
    assert isinstance(event, TeamInspected)
    state = fold_team(state, [event])
    assert inspect_team(command, state) == []
    with pytest.raises(DuplicateId):
        inspect_team(command.model_copy(update={"problems_found": 2}), state)
    with pytest.raises(FutureDate):
        inspect_team(
            command.model_copy(update={"inspection_id": "ti2", "today": date(2025, 5, 30)}), state
        )


def test_a_villager_evaluation_of_a_period_on_post() -> None:
    command = RecordVillagerEvaluation(
        evaluation_id="ev1", post=POST, period="2025-Q2", satisfaction=96.5, respondents=120
    )
    [event] = record_villager_evaluation(command, given_cadre())
    assert isinstance(event, VillagerEvaluationRecorded)
    assert record_villager_evaluation(command, given_cadre(event)) == []
    with pytest.raises(DuplicateId):
        record_villager_evaluation(
            command.model_copy(update={"satisfaction": 90}), given_cadre(event)
        )
    with pytest.raises(NotOnPost):
        record_villager_evaluation(
            command.model_copy(update={"evaluation_id": "ev2", "period": "2023"}), given_cadre()
        )


def test_a_sanction_is_recorded_not_in_the_future() -> None:
    command = RecordSanction(
        sanction_id="s1",
        post=POST,
        kind="党内警告",
        decided_on=date(2025, 8, 1),
        authority="县纪委",
        today=date(2025, 8, 2),
    )
    [event] = record_sanction(command, given_cadre())
    assert isinstance(event, SanctionRecorded)
    assert event.county == COUNTY
    state = given_cadre(event)
    assert state.sanctions["s1"] == event
    assert record_sanction(command, state) == []
    with pytest.raises(DuplicateId):
        record_sanction(command.model_copy(update={"kind": "诫勉谈话"}), state)
    with pytest.raises(FutureDate):
        record_sanction(
            command.model_copy(update={"sanction_id": "s2", "today": date(2025, 7, 31)}), state
        )


# --- state ----------------------------------------------------------------------------------


def test_each_stream_state_ignores_the_events_of_the_others() -> None:
    quarter_events = assess_quarter(
        assess_cmd(township=65, villager=65, panel=65), given_quarter(), PACK
    )
    cadre_events = inspect_cadre(inspect_cmd(), given_cadre())
    every = [*quarter_events, *cadre_events, opened()]
    assert fold_cadre(CadreState.empty(CADRE), [*quarter_events, opened()]) == given_cadre()
    assert fold_team(TeamState.empty("team-1"), every) == TeamState.empty("team-1")
    assert fold_quarter(given_quarter(), [*cadre_events, opened()]) == given_quarter()
    assert fold_annual(given_annual(), [*quarter_events, *cadre_events]) == given_annual()
    # evolve never changes the state it is given
    before = given_quarter()
    after = evolve_quarter(before, quarter_events[0])
    assert before.assessments == {}
    assert CADRE in after.assessments
    assert evolve_cadre(given_cadre(), opened()) == given_cadre()
    assert evolve_team(TeamState.empty("x"), opened()) == TeamState.empty("x")
    assert evolve_annual(given_annual(), opened()).round_id == ROUND


def test_caps_travel_with_events_as_data() -> None:
    [event] = propose_annual_grade(propose_cmd(CADRE, E, absences=2), given_annual(opened()), PACK)
    assert isinstance(event, AnnualGradeProposed)
    data = event.to_data()
    assert data["cap"]["best_allowed"] == "basically_competent"
    assert AnnualGradeProposed.model_validate(data).cap == GradeCap.model_validate(data["cap"])


def test_states_dump_as_json_data_for_the_read_endpoints() -> None:
    quarter = average_quarter()
    quarter = fold_quarter(
        quarter, record_admonition_talk(talk_cmd(TalkBy.TOWNSHIP, date(2025, 7, 10)), quarter)
    )
    data = TypeAdapter(QuarterState).dump_python(quarter, mode="json")
    assert data["assessments"][CADRE]["grade"] == "average"
    assert data["obligations"][f"ob-{CADRE}"]["talks"] == {"township": "2025-07-10"}
    annual = round_with([C, B])
    annual = fold_annual(annual, finalise_annual_round(finalise_cmd(), annual, PACK))
    data = TypeAdapter(AnnualState).dump_python(annual, mode="json")
    assert data["finalisation"]["cadres_assessed"] == 2
    assert set(data["results"]) == {"c000", "c001"}
    cadre = given_cadre(*inspect_cadre(inspect_cmd(), given_cadre()))
    assert (
        TypeAdapter(CadreState).dump_python(cadre, mode="json")["inspections"]["i1"]["held_on"]
        == "2025-05-06"
    )


# --- refusals -------------------------------------------------------------------------------


ERRORS = [
    cls
    for cls in vars(error_module).values()
    if isinstance(cls, type) and issubclass(cls, AssessmentRuleViolation)
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda cls: cls.__name__)
def test_every_refusal_has_a_code_and_a_kind(error: type[AssessmentRuleViolation]) -> None:
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", error.code)
    assert error.kind in {"invalid", "not_found", "conflict", "forbidden", "retryable"}


def test_refusal_codes_are_distinct() -> None:
    codes = [error.code for error in ERRORS]
    assert len(codes) == len(set(codes)) == 18
    assert NotOnPost.kind == "retryable"
