"""The attendance HTTP edge without PostgreSQL or Kafka: the service's app with its use cases
on the in-memory event store and an in-memory replica of dispatch (the lifespan never runs).

What the edge owns: the bounds of every body and path (the hand-found cases of issue 15 are
refused with a 422 ``validation-error`` naming the field, never a 500, and nothing is
stored), evidence for a day that has not come (``evidence_from_the_future``) and a month not
over (``month_not_over``) refused with their rule's code, the replica's gaps answered
retryably by ids only, the typed read of one leave request and the county's list of leave
requests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from zhucun.attendance.app import create_app
from zhucun.attendance.application import Context, leave_cursor
from zhucun.attendance.domain import Geofence, Leave, Post
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.contracts.attendance.events import ApprovalLevel, LeaveKind, registry
from zhucun.shared.commands import CommandPath, StateCache
from zhucun.shared.http import provide_use_cases
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.policy import PolicyBook
from zhucun.shared.problems import PROBLEM_TYPE_BASE
from zhucun.shared.testing import bearer

pytestmark = pytest.mark.unit

POLICIES = PolicyBook.load(
    Path(__file__).resolve().parents[3] / "policies", sections=[AttendancePolicy]
)
COUNTY = "530102"
#: 15 May 2025, 10:00 in Shanghai.
NOW = datetime(2025, 5, 15, 2, 0, tzinfo=UTC)
TODAY = date(2025, 5, 15)
VALIDATION_ERROR = PROBLEM_TYPE_BASE + "validation-error"
FUTURE = PROBLEM_TYPE_BASE + "attendance/evidence-from-the-future"
NOT_OVER = PROBLEM_TYPE_BASE + "attendance/month-not-over"
ADMIN = bearer("org_admin", county=COUNTY)
TOWNSHIP = bearer("township", county=COUNTY, township="t1")


def post(cadre_id: str, township: str = "t1", term_start: date = date(2025, 3, 1)) -> Post:
    return Post(
        assignment_id=f"a-{cadre_id}",
        cadre_id=cadre_id,
        village_id=f"v-{township}",
        township=township,
        county=COUNTY,
        term_start=term_start,
        geofence=Geofence(latitude=25.04, longitude=102.71, radius_m=1000),
        households=3,
    )


class Replica:
    """The replica of dispatch, in memory (``replicas.posts.PostDirectory``'s queries)."""

    def __init__(self, *posts: Post) -> None:
        self.posts = list(posts)

    async def posts_of(self, cadre_id: str) -> list[Post]:
        mine = (p for p in self.posts if p.cadre_id == cadre_id)
        return sorted(mine, key=lambda p: (p.term_start, p.assignment_id))

    async def cadres_between(
        self, county: str, first: date, last: date, township: str | None = None
    ) -> list[str]:
        return sorted(
            {
                p.cadre_id
                for p in self.posts
                if p.county == county and p.overlaps(first, last) and township in (None, p.township)
            }
        )

    async def county_posts(self, county: str, township: str | None = None) -> list[Post]:
        found = (p for p in self.posts if p.county == county and township in (None, p.township))
        return sorted(found, key=lambda p: (p.cadre_id, p.term_start, p.assignment_id))


class Edge:
    """The app on a fresh in-memory store, the clock at ``NOW``."""

    def __init__(self, *posts: Post) -> None:
        self.store = InMemoryEventStore()
        self.replica = Replica(*posts)
        commands = CommandPath(self.store, registry, StateCache())
        context = Context(
            commands=commands, posts=self.replica, policies=POLICIES, clock=lambda: NOW
        )
        app = create_app()
        provide_use_cases(app, lambda: context)
        self.client = TestClient(app)  # not entered: no lifespan, no database

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str],
        expect: int,
    ) -> Any:
        response = self.client.request(method, path, json=body, headers=headers)
        assert response.status_code == expect, response.text
        if expect >= 400:
            assert response.headers["content-type"] == "application/problem+json"
        return response.json()

    def as_cadre(
        self, cadre_id: str, method: str, path: str, body: Any = None, *, expect: int = 201
    ) -> Any:
        headers = bearer("cadre", county=COUNTY, cadre=cadre_id)
        return self.send(method, f"/cadres/{cadre_id}{path}", body, headers=headers, expect=expect)

    async def stored(self) -> int:
        return await self.store.head_position()


@pytest.fixture
def edge() -> Edge:
    return Edge(post("c1"), post("c2"), post("c3", township="t2"))


def assert_invalid(problem: dict[str, Any], *location: str | int) -> None:
    """A 422 ``validation-error`` naming the field at ``location``."""
    assert (problem["status"], problem["type"]) == (422, VALIDATION_ERROR), problem
    assert [tuple(e["location"]) for e in problem["errors"]] == [location], problem


def assert_refused(problem: dict[str, Any], status: int, type_: str, code: str) -> None:
    assert (problem["status"], problem["type"], problem["code"]) == (status, type_, code), problem


# --- the hand-found 500s of issue 15 ---------------------------------------------------------


async def test_a_month_of_year_0000_or_9999_is_invalid_input(edge: Edge) -> None:
    closed = edge.send(
        "POST", f"/counties/{COUNTY}/months/0000-01/close", headers=ADMIN, expect=422
    )
    assert_invalid(closed, "path", "month")
    read = edge.send("GET", "/cadres/X/months/9999-12", headers=ADMIN, expect=422)
    assert_invalid(read, "path", "month")
    one = edge.send("POST", "/cadres/c1/months/2100-01/close", headers=ADMIN, expect=422)
    assert_invalid(one, "path", "month")
    assert await edge.stored() == 0


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"])
async def test_a_check_in_outside_the_window_is_invalid_input(edge: Edge, moment: str) -> None:
    body = {"check_in_id": "ci", "occurred_at": moment}
    assert_invalid(
        edge.as_cadre("c1", "POST", "/check-ins", body, expect=422), "body", "occurred_at"
    )
    batch = edge.as_cadre("c1", "POST", "/check-ins/batch", {"items": [body]}, expect=200)
    [item] = batch["items"]
    assert (item["status"], item["check_in_id"]) == ("refused", "ci")
    assert_invalid(item["problem"], "occurred_at")
    assert await edge.stored() == 0


async def test_a_nul_character_in_a_diary_or_a_cadre_id_is_invalid_input(edge: Edge) -> None:
    body = {"entry_id": "d1", "day": "2025-05-01", "text": "开会\x00"}
    assert_invalid(edge.as_cadre("c1", "POST", "/diary", body, expect=422), "body", "text")
    clean = {**body, "text": "开会"}
    nul_id = edge.send(
        "POST", "/cadres/c1%00/diary", clean, headers=bearer("cadre", cadre="c1\x00"), expect=422
    )
    assert_invalid(nul_id, "path", "cadre_id")
    formula = edge.send("GET", "/cadres/=HYPERLINK(1)/leave", headers=ADMIN, expect=422)
    assert_invalid(formula, "path", "cadre_id")
    assert await edge.stored() == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/diary", {"entry_id": "d 1", "day": "2025-05-01", "text": "x"}, "entry_id"),
        ("/diary", {"entry_id": "d1", "day": "2025-05-01", "text": " "}, "text"),
        ("/diary", {"entry_id": "d1", "day": "2025-05-01", "text": "x" * 10_001}, "text"),
        (
            "/visits",
            {"visit_id": "v1", "household_id": "-1", "visited_on": "2025-05-01"},
            "household_id",
        ),
        (
            "/visits",
            {"visit_id": "v1", "household_id": "h", "visited_on": "1999-12-31"},
            "visited_on",
        ),
        (
            "/leave",
            {
                "leave_id": "l",
                "kind": "sick",
                "first_day": "2025-06-01",
                "last_day": "2025-06-02",
                "purpose": "\u202e",
            },
            "purpose",
        ),
        ("/check-ins", {"check_in_id": "c", "occurred_at": "2025-05-01T08:00:00"}, "occurred_at"),
        (
            "/check-ins",
            {
                "check_in_id": "c",
                "occurred_at": "2025-05-01T08:00:00Z",
                "location": {"latitude": "25.0", "longitude": 102.7},
            },
            "location",
        ),
    ],
    ids=[
        "id with a space",
        "blank text",
        "text too long",
        "id as a formula",
        "before 2000",
        "bidi override",
        "no offset",
        "latitude as a string",
    ],
)
async def test_a_cadres_body_out_of_its_bounds_is_invalid_input(
    edge: Edge, path: str, body: dict[str, Any], field: str
) -> None:
    problem = edge.as_cadre("c1", "POST", path, body, expect=422)
    assert problem["type"] == VALIDATION_ERROR
    assert {e["location"][1] for e in problem["errors"]} == {field}, problem
    assert await edge.stored() == 0


async def test_a_confirmation_names_each_day_once_and_at_most_366(edge: Edge) -> None:
    twice = {"confirmation_id": "pc", "days": ["2025-05-01", "2025-05-02", "2025-05-01"]}
    path = "/cadres/c1/presence-confirmations"
    assert_invalid(edge.send("POST", path, twice, headers=TOWNSHIP, expect=422), "body", "days")
    days = [str(date(2024, 1, 1) + timedelta(days=n)) for n in range(367)]
    many = {"confirmation_id": "pc", "days": days}
    assert_invalid(edge.send("POST", path, many, headers=TOWNSHIP, expect=422), "body", "days")
    assert await edge.stored() == 0


async def test_an_invalid_item_of_a_batch_never_echoes_an_invalid_id(edge: Edge) -> None:
    items = [{"check_in_id": "=cmd|x", "occurred_at": "2025-05-01T08:00:00Z"}]
    batch = edge.as_cadre("c1", "POST", "/check-ins/batch", {"items": items}, expect=200)
    [item] = batch["items"]
    assert (item["status"], item["check_in_id"]) == ("refused", None)
    assert_invalid(item["problem"], "check_in_id")


# --- periods not over -------------------------------------------------------------------------


async def test_a_diary_for_a_day_to_come_is_refused_and_one_out_of_the_window_invalid(
    edge: Edge,
) -> None:
    far = {"entry_id": "d1", "day": "9999-12-31", "text": "x"}
    assert_invalid(edge.as_cadre("c1", "POST", "/diary", far, expect=422), "body", "day")
    for day in ("2099-12-31", str(TODAY + timedelta(days=1))):
        body = {"entry_id": "d1", "day": day, "text": "x"}
        problem = edge.as_cadre("c1", "POST", "/diary", body, expect=422)
        assert_refused(problem, 422, FUTURE, "evidence_from_the_future")
        assert (problem["when"], problem["now"]) == (day, str(TODAY))
    today = {"entry_id": "d1", "day": str(TODAY), "text": "x"}
    assert edge.as_cadre("c1", "POST", "/diary", today)["event_types"] == [
        "attendance.DiaryEntryWritten"
    ]


async def test_a_visit_confirmation_or_spot_check_for_a_day_to_come_is_refused(
    edge: Edge,
) -> None:
    tomorrow = str(TODAY + timedelta(days=1))
    visit = {"visit_id": "v1", "household_id": "h1", "visited_on": tomorrow}
    refused = edge.as_cadre("c1", "POST", "/visits", visit, expect=422)
    assert_refused(refused, 422, FUTURE, "evidence_from_the_future")
    confirmation = {"confirmation_id": "pc", "days": [str(TODAY), tomorrow]}
    refused = edge.send(
        "POST", "/cadres/c1/presence-confirmations", confirmation, headers=TOWNSHIP, expect=422
    )
    assert_refused(refused, 422, FUTURE, "evidence_from_the_future")
    check = {"spot_check_id": "sc", "day": tomorrow, "result": "absent"}
    refused = edge.send("POST", "/cadres/c1/spot-checks", check, headers=TOWNSHIP, expect=422)
    assert_refused(refused, 422, FUTURE, "evidence_from_the_future")
    assert await edge.stored() == 0


FAR = "2099-12-31"


@pytest.mark.parametrize(
    ("role", "path", "body"),
    [
        ("cadre", "/diary", {"entry_id": "d1", "day": FAR, "text": "x"}),
        ("cadre", "/visits", {"visit_id": "v1", "household_id": "h1", "visited_on": FAR}),
        ("cadre", "/check-ins", {"check_in_id": "c1", "occurred_at": f"{FAR}T00:00:00Z"}),
        ("township", "/presence-confirmations", {"confirmation_id": "pc", "days": [FAR]}),
        ("township", "/spot-checks", {"spot_check_id": "sc", "day": FAR, "result": "absent"}),
    ],
    ids=["diary", "visit", "check-in", "confirmation", "spot check"],
)
async def test_a_day_to_come_is_refused_as_such_even_off_post(
    edge: Edge, role: str, path: str, body: dict[str, Any]
) -> None:
    """Whatever the replica knows of the cadre: no retryable refusal for a day to come."""
    headers = bearer(
        role, county=COUNTY, township="t1", cadre="nobody" if role == "cadre" else None
    )
    refused = edge.send("POST", f"/cadres/nobody{path}", body, headers=headers, expect=422)
    assert_refused(refused, 422, FUTURE, "evidence_from_the_future")
    assert refused["retryable"] is False


async def test_a_batch_refuses_an_item_to_come_as_such_even_off_post(edge: Edge) -> None:
    items = [
        {"check_in_id": "later", "occurred_at": f"{FAR}T00:00:00Z"},
        {"check_in_id": "before", "occurred_at": "2025-05-01T01:00:00Z"},
    ]
    batch = edge.as_cadre("nobody", "POST", "/check-ins/batch", {"items": items}, expect=200)
    assert [item["problem"]["code"] for item in batch["items"]] == [
        "evidence_from_the_future",
        "no_active_assignment",
    ]


@pytest.mark.parametrize(
    ("ahead", "status"), [(timedelta(minutes=4), 201), (timedelta(minutes=6), 422)]
)
async def test_a_check_in_may_be_a_few_minutes_ahead_of_the_clock(
    edge: Edge, ahead: timedelta, status: int
) -> None:
    body = {"check_in_id": "ci", "occurred_at": (NOW + ahead).isoformat()}
    answer = edge.as_cadre("c1", "POST", "/check-ins", body, expect=status)
    if status == 422:
        assert_refused(answer, 422, FUTURE, "evidence_from_the_future")
        assert answer["now"] == NOW.isoformat()


async def test_leave_may_be_asked_for_days_to_come(edge: Edge) -> None:
    body = {
        "leave_id": "l1",
        "kind": "personal",
        "first_day": "2025-09-01",
        "last_day": "2025-09-02",
    }
    assert edge.as_cadre("c1", "POST", "/leave", body)["event_types"] == [
        "attendance.LeaveRequested"
    ]


async def test_a_month_not_over_is_not_closed_for_a_cadre_or_a_county(edge: Edge) -> None:
    for month in ("2025-05", "2099-12"):
        one = edge.send("POST", f"/cadres/c1/months/{month}/close", headers=ADMIN, expect=409)
        assert_refused(one, 409, NOT_OVER, "month_not_over")
        county = edge.send(
            "POST", f"/counties/{COUNTY}/months/{month}/close", headers=ADMIN, expect=409
        )
        assert_refused(county, 409, NOT_OVER, "month_not_over")
    # Even for a cadre the replica knows no post of: not a retryable refusal.
    nobody = edge.send("POST", "/cadres/nobody/months/2025-05/close", headers=ADMIN, expect=409)
    assert (nobody["code"], nobody["retryable"]) == ("month_not_over", False)
    assert await edge.stored() == 0
    over = edge.send("POST", "/cadres/c1/months/2025-04/close", headers=ADMIN, expect=201)
    assert over["event_types"] == ["attendance.MonthClosed"]


# --- the replica's gaps ----------------------------------------------------------------------


async def test_the_replicas_gaps_are_retryable_and_name_the_cadre_and_the_day_by_id() -> None:
    edge = Edge(post("c1", township=""))
    body = {"check_in_id": "ci", "occurred_at": "2025-05-01T01:00:00Z"}
    unknown = edge.as_cadre("nobody", "POST", "/check-ins", body, expect=409)
    assert (unknown["code"], unknown["retryable"]) == ("no_active_assignment", True)
    assert (unknown["cadre_id"], unknown["when"]) == ("nobody", "2025-05-01")
    assert unknown["detail"] == (
        "cadre 'nobody' has no assignment covering 2025-05-01 in this service's replica of dispatch"
    )
    village = edge.as_cadre("c1", "POST", "/check-ins", body, expect=409)
    assert (village["code"], village["retryable"]) == ("village_not_replicated", True)
    assert (village["cadre_id"], village["village_id"], village["when"]) == (
        "c1",
        "v-",
        "2025-05-01",
    )
    assert village["detail"] == (
        "the village 'v-' of the assignment of cadre 'c1' covering 2025-05-01 is not in this"
        " service's replica of dispatch yet"
    )


# --- reads ------------------------------------------------------------------------------------


def request_leave(edge: Edge, cadre_id: str, leave_id: str, first: str, last: str) -> None:
    body = {"leave_id": leave_id, "kind": "personal", "first_day": first, "last_day": last}
    edge.as_cadre(cadre_id, "POST", "/leave", body)


async def test_one_leave_request_is_read_or_unknown(edge: Edge) -> None:
    request_leave(edge, "c1", "l1", "2025-06-02", "2025-06-03")
    read = edge.send("GET", "/cadres/c1/leave/l1", headers=TOWNSHIP, expect=200)
    assert (read["leave_id"], read["status"], read["days"], read["approval_level"]) == (
        "l1",
        "pending",
        2,
        "township",
    )
    unknown = edge.send("GET", "/cadres/c1/leave/l2", headers=TOWNSHIP, expect=404)
    assert_refused(unknown, 404, PROBLEM_TYPE_BASE + "attendance/unknown-leave", "unknown_leave")


async def test_the_county_lists_its_leave_requests_by_status_a_page_at_a_time(
    edge: Edge,
) -> None:
    request_leave(edge, "c1", "l1", "2025-06-10", "2025-06-11")
    request_leave(edge, "c1", "l2", "2025-06-01", "2025-06-06")  # county-level: 6 days
    request_leave(edge, "c2", "l1", "2025-07-01", "2025-07-01")
    request_leave(edge, "c3", "l1", "2025-06-20", "2025-06-20")  # township t2
    edge.send("POST", "/cadres/c2/leave/l1/approve", headers=TOWNSHIP, expect=200)
    path = f"/counties/{COUNTY}/leave"

    pending = edge.send("GET", path, headers=ADMIN, expect=200)
    assert [(i["cadre_id"], i["leave_id"]) for i in pending["items"]] == [
        ("c1", "l2"),
        ("c1", "l1"),
        ("c3", "l1"),
    ]
    assert pending["next"] is None
    assert pending["items"][2]["township"] == "t2"

    first = edge.send("GET", f"{path}?limit=2", headers=ADMIN, expect=200)
    assert [i["cursor"] for i in first["items"]] == [i["cursor"] for i in pending["items"][:2]]
    assert first["next"] == first["items"][-1]["cursor"]
    rest = edge.send("GET", f"{path}?limit=2&after={first['next']}", headers=ADMIN, expect=200)
    assert ([i["cadre_id"] for i in rest["items"]], rest["next"]) == (["c3"], None)

    mine = edge.send("GET", path, headers=TOWNSHIP, expect=200)
    assert [(i["cadre_id"], i["leave_id"]) for i in mine["items"]] == [("c1", "l2"), ("c1", "l1")]
    county_level = edge.send("GET", f"{path}?approval_level=county", headers=ADMIN, expect=200)
    assert [(i["cadre_id"], i["leave_id"]) for i in county_level["items"]] == [("c1", "l2")]
    approved = edge.send("GET", f"{path}?status=approved", headers=ADMIN, expect=200)
    assert [(i["cadre_id"], i["status"]) for i in approved["items"]] == [("c2", "approved")]

    other = edge.send("GET", "/counties/530103/leave", headers=ADMIN, expect=403)
    assert other["code"] == "forbidden_jurisdiction"
    cadre = bearer("cadre", county=COUNTY, cadre="c1")
    assert edge.send("GET", path, headers=cadre, expect=403)["type"].endswith("forbidden-role")
    bad = edge.send("GET", f"{path}?status=holiday&limit=0", headers=ADMIN, expect=422)
    assert {tuple(e["location"]) for e in bad["errors"]} == {
        ("query", "status"),
        ("query", "limit"),
    }


def test_a_leave_cursor_is_an_id_in_the_order_of_the_first_day() -> None:
    long_id = "x" * 128
    leave = Leave(
        leave_id=long_id,
        assignment_id="a",
        village_id="v",
        kind=LeaveKind.SICK,
        first_day=date(2099, 12, 31),
        last_day=date(2099, 12, 31),
        days=1,
        purpose="",
        approval_level=ApprovalLevel.TOWNSHIP,
        policy_version="p",
    )
    cursor = leave_cursor(long_id, leave)
    assert cursor.startswith("2099-12-31.")
    assert len(cursor) <= 128
    assert leave_cursor("a", leave) != leave_cursor("b", leave)
