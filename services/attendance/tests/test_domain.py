"""The attendance decider: given(events) / when(command) / then(events or a typed refusal)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from zhucun.attendance.domain import (
    CLOCK_SKEW_TOLERANCE,
    EARTH_RADIUS_M,
    SHANGHAI,
    ApprovalBeyondLevel,
    ApproveLeave,
    AttendanceRuleViolation,
    CancelLeave,
    CheckIn,
    CloseMonth,
    ConfirmPresence,
    Coordinates,
    DatesOutOfOrder,
    DuplicateId,
    EvidenceFromTheFuture,
    Geofence,
    LeaveNotPending,
    LeaveOverlaps,
    LeaveState,
    LeaveStatus,
    LeaveTooLong,
    MonthAlreadyClosed,
    MonthNotOver,
    MonthState,
    NoGeofence,
    NotOnPost,
    Post,
    PurposeRequired,
    RecordHouseholdVisit,
    RecordSpotCheck,
    RejectLeave,
    RequestLeave,
    UnknownLeave,
    WorkState,
    WriteDiaryEntry,
    approve_leave,
    cancel_leave,
    check_in,
    check_in_batch,
    close_month,
    confirm_presence,
    distance_m,
    each_day,
    evaluate_location,
    evolve_leave,
    evolve_month,
    evolve_work,
    fold_leave,
    fold_month,
    fold_work,
    leave_stream,
    local_day,
    location_evidence,
    month_bounds,
    month_key,
    month_stream,
    month_tally,
    months_touched,
    record_household_visit,
    record_spot_check,
    reject_leave,
    request_leave,
    visit_coverage,
    work_stream,
    write_diary_entry,
)
from zhucun.attendance.domain import errors as error_module
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
    LocationEvidence,
    MonthClosed,
    PresenceConfirmed,
    SpotCheckRecorded,
    SpotCheckResult,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack, load_pack

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[3] / "policies"
PACK = load_pack(POLICIES / "reference-2021.toml")
CADRE = "c1"
FENCE = Geofence(latitude=25.04, longitude=102.71, radius_m=1000)
POST = Post(
    assignment_id="a1",
    cadre_id=CADRE,
    village_id="v1",
    township="t1",
    county="530102",
    term_start=date(2025, 1, 1),
    geofence=FENCE,
    households=5,
)


def pack_with(**attendance: object) -> PolicyPack:
    """The reference pack with other attendance rules."""
    return PolicyPack.model_validate(
        {
            "version": "test-" + "-".join(f"{k}.{v}" for k, v in attendance.items()),
            "effective_from": date(2024, 1, 1),
            "attendance": {**PACK.rules(AttendancePolicy).model_dump(), **attendance},
        }
    )


# --- given: states and event factories ------------------------------------------------------


def given_month(month: str, *events: DomainEvent) -> MonthState:
    return fold_month(MonthState.empty(CADRE, month), events)


def given_leave(*events: DomainEvent) -> LeaveState:
    return fold_leave(LeaveState.empty(CADRE), events)


def given_work(*events: DomainEvent) -> WorkState:
    return fold_work(WorkState.empty(CADRE), events)


def months_of(first: date, last: date, *events: DomainEvent) -> dict[str, MonthState]:
    """Every month of the days ``first`` to ``last``, each with the ``events`` of it."""
    return {key: given_month(key, *events) for key in months_touched(first, last)}


def local(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def north(metres: float, fence: Geofence = FENCE) -> Coordinates:
    """A point ``metres`` due north of the fence's centre."""
    return Coordinates(
        latitude=fence.latitude + math.degrees(metres / EARTH_RADIUS_M), longitude=fence.longitude
    )


def checked_in(
    check_in_id: str, day: date, *, distance: int | None = None, inside: bool = True
) -> CheckInRecorded:
    location = (
        None if distance is None else LocationEvidence(inside_geofence=inside, distance_m=distance)
    )
    return CheckInRecorded(
        check_in_id=check_in_id,
        cadre_id=CADRE,
        assignment_id=POST.assignment_id,
        village_id=POST.village_id,
        occurred_at=local(day),
        day=day,
        location=location,
    )


def present_on(days: Iterable[date]) -> list[DomainEvent]:
    return [checked_in(f"ci-{day}", day) for day in days]


def confirmed(confirmation_id: str, *days: date) -> PresenceConfirmed:
    return PresenceConfirmed(
        confirmation_id=confirmation_id,
        cadre_id=CADRE,
        assignment_id=POST.assignment_id,
        village_id=POST.village_id,
        days=days,
    )


def requested(
    leave_id: str,
    kind: LeaveKind,
    first: date,
    last: date,
    *,
    level: ApprovalLevel | None = None,
) -> LeaveRequested:
    days = (last - first).days + 1
    return LeaveRequested(
        leave_id=leave_id,
        cadre_id=CADRE,
        assignment_id=POST.assignment_id,
        village_id=POST.village_id,
        kind=kind,
        first_day=first,
        last_day=last,
        days=days,
        purpose="项目申报" if kind is LeaveKind.VILLAGE_BUSINESS else "",
        approval_level=level or (ApprovalLevel.TOWNSHIP if days <= 3 else ApprovalLevel.COUNTY),
        policy_version=PACK.version,
    )


def approved(leave_id: str, kind: LeaveKind, first: date, last: date) -> list[DomainEvent]:
    request = requested(leave_id, kind, first, last)
    return [
        request,
        LeaveApproved(leave_id=leave_id, cadre_id=CADRE, approved_at_level=request.approval_level),
    ]


def month_closed(month: str) -> MonthClosed:
    _, last = month_bounds(month)
    command = CloseMonth(cadre_id=CADRE, month=month, posts=(POST,), today=last + timedelta(1))
    [event] = close_month(command, MonthState.empty(CADRE, month), LeaveState.empty(CADRE), PACK)
    assert isinstance(event, MonthClosed)
    return event


# --- when: command factories ----------------------------------------------------------------


def check_in_cmd(
    check_in_id: str,
    occurred_at: datetime,
    *,
    location: Coordinates | None = None,
    post: Post = POST,
    received_at: datetime | None = None,
) -> CheckIn:
    return CheckIn(
        check_in_id=check_in_id,
        cadre_id=CADRE,
        occurred_at=occurred_at,
        location=location,
        post=post,
        received_at=received_at or occurred_at + timedelta(hours=1),
    )


def confirm_cmd(
    confirmation_id: str, *days: date, today: date = date(2025, 6, 1)
) -> ConfirmPresence:
    return ConfirmPresence(
        confirmation_id=confirmation_id, cadre_id=CADRE, days=days, post=POST, today=today
    )


def spot_check_cmd(
    spot_check_id: str,
    day: date,
    result: SpotCheckResult = SpotCheckResult.ABSENT,
    *,
    today: date = date(2025, 6, 1),
    findings: str = "",
    post: Post = POST,
) -> RecordSpotCheck:
    return RecordSpotCheck(
        spot_check_id=spot_check_id,
        cadre_id=CADRE,
        day=day,
        result=result,
        findings=findings,
        post=post,
        today=today,
    )


def leave_cmd(
    leave_id: str,
    kind: LeaveKind,
    first: date,
    last: date,
    *,
    purpose: str = "",
    post: Post = POST,
) -> RequestLeave:
    return RequestLeave(
        leave_id=leave_id,
        cadre_id=CADRE,
        kind=kind,
        first_day=first,
        last_day=last,
        purpose=purpose,
        post=post,
    )


def close_cmd(month: str, *posts: Post, today: date | None = None) -> CloseMonth:
    _, last = month_bounds(month)
    return CloseMonth(
        cadre_id=CADRE, month=month, posts=posts or (POST,), today=today or last + timedelta(1)
    )


def closed_by(
    month: str, *events: DomainEvent, leave: LeaveState | None = None, pack: PolicyPack = PACK
) -> MonthClosed:
    [event] = close_month(
        close_cmd(month), given_month(month, *events), leave or given_leave(), pack
    )
    assert isinstance(event, MonthClosed)
    return event


def days_of(month: str, *numbers: int) -> list[date]:
    year, number = (int(part) for part in month.split("-"))
    return [date(year, number, n) for n in numbers]


# --- days, months and streams ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        ("2025-01-31T23:30:00+00:00", date(2025, 2, 1)),
        ("2025-03-10T15:59:59+00:00", date(2025, 3, 10)),
        ("2025-03-10T16:00:00+00:00", date(2025, 3, 11)),
        ("2025-03-10T23:59:00+08:00", date(2025, 3, 10)),
        ("2025-12-31T16:00:00+00:00", date(2026, 1, 1)),
    ],
)
def test_a_day_is_the_calendar_day_in_shanghai(moment: str, day: date) -> None:
    assert local_day(datetime.fromisoformat(moment)) == day


def test_a_moment_without_a_time_zone_has_no_day() -> None:
    with pytest.raises(ValueError, match="time zone"):
        local_day(datetime(2025, 3, 1, 12))


def test_months_bounds_and_the_months_a_span_touches() -> None:
    assert month_bounds("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert month_bounds("2025-02") == (date(2025, 2, 1), date(2025, 2, 28))
    assert month_key(date(2025, 3, 9)) == "2025-03"
    assert months_touched(date(2025, 11, 30), date(2026, 2, 1)) == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]
    assert months_touched(date(2025, 3, 5), date(2025, 3, 5)) == ["2025-03"]
    assert months_touched(date(2025, 3, 5), date(2025, 3, 4)) == []
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds("2025-13")


def test_date_arithmetic_holds_at_the_edges_of_the_window_and_of_the_calendar() -> None:
    """The window's first and last months, the last day the calendar has (``each_day`` never
    steps past it), a year 0000 (the calendar has none), and the Shanghai day of the last
    moment of the window (a day of 2100, whose month is still read)."""
    assert month_bounds("2000-01") == (date(2000, 1, 1), date(2000, 1, 31))
    assert month_bounds("2099-12") == (date(2099, 12, 1), date(2099, 12, 31))
    assert months_touched(date(2099, 11, 30), date(2099, 12, 31)) == ["2099-11", "2099-12"]
    assert list(each_day(date(9999, 12, 30), date.max)) == [date(9999, 12, 30), date.max]
    assert list(each_day(date.min, date.min)) == [date.min]
    for malformed in ("0000-01", "0000-12"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_bounds(malformed)
    last = datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert month_bounds(month_key(local_day(last))) == (date(2100, 1, 1), date(2100, 1, 31))


def test_stream_names() -> None:
    assert month_stream("c1", "2025-03") == "attendance-month-c1-2025-03"
    assert leave_stream("c1") == "attendance-leave-c1"
    assert work_stream("c1") == "attendance-work-c1"
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_stream("c1", "2025-3")


def test_a_check_in_late_on_the_31st_utc_belongs_to_the_next_month() -> None:
    moment = datetime(2025, 1, 31, 23, 30, tzinfo=UTC)
    [event] = check_in(check_in_cmd("ci", moment), given_month("2025-02"), PACK)
    assert isinstance(event, CheckInRecorded)
    assert event.day == date(2025, 2, 1)
    with pytest.raises(ValueError, match="2025-02"):
        check_in(check_in_cmd("ci", moment), given_month("2025-01"), PACK)


# --- the geofence ---------------------------------------------------------------------------


def test_haversine_distance() -> None:
    one_degree = EARTH_RADIUS_M * math.pi / 180
    assert distance_m(0, 0, 1, 0) == pytest.approx(one_degree)
    assert distance_m(0, 0, 0, 1) == pytest.approx(one_degree)
    assert distance_m(25, 102, 25, 102) == 0
    # Kunming to Beijing, about 2,080 km
    assert distance_m(25.04, 102.71, 39.90, 116.40) == pytest.approx(2_080_000, rel=0.01)


@pytest.mark.parametrize(
    ("distance", "inside", "kept"),
    [
        (1000.0, True, 1000),  # exactly on the radius: inside
        (999.9, True, 1000),
        (1000.4, False, 1000),  # outside, though it rounds to the radius
        (1001.0, False, 1000),
        (1004.9, False, 1000),
        (1005.0, False, 1010),  # halves round up
        (0.0, True, 0),
        (4.9, True, 0),
        (15.0, True, 20),
    ],
)
def test_location_evidence_keeps_inside_and_the_distance_rounded_to_10_m(
    distance: float, inside: bool, kept: int
) -> None:
    assert location_evidence(distance, 1000) == LocationEvidence(
        inside_geofence=inside, distance_m=kept
    )


def test_a_location_on_the_edge_is_inside_and_one_metre_beyond_is_outside() -> None:
    assert distance_m(FENCE.latitude, FENCE.longitude, north(1000).latitude, FENCE.longitude) == (
        pytest.approx(1000, abs=1e-6)
    )
    on_edge = evaluate_location(north(1000 - 1e-6), FENCE)
    assert on_edge == LocationEvidence(inside_geofence=True, distance_m=1000)
    beyond = evaluate_location(north(1001), FENCE)
    assert beyond == LocationEvidence(inside_geofence=False, distance_m=1000)
    assert evaluate_location(north(1234), FENCE).distance_m == 1230


def test_an_outside_check_in_is_recorded_but_is_not_presence() -> None:
    [event] = check_in(
        check_in_cmd("ci", local(date(2025, 3, 3)), location=north(5_000)),
        given_month("2025-03"),
        PACK,
    )
    assert isinstance(event, CheckInRecorded)
    assert event.location == LocationEvidence(inside_geofence=False, distance_m=5000)
    assert not event.is_presence
    assert closed_by("2025-03", event).presence_days == 0
    inside = checked_in("in", date(2025, 3, 4), distance=200)
    assert closed_by("2025-03", event, inside).presence_days == 1


def test_a_check_in_keeps_no_coordinates() -> None:
    [event] = check_in(
        check_in_cmd("ci", local(date(2025, 3, 3)), location=north(300)),
        given_month("2025-03"),
        PACK,
    )
    data = event.to_data()
    assert data["location"] == {"inside_geofence": True, "distance_m": 300}
    assert "latitude" not in str(data)
    assert "redacted" in repr(north(300))


def test_a_location_without_a_geofence_is_refused_rather_than_dropped() -> None:
    post = POST.model_copy(update={"geofence": None})
    command = check_in_cmd("ci", local(date(2025, 3, 3)), location=north(10), post=post)
    with pytest.raises(NoGeofence, match="send the check-in without a location") as refused:
        check_in(command, given_month("2025-03"), PACK)
    assert refused.value.kind == "invalid"
    # without a location the same check-in is the cadre's statement of presence
    plain = check_in_cmd("ci", local(date(2025, 3, 3)), post=post)
    [event] = check_in(plain, given_month("2025-03"), PACK)
    assert isinstance(event, CheckInRecorded)
    assert event.is_presence


# --- check-ins ------------------------------------------------------------------------------


def test_a_check_in_is_recorded_on_its_post_and_day() -> None:
    [event] = check_in(check_in_cmd("ci", local(date(2025, 3, 3))), given_month("2025-03"), PACK)
    assert event == CheckInRecorded(
        check_in_id="ci",
        cadre_id=CADRE,
        assignment_id="a1",
        village_id="v1",
        occurred_at=local(date(2025, 3, 3)),
        day=date(2025, 3, 3),
    )
    assert event.kafka_key() == CADRE


def test_a_repeated_check_in_id_is_a_no_op_whatever_its_content() -> None:
    state = given_month("2025-03", checked_in("ci", date(2025, 3, 3)))
    assert check_in(check_in_cmd("ci", local(date(2025, 3, 3))), state, PACK) == []
    # a resend after a reinstall may differ (another location fix): the first upload stands
    resent = check_in_cmd("ci", local(date(2025, 3, 9), 18), location=north(9_000))
    assert check_in(resent, state, PACK) == []


@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [
        (timedelta(0), True),
        (CLOCK_SKEW_TOLERANCE, True),
        (CLOCK_SKEW_TOLERANCE + timedelta(seconds=1), False),
        (timedelta(days=1), False),
    ],
)
def test_a_check_in_from_the_future_is_refused(ahead: timedelta, accepted: bool) -> None:
    occurred = local(date(2025, 3, 3))
    command = check_in_cmd("ci", occurred, received_at=occurred - ahead)
    if accepted:
        assert len(check_in(command, given_month("2025-03"), PACK)) == 1
    else:
        with pytest.raises(EvidenceFromTheFuture):
            check_in(command, given_month("2025-03"), PACK)


@pytest.mark.parametrize(
    "day", [date(2025, 2, 28), date(2025, 7, 1)], ids=["before the term", "after it ended"]
)
def test_a_check_in_off_post_is_refused_as_retryable(day: date) -> None:
    post = POST.model_copy(update={"term_start": date(2025, 3, 1), "ended_on": date(2025, 6, 30)})
    with pytest.raises(NotOnPost) as refused:
        check_in(check_in_cmd("ci", local(day), post=post), given_month(month_key(day)), PACK)
    assert refused.value.kind == "retryable"
    assert refused.value.day == day
    assert refused.value.assignment_id == "a1"
    assert (
        len(
            check_in(
                check_in_cmd("ci", local(date(2025, 6, 30)), post=post),
                given_month("2025-06"),
                PACK,
            )
        )
        == 1
    )


def test_impossible_travel_is_flagged_and_the_check_in_still_counts() -> None:
    far = checked_in("far", date(2025, 3, 3), distance=50_000, inside=False)
    state = given_month("2025-03", far)
    # 10 minutes after the far one, 100 m from the centre: 49.89 km in 10 minutes
    command = check_in_cmd("near", far.occurred_at + timedelta(minutes=10), location=north(100))
    [event] = check_in(command, state, PACK)
    assert isinstance(event, CheckInRecorded)
    assert event.travel_flag is not None
    assert event.travel_flag.other_check_in_id == "far"
    assert event.travel_flag.minutes_apart == 10
    assert event.travel_flag.min_distance_m == 49_890
    assert event.travel_flag.max_speed_kmh == 120
    assert event.is_presence
    assert closed_by("2025-03", far, event).presence_days == 1


def test_plausible_travel_is_not_flagged() -> None:
    far = checked_in("far", date(2025, 3, 3), distance=50_000, inside=False)
    # 49.89 km in an hour: 49.9 km/h
    command = check_in_cmd("near", far.occurred_at + timedelta(hours=1), location=north(100))
    [event] = check_in(command, given_month("2025-03", far), PACK)
    assert isinstance(event, CheckInRecorded)
    assert event.travel_flag is None
    # check-ins without a location give no distance to compare with
    plain = checked_in("plain", date(2025, 3, 3))
    command = check_in_cmd("near2", plain.occurred_at + timedelta(seconds=1), location=north(9_000))
    [event] = check_in(command, given_month("2025-03", plain), PACK)
    assert isinstance(event, CheckInRecorded)
    assert event.travel_flag is None


def test_a_slower_speed_limit_in_the_pack_flags_the_same_journey() -> None:
    far = checked_in("far", date(2025, 3, 3), distance=50_000, inside=False)
    command = check_in_cmd("near", far.occurred_at + timedelta(hours=1), location=north(100))
    [event] = check_in(command, given_month("2025-03", far), pack_with(max_travel_speed_kmh=40))
    assert isinstance(event, CheckInRecorded)
    assert event.travel_flag is not None
    assert event.travel_flag.max_speed_kmh == 40


@pytest.mark.parametrize(
    ("other_distance", "flagged"),
    [(130, True), (110, False), (90, False), (100, False)],
    ids=["30 m apart", "10 m apart: rounding", "10 m the other way", "same distance"],
)
def test_two_check_ins_at_the_same_moment(other_distance: int, flagged: bool) -> None:
    other = checked_in("other", date(2025, 3, 3), distance=other_distance)
    command = check_in_cmd("ci", other.occurred_at, location=north(100))
    [event] = check_in(command, given_month("2025-03", other), PACK)
    assert isinstance(event, CheckInRecorded)
    assert (event.travel_flag is not None) is flagged
    if event.travel_flag is not None:
        assert event.travel_flag.minutes_apart == 0
        assert event.travel_flag.min_distance_m == other_distance - 100 - 10


def test_the_travel_flag_names_the_check_in_closest_in_time() -> None:
    day = date(2025, 3, 3)
    early = checked_in("early", day, distance=80_000, inside=False)
    late = early.model_copy(
        update={"check_in_id": "late", "occurred_at": early.occurred_at + timedelta(minutes=50)}
    )
    command = check_in_cmd("ci", early.occurred_at + timedelta(minutes=40), location=north(0))
    [event] = check_in(command, given_month("2025-03", early, late), PACK)
    assert isinstance(event, CheckInRecorded)
    assert event.travel_flag is not None
    assert event.travel_flag.other_check_in_id == "late"
    assert event.travel_flag.minutes_apart == 10


def test_a_batch_records_what_it_can_and_says_what_became_of_each_item() -> None:
    start = local(date(2025, 3, 3), 8)
    commands = [
        check_in_cmd("a", start, location=north(100)),
        check_in_cmd("b", start + timedelta(minutes=5), location=north(60_000)),
        check_in_cmd("a", start + timedelta(hours=2)),
        check_in_cmd("c", local(date(2025, 3, 4)), received_at=local(date(2025, 3, 3))),
        check_in_cmd("known", local(date(2025, 3, 5))),
        check_in_cmd("d", local(date(2025, 3, 6))),
    ]
    state = given_month("2025-03", checked_in("known", date(2025, 3, 5)))
    events, outcomes = check_in_batch(commands, state, PACK)
    assert [(o.check_in_id, o.status) for o in outcomes] == [
        ("a", "recorded"),
        ("b", "recorded"),
        ("a", "duplicate"),
        ("c", "refused"),
        ("known", "duplicate"),
        ("d", "recorded"),
    ]
    assert isinstance(outcomes[3].error, EvidenceFromTheFuture)
    assert [o.error for o in outcomes if o.status != "refused"] == [None] * 5
    assert [e.check_in_id for e in events if isinstance(e, CheckInRecorded)] == ["a", "b", "d"]
    # travel is judged against the earlier items of the same batch
    assert outcomes[1].event is not None
    assert outcomes[1].event.travel_flag is not None
    assert outcomes[1].event.travel_flag.other_check_in_id == "a"


def test_an_empty_batch_decides_nothing() -> None:
    assert check_in_batch([], given_month("2025-03"), PACK) == ([], [])


# --- township confirmation ------------------------------------------------------------------


def test_a_confirmation_across_months_gives_one_event_per_month() -> None:
    days = (date(2025, 3, 2), date(2025, 2, 27), date(2025, 3, 1))
    months = months_of(date(2025, 2, 27), date(2025, 3, 2))
    decided = confirm_presence(confirm_cmd("conf", *days), months)
    assert sorted(decided) == ["2025-02", "2025-03"]
    [feb] = decided["2025-02"]
    [mar] = decided["2025-03"]
    assert isinstance(feb, PresenceConfirmed)
    assert isinstance(mar, PresenceConfirmed)
    assert feb.days == (date(2025, 2, 27),)
    assert mar.days == (date(2025, 3, 1), date(2025, 3, 2))


def test_a_repeated_confirmation_decides_nothing_and_another_with_its_id_is_refused() -> None:
    days = (date(2025, 2, 27), date(2025, 3, 1))
    months = months_of(days[0], days[1])
    decided = confirm_presence(confirm_cmd("conf", *days), months)
    after = {key: fold_month(months[key], decided[key]) for key in months}
    assert confirm_presence(confirm_cmd("conf", *reversed(days)), after) == {}
    with pytest.raises(DuplicateId) as refused:
        confirm_presence(confirm_cmd("conf", days[0]), after)
    assert refused.value.kind == "conflict"


def test_a_confirmation_names_each_day_once() -> None:
    with pytest.raises(ValidationError) as refused:
        confirm_cmd("conf", date(2025, 3, 2), date(2025, 3, 1), date(2025, 3, 2))
    [error] = refused.value.errors()
    assert (error["loc"], error["type"]) == (("days",), "value_error")


def test_a_confirmation_is_refused_for_future_days_off_post_and_closed_months() -> None:
    with pytest.raises(EvidenceFromTheFuture):
        confirm_presence(
            confirm_cmd("conf", date(2025, 3, 2), today=date(2025, 3, 1)),
            months_of(date(2025, 3, 2), date(2025, 3, 2)),
        )
    with pytest.raises(NotOnPost):
        confirm_presence(
            confirm_cmd("conf", date(2024, 12, 31), date(2025, 1, 2)),
            months_of(date(2024, 12, 31), date(2025, 1, 2)),
        )
    months = months_of(date(2025, 2, 27), date(2025, 3, 1))
    months["2025-02"] = given_month("2025-02", month_closed("2025-02"))
    with pytest.raises(MonthAlreadyClosed, match="2025-02") as refused:
        confirm_presence(confirm_cmd("conf", date(2025, 2, 27), date(2025, 3, 1)), months)
    assert refused.value.month == "2025-02"


def test_a_township_confirmation_is_presence_equal_to_a_check_in() -> None:
    march = "2025-03"
    checked = present_on(days_of(march, *range(1, 11)))
    township = confirmed("conf", *days_of(march, *range(8, 21)))
    closed = closed_by(march, *checked, township)
    assert closed.presence_days == 20
    assert closed.in_village_days == 20
    assert closed.shortfall == 0


# --- spot checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(LeaveKind))
def test_an_absence_on_approved_leave_of_any_kind_is_excused(kind: LeaveKind) -> None:
    leave = given_leave(*approved("L1", kind, date(2025, 3, 10), date(2025, 3, 12)))
    [event] = record_spot_check(
        spot_check_cmd("sc", date(2025, 3, 11)), given_month("2025-03"), leave
    )
    assert isinstance(event, SpotCheckRecorded)
    assert event.excused_by_leave_id == "L1"
    assert not event.unexcused_absence


def test_an_absence_without_approved_leave_is_unexcused() -> None:
    pending = given_leave(requested("L1", LeaveKind.PERSONAL, date(2025, 3, 10), date(2025, 3, 12)))
    [event] = record_spot_check(
        spot_check_cmd("sc", date(2025, 3, 11)), given_month("2025-03"), pending
    )
    assert isinstance(event, SpotCheckRecorded)
    assert event.unexcused_absence
    [present] = record_spot_check(
        spot_check_cmd("sc2", date(2025, 3, 11), SpotCheckResult.PRESENT),
        given_month("2025-03"),
        given_leave(*approved("L1", LeaveKind.PERSONAL, date(2025, 3, 10), date(2025, 3, 12))),
    )
    assert isinstance(present, SpotCheckRecorded)
    assert present.excused_by_leave_id is None
    closed = closed_by("2025-03", event, present)
    assert (closed.spot_checks, closed.unexcused_absences) == (2, 1)


def test_a_spot_check_is_refused_in_the_future_off_post_or_after_the_close() -> None:
    leave = given_leave()
    with pytest.raises(EvidenceFromTheFuture):
        record_spot_check(
            spot_check_cmd("sc", date(2025, 3, 2), today=date(2025, 3, 1)),
            given_month("2025-03"),
            leave,
        )
    late_post = POST.model_copy(update={"term_start": date(2025, 3, 15)})
    with pytest.raises(NotOnPost):
        record_spot_check(
            spot_check_cmd("sc", date(2025, 3, 2), post=late_post), given_month("2025-03"), leave
        )
    with pytest.raises(MonthAlreadyClosed):
        record_spot_check(
            spot_check_cmd("sc", date(2025, 3, 2)),
            given_month("2025-03", month_closed("2025-03")),
            leave,
        )


def test_a_repeated_spot_check_decides_nothing() -> None:
    command = spot_check_cmd("sc", date(2025, 3, 2), findings="村委会无人")
    [event] = record_spot_check(command, given_month("2025-03"), given_leave())
    state = given_month("2025-03", event)
    assert record_spot_check(command, state, given_leave()) == []
    with pytest.raises(DuplicateId):
        record_spot_check(
            spot_check_cmd("sc", date(2025, 3, 2), SpotCheckResult.PRESENT), state, given_leave()
        )


def test_an_excuse_lapses_when_its_leave_is_cancelled_before_the_close() -> None:
    leave_events = approved("L1", LeaveKind.PERSONAL, date(2025, 3, 10), date(2025, 3, 12))
    [spot] = record_spot_check(
        spot_check_cmd("sc", date(2025, 3, 11)), given_month("2025-03"), given_leave(*leave_events)
    )
    assert closed_by("2025-03", spot, leave=given_leave(*leave_events)).unexcused_absences == 0
    cancelled = given_leave(*leave_events, LeaveCancelled(leave_id="L1", cadre_id=CADRE))
    assert closed_by("2025-03", spot, leave=cancelled).unexcused_absences == 1


# --- leave ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "level"),
    [
        (1, ApprovalLevel.TOWNSHIP),
        (3, ApprovalLevel.TOWNSHIP),
        (4, ApprovalLevel.COUNTY),
        (30, ApprovalLevel.COUNTY),
    ],
)
def test_the_approval_level_follows_the_length_of_the_leave(
    days: int, level: ApprovalLevel
) -> None:
    first = date(2025, 3, 10)
    last = first + timedelta(days=days - 1)
    command = leave_cmd("L1", LeaveKind.PERSONAL, first, last)
    [event] = request_leave(command, given_leave(), months_of(first, last), PACK)
    assert isinstance(event, LeaveRequested)
    assert (event.days, event.approval_level, event.policy_version) == (days, level, PACK.version)


def test_a_township_may_not_approve_county_level_leave() -> None:
    leave = given_leave(requested("L4", LeaveKind.SICK, date(2025, 3, 10), date(2025, 3, 13)))
    months = months_of(date(2025, 3, 10), date(2025, 3, 13))
    township = ApproveLeave(leave_id="L4", cadre_id=CADRE, approver_level=ApprovalLevel.TOWNSHIP)
    with pytest.raises(ApprovalBeyondLevel) as refused:
        approve_leave(township, leave, months, PACK)
    assert refused.value.kind == "forbidden"
    assert refused.value.required_level is ApprovalLevel.COUNTY
    with pytest.raises(ApprovalBeyondLevel):
        reject_leave(
            RejectLeave(
                leave_id="L4", cadre_id=CADRE, approver_level=ApprovalLevel.TOWNSHIP, reason="否"
            ),
            leave,
        )
    county = township.model_copy(update={"approver_level": ApprovalLevel.COUNTY})
    assert approve_leave(county, leave, months, PACK) == [
        LeaveApproved(leave_id="L4", cadre_id=CADRE, approved_at_level=ApprovalLevel.COUNTY)
    ]


def test_a_township_approves_three_days_and_so_may_the_county() -> None:
    leave = given_leave(requested("L3", LeaveKind.PERSONAL, date(2025, 3, 10), date(2025, 3, 12)))
    months = months_of(date(2025, 3, 10), date(2025, 3, 12))
    for level in ApprovalLevel:
        command = ApproveLeave(leave_id="L3", cadre_id=CADRE, approver_level=level)
        [event] = approve_leave(command, leave, months, PACK)
        assert isinstance(event, LeaveApproved)
        assert event.approved_at_level is level
    assert fold_leave(leave, [event]).leaves["L3"].status is LeaveStatus.APPROVED


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (leave_cmd("L", LeaveKind.PERSONAL, date(2025, 3, 10), date(2025, 3, 9)), DatesOutOfOrder),
        (leave_cmd("L", LeaveKind.PERSONAL, date(2025, 1, 1), date(2026, 1, 2)), LeaveTooLong),
        (
            leave_cmd("L", LeaveKind.VILLAGE_BUSINESS, date(2025, 3, 10), date(2025, 3, 10)),
            PurposeRequired,
        ),
        (
            leave_cmd(
                "L", LeaveKind.VILLAGE_BUSINESS, date(2025, 3, 10), date(2025, 3, 10), purpose="   "
            ),
            PurposeRequired,
        ),
        (leave_cmd("L", LeaveKind.SICK, date(2024, 12, 30), date(2025, 1, 2)), NotOnPost),
    ],
    ids=["out of order", "too long", "no purpose", "blank purpose", "before the post"],
)
def test_invalid_leave_requests_are_refused(
    command: RequestLeave, error: type[AttendanceRuleViolation]
) -> None:
    with pytest.raises(error):
        request_leave(command, given_leave(), months_of(command.first_day, command.last_day), PACK)


def test_leave_of_a_leap_year_is_not_too_long() -> None:
    command = leave_cmd("L", LeaveKind.SICK, date(2028, 1, 1), date(2028, 12, 31))
    [event] = request_leave(
        command, given_leave(), months_of(date(2028, 1, 1), date(2028, 12, 31)), PACK
    )
    assert isinstance(event, LeaveRequested)
    assert event.days == 366


def test_village_business_states_its_purpose() -> None:
    command = leave_cmd(
        "L", LeaveKind.VILLAGE_BUSINESS, date(2025, 3, 10), date(2025, 3, 10), purpose="县里培训"
    )
    [event] = request_leave(
        command, given_leave(), months_of(date(2025, 3, 10), date(2025, 3, 10)), PACK
    )
    assert isinstance(event, LeaveRequested)
    assert event.purpose == "县里培训"


def test_leave_may_not_overlap_pending_or_approved_leave() -> None:
    first, last = date(2025, 3, 10), date(2025, 3, 12)
    command = leave_cmd("new", LeaveKind.PERSONAL, date(2025, 3, 12), date(2025, 3, 14))
    months = months_of(first, date(2025, 3, 14))
    for history in (
        [requested("old", LeaveKind.SICK, first, last)],
        approved("old", LeaveKind.VILLAGE_BUSINESS, first, last),
    ):
        with pytest.raises(LeaveOverlaps) as refused:
            request_leave(command, given_leave(*history), months, PACK)
        assert refused.value.leave_id == "old"
    rejected = given_leave(
        requested("old", LeaveKind.SICK, first, last),
        LeaveRejected(leave_id="old", cadre_id=CADRE, reason="材料不全"),
    )
    assert len(request_leave(command, rejected, months, PACK)) == 1
    cancelled = given_leave(
        *approved("old", LeaveKind.SICK, first, last),
        LeaveCancelled(leave_id="old", cadre_id=CADRE),
    )
    assert len(request_leave(command, cancelled, months, PACK)) == 1


def test_a_repeated_leave_request_decides_nothing() -> None:
    command = leave_cmd("L", LeaveKind.PERSONAL, date(2025, 3, 10), date(2025, 3, 11))
    months = months_of(date(2025, 3, 10), date(2025, 3, 11))
    [event] = request_leave(command, given_leave(), months, PACK)
    leave = given_leave(event)
    assert request_leave(command, leave, months, PACK) == []
    with pytest.raises(DuplicateId):
        request_leave(command.model_copy(update={"kind": LeaveKind.SICK}), leave, months, PACK)


def test_the_leave_lifecycle_and_its_repeats() -> None:
    first, last = date(2025, 3, 10), date(2025, 3, 11)
    months = months_of(first, last)
    approve = ApproveLeave(leave_id="L", cadre_id=CADRE, approver_level=ApprovalLevel.TOWNSHIP)
    reject = RejectLeave(
        leave_id="L", cadre_id=CADRE, approver_level=ApprovalLevel.TOWNSHIP, reason="农忙"
    )
    cancel = CancelLeave(leave_id="L", cadre_id=CADRE, reason="不需要了")
    with pytest.raises(UnknownLeave) as unknown:
        approve_leave(approve, given_leave(), months, PACK)
    assert unknown.value.kind == "not_found"

    is_approved = given_leave(*approved("L", LeaveKind.PERSONAL, first, last))
    assert approve_leave(approve, is_approved, months, PACK) == []
    with pytest.raises(LeaveNotPending):
        reject_leave(reject, is_approved)

    pending = given_leave(requested("L", LeaveKind.PERSONAL, first, last))
    [rejection] = reject_leave(reject, pending)
    is_rejected = fold_leave(pending, [rejection])
    assert is_rejected.leaves["L"].status is LeaveStatus.REJECTED
    assert is_rejected.leaves["L"].reason == "农忙"
    assert reject_leave(reject, is_rejected) == []
    with pytest.raises(LeaveNotPending):
        approve_leave(approve, is_rejected, months, PACK)
    with pytest.raises(LeaveNotPending):
        cancel_leave(cancel, is_rejected, months)

    [cancellation] = cancel_leave(cancel, is_approved, months)
    is_cancelled = fold_leave(is_approved, [cancellation])
    assert is_cancelled.leaves["L"].status is LeaveStatus.CANCELLED
    assert cancel_leave(cancel, is_cancelled, months) == []
    with pytest.raises(LeaveNotPending):
        approve_leave(approve, is_cancelled, months, PACK)
    assert len(cancel_leave(cancel, pending, months)) == 1


def test_leave_spanning_two_months_counts_in_each() -> None:
    leave = given_leave(*approved("L", LeaveKind.PERSONAL, date(2025, 1, 30), date(2025, 2, 2)))
    january = closed_by("2025-01", leave=leave)
    february = closed_by("2025-02", leave=leave)
    assert (january.personal_leave_days, january.eligible_days) == (2, 29)
    assert (february.personal_leave_days, february.eligible_days) == (2, 26)
    assert january.required_days == math.ceil(20 * 29 / 31)
    assert february.required_days == math.ceil(20 * 26 / 28)


def test_leave_decisions_that_would_change_a_closed_month_are_refused() -> None:
    first, last = date(2025, 2, 27), date(2025, 3, 2)
    months = months_of(first, last)
    months["2025-02"] = given_month("2025-02", month_closed("2025-02"))
    with pytest.raises(MonthAlreadyClosed, match="2025-02"):
        request_leave(leave_cmd("L", LeaveKind.SICK, first, last), given_leave(), months, PACK)
    pending = given_leave(requested("L", LeaveKind.SICK, first, last))
    county = ApproveLeave(leave_id="L", cadre_id=CADRE, approver_level=ApprovalLevel.COUNTY)
    with pytest.raises(MonthAlreadyClosed):
        approve_leave(county, pending, months, PACK)
    cancel = CancelLeave(leave_id="L", cadre_id=CADRE)
    is_approved = given_leave(*approved("L", LeaveKind.SICK, first, last))
    with pytest.raises(MonthAlreadyClosed):
        cancel_leave(cancel, is_approved, months)
    # pending leave never counted: it may still be withdrawn or rejected
    assert len(cancel_leave(cancel, pending, months)) == 1
    reject = RejectLeave(
        leave_id="L", cadre_id=CADRE, approver_level=ApprovalLevel.COUNTY, reason="迟交"
    )
    assert len(reject_leave(reject, pending)) == 1


# --- the month tally and close --------------------------------------------------------------


def test_twenty_days_present_in_a_full_month_is_compliant() -> None:
    closed = closed_by("2025-03", *present_on(days_of("2025-03", *range(1, 21))))
    assert closed.model_dump(exclude={"policy_version"}) == {
        "cadre_id": CADRE,
        "month": "2025-03",
        "assignment_ids": ("a1",),
        "village_id": "v1",
        "days_in_month": 31,
        "days_in_post": 31,
        "presence_days": 20,
        "business_days": 0,
        "in_village_days": 20,
        "personal_leave_days": 0,
        "sick_leave_days": 0,
        "eligible_days": 31,
        "required_days": 20,
        "shortfall": 0,
        "spot_checks": 0,
        "unexcused_absences": 0,
    }
    assert closed.compliant
    assert closed.policy_version == "reference-2021"
    short = closed_by("2025-03", *present_on(days_of("2025-03", *range(1, 16))))
    assert (short.in_village_days, short.shortfall) == (15, 5)


@pytest.mark.parametrize(
    ("month", "term_start", "in_post", "required"),
    [
        ("2025-03", date(2025, 3, 1), 31, 20),
        ("2025-03", date(2025, 3, 16), 16, 11),  # 20 x 16 / 31 = 10.3
        ("2025-03", date(2025, 3, 17), 15, 10),  # 20 x 15 / 31 = 9.7
        ("2025-03", date(2025, 3, 31), 1, 1),
        ("2025-04", date(2025, 4, 16), 15, 10),  # 20 x 15 / 30 = 10 exactly
        ("2025-02", date(2025, 2, 1), 28, 20),
        ("2024-02", date(2024, 2, 15), 15, 11),  # 20 x 15 / 29 = 10.3
    ],
)
def test_required_days_are_prorated_for_a_post_starting_mid_month(
    month: str, term_start: date, in_post: int, required: int
) -> None:
    post = POST.model_copy(update={"term_start": term_start})
    [event] = close_month(close_cmd(month, post), given_month(month), given_leave(), PACK)
    assert isinstance(event, MonthClosed)
    assert (event.days_in_post, event.eligible_days, event.required_days) == (
        in_post,
        in_post,
        required,
    )


def test_personal_and_sick_leave_lower_the_days_required() -> None:
    leave = given_leave(
        *approved("P", LeaveKind.PERSONAL, date(2025, 3, 3), date(2025, 3, 5)),
        *approved("S", LeaveKind.SICK, date(2025, 3, 20), date(2025, 3, 21)),
        requested("pending", LeaveKind.PERSONAL, date(2025, 3, 25), date(2025, 3, 26)),
    )
    # presence claimed on a day of leave is not counted twice
    checked = present_on(days_of("2025-03", 1, 2, 3, 6, 7))
    closed = closed_by("2025-03", *checked, leave=leave)
    assert (closed.personal_leave_days, closed.sick_leave_days) == (3, 2)
    assert closed.eligible_days == 26
    assert closed.required_days == 17  # 20 x 26 / 31 = 16.8
    assert closed.presence_days == 4
    assert closed.shortfall == 13


def test_village_business_counts_as_days_in_the_village() -> None:
    leave = given_leave(
        *approved("B", LeaveKind.VILLAGE_BUSINESS, date(2025, 3, 10), date(2025, 3, 20))
    )
    checked = present_on(days_of("2025-03", *range(1, 11)))  # the 10th also on business
    closed = closed_by("2025-03", *checked, leave=leave)
    assert (closed.presence_days, closed.business_days) == (10, 11)
    assert closed.in_village_days == 20
    assert closed.eligible_days == 31
    assert closed.shortfall == 0


@pytest.mark.parametrize(
    ("period", "minimum", "month", "required"),
    [
        ("quarter", 50, "2025-03", 18),  # 50 x 31 / 90 = 17.2
        ("quarter", 50, "2025-05", 18),  # 50 x 31 / 91 = 17.03
        ("year", 200, "2025-03", 17),  # 200 x 31 / 365 = 16.99
        ("year", 200, "2025-02", 16),  # 200 x 28 / 365 = 15.3
        ("year", 200, "2028-02", 16),  # 200 x 29 / 366 = 15.8
        ("year", 160, "2025-04", 14),  # 160 x 30 / 365 = 13.2
    ],
)
def test_quarter_and_year_rules_are_prorated_to_the_month(
    period: str, minimum: int, month: str, required: int
) -> None:
    pack = pack_with(minimum_period=period, minimum_days=minimum)
    closed = closed_by(month, pack=pack)
    assert closed.required_days == required
    assert closed.policy_version == pack.version


def test_a_month_with_two_posts_counts_both_and_names_the_later_village() -> None:
    first = POST.model_copy(update={"term_start": date(2024, 3, 1), "ended_on": date(2025, 3, 10)})
    second = POST.model_copy(
        update={"assignment_id": "a2", "village_id": "v2", "term_start": date(2025, 3, 16)}
    )
    state = given_month("2025-03", *present_on(days_of("2025-03", 5, 12, 20)))
    [event] = close_month(close_cmd("2025-03", second, first), state, given_leave(), PACK)
    assert isinstance(event, MonthClosed)
    assert event.assignment_ids == ("a1", "a2")
    assert event.village_id == "v2"
    assert event.days_in_post == 10 + 16
    assert event.presence_days == 2  # the 12th was between posts
    assert event.required_days == 17  # 20 x 26 / 31 = 16.8


def test_the_preview_of_an_open_month_is_the_arithmetic_of_its_close() -> None:
    leave = given_leave(*approved("P", LeaveKind.PERSONAL, date(2025, 3, 3), date(2025, 3, 4)))
    state = given_month("2025-03", *present_on(days_of("2025-03", 1, 2, 5)))
    tally = month_tally(state, leave, [POST], PACK)
    [event] = close_month(close_cmd("2025-03"), state, leave, PACK)
    assert tally.closed_event() == event
    assert tally.in_village_dates == tuple(days_of("2025-03", 1, 2, 5))
    assert tally.excused_dates == tuple(days_of("2025-03", 3, 4))
    assert not tally.compliant


def test_a_month_is_closed_once_and_only_after_it_is_over() -> None:
    state = given_month("2025-03")
    with pytest.raises(MonthNotOver) as refused:
        close_month(close_cmd("2025-03", today=date(2025, 3, 31)), state, given_leave(), PACK)
    assert refused.value.last_day == date(2025, 3, 31)
    [event] = close_month(close_cmd("2025-03", today=date(2025, 4, 1)), state, given_leave(), PACK)
    closed = evolve_month(state, event)
    assert closed.closed == event
    with pytest.raises(MonthAlreadyClosed):
        close_month(close_cmd("2025-03", today=date(2025, 4, 2)), closed, given_leave(), PACK)


def test_a_month_without_a_post_is_not_closed() -> None:
    post = POST.model_copy(update={"term_start": date(2025, 4, 1)})
    with pytest.raises(NotOnPost, match="2025-03"):
        close_month(close_cmd("2025-03", post), given_month("2025-03"), given_leave(), PACK)


def test_late_evidence_is_refused_once_the_month_is_closed() -> None:
    day = date(2025, 3, 20)
    state = given_month("2025-03", checked_in("early", day), month_closed("2025-03"))
    with pytest.raises(MonthAlreadyClosed, match="no longer accepted"):
        check_in(check_in_cmd("late", local(day)), state, PACK)
    # the upload that made it before the close may still be resent
    assert check_in(check_in_cmd("early", local(day)), state, PACK) == []
    with pytest.raises(MonthAlreadyClosed):
        confirm_presence(confirm_cmd("conf", day), {"2025-03": state})
    with pytest.raises(MonthAlreadyClosed):
        record_spot_check(spot_check_cmd("sc", day), state, given_leave())


# --- work diary and household visits --------------------------------------------------------


def test_a_diary_entry_on_post_and_its_repeat() -> None:
    command = WriteDiaryEntry(
        entry_id="d1",
        cadre_id=CADRE,
        day=date(2025, 3, 3),
        text="走访了五户。",
        post=POST,
        today=date(2025, 3, 3),
    )
    [event] = write_diary_entry(command, given_work())
    assert isinstance(event, DiaryEntryWritten)
    work = given_work(event)
    assert work.diary["d1"].day == date(2025, 3, 3)
    assert write_diary_entry(command, work) == []
    with pytest.raises(DuplicateId):
        write_diary_entry(command.model_copy(update={"text": "别的内容"}), work)
    with pytest.raises(NotOnPost):
        write_diary_entry(
            command.model_copy(update={"entry_id": "d0", "day": date(2024, 12, 31)}), work
        )


def test_a_household_visit_on_post_and_its_repeat() -> None:
    command = RecordHouseholdVisit(
        visit_id="v1",
        cadre_id=CADRE,
        household_id="H-007",
        visited_on=date(2025, 1, 5),
        post=POST,
        today=date(2025, 1, 5),
    )
    [event] = record_household_visit(command, given_work())
    assert isinstance(event, HouseholdVisited)
    work = given_work(event)
    assert record_household_visit(command, work) == []
    with pytest.raises(DuplicateId):
        record_household_visit(command.model_copy(update={"household_id": "H-008"}), work)
    with pytest.raises(NotOnPost):
        record_household_visit(
            command.model_copy(update={"visit_id": "v0", "visited_on": date(2024, 12, 1)}), work
        )


def test_a_diary_entry_or_a_visit_is_for_a_day_that_has_come() -> None:
    today = date(2025, 3, 3)
    diary = WriteDiaryEntry(
        entry_id="d1", cadre_id=CADRE, day=today, text="开会", post=POST, today=today
    )
    visit = RecordHouseholdVisit(
        visit_id="v1", cadre_id=CADRE, household_id="H1", visited_on=today, post=POST, today=today
    )
    assert len(write_diary_entry(diary, given_work())) == 1
    assert len(record_household_visit(visit, given_work())) == 1
    tomorrow = today + timedelta(days=1)
    with pytest.raises(EvidenceFromTheFuture) as refused:
        write_diary_entry(diary.model_copy(update={"day": tomorrow}), given_work())
    assert refused.value.code == "evidence_from_the_future"
    assert refused.value.details() == {"when": "2025-03-04", "now": "2025-03-03"}
    with pytest.raises(EvidenceFromTheFuture):
        record_household_visit(visit.model_copy(update={"visited_on": tomorrow}), given_work())


def visited(
    visit_id: str, household_id: str, on: date, assignment_id: str = "a1"
) -> HouseholdVisited:
    return HouseholdVisited(
        visit_id=visit_id,
        cadre_id=CADRE,
        assignment_id=assignment_id,
        village_id="v1",
        household_id=household_id,
        visited_on=on,
    )


def test_visit_coverage_counts_distinct_households_of_the_assignment() -> None:
    work = given_work(
        visited("1", "H1", date(2025, 1, 3)),
        visited("2", "H2", date(2025, 1, 9)),
        visited("3", "H1", date(2025, 1, 12)),  # a second visit counts once
        visited("4", "H3", date(2025, 1, 2), assignment_id="old"),  # another assignment
    )
    coverage = visit_coverage(work, POST, PACK)
    assert (coverage.households, coverage.visited, coverage.share) == (5, 2, 0.4)
    assert coverage.deadline == date(2025, 1, 30)
    assert coverage.all_visited_on is None
    assert coverage.within_deadline is None
    assert not coverage.complete


@pytest.mark.parametrize(
    ("last_visit", "within"), [(date(2025, 1, 30), True), (date(2025, 1, 31), False)]
)
def test_visit_coverage_judges_the_deadline_once_all_are_visited(
    last_visit: date, within: bool
) -> None:
    work = given_work(
        # uploaded out of order: the day the last household was first visited counts
        visited("5", "H5", last_visit),
        *(visited(str(n), f"H{n}", date(2025, 1, n + 1)) for n in range(1, 5)),
        visited("6", "H5", date(2025, 2, 10)),
    )
    coverage = visit_coverage(work, POST, PACK)
    assert (coverage.visited, coverage.share) == (5, 1.0)
    assert coverage.all_visited_on == last_visit
    assert coverage.within_deadline is within


def test_the_visit_deadline_of_a_term_starting_on_the_windows_last_day() -> None:
    last = POST.model_copy(update={"term_start": date(2099, 12, 31)})
    coverage = visit_coverage(given_work(), last, PACK)
    assert coverage.deadline == date(2100, 1, 29)  # the 30 first days on post


def test_visit_coverage_of_a_village_without_a_household_count() -> None:
    post = POST.model_copy(update={"households": 0})
    coverage = visit_coverage(given_work(visited("1", "H1", date(2025, 1, 3))), post, PACK)
    assert (coverage.visited, coverage.share, coverage.within_deadline) == (1, 0.0, None)


# --- state and errors -----------------------------------------------------------------------


def test_each_stream_state_ignores_the_events_of_the_others() -> None:
    check = checked_in("ci", date(2025, 3, 3))
    leave = requested("L", LeaveKind.SICK, date(2025, 3, 3), date(2025, 3, 3))
    diary = DiaryEntryWritten(
        entry_id="d",
        cadre_id=CADRE,
        assignment_id="a1",
        village_id="v1",
        day=date(2025, 3, 3),
        text="x",
    )
    month = MonthState.empty(CADRE, "2025-03")
    assert evolve_month(month, leave) is month
    assert evolve_month(month, diary) is month
    assert evolve_leave(LeaveState.empty(CADRE), check) == LeaveState.empty(CADRE)
    assert evolve_work(WorkState.empty(CADRE), leave) == WorkState.empty(CADRE)
    after = evolve_month(month, check)
    assert month.check_ins == {}  # the earlier state is untouched
    assert after.check_ins["ci"].is_presence
    assert after.presence_days() == {date(2025, 3, 3)}
    with pytest.raises(TypeError):
        after.check_ins["x"] = after.check_ins["ci"]  # type: ignore[index]


def test_a_decision_on_another_cadres_stream_is_a_programming_error() -> None:
    other_month = MonthState.empty("c2", "2025-03")
    with pytest.raises(ValueError, match="c2"):
        check_in(check_in_cmd("ci", local(date(2025, 3, 3))), other_month, PACK)
    other_post = POST.model_copy(update={"cadre_id": "c2"})
    with pytest.raises(ValueError, match="c2"):
        check_in(
            check_in_cmd("ci", local(date(2025, 3, 3)), post=other_post),
            given_month("2025-03"),
            PACK,
        )
    with pytest.raises(ValueError, match="month 2025-04"):
        confirm_presence(
            confirm_cmd("conf", date(2025, 4, 3)), months_of(date(2025, 3, 1), date(2025, 3, 2))
        )


ERRORS = [
    cls
    for cls in vars(error_module).values()
    if isinstance(cls, type) and issubclass(cls, AttendanceRuleViolation)
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda cls: cls.__name__)
def test_every_refusal_has_a_code_and_a_kind(error: type[AttendanceRuleViolation]) -> None:
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", error.code)
    assert error.kind in {"invalid", "not_found", "conflict", "forbidden", "retryable"}


def test_refusal_codes_are_distinct() -> None:
    codes = [error.code for error in ERRORS]
    assert len(codes) == len(set(codes)) == 14
