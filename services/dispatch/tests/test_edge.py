"""The dispatch HTTP edge without PostgreSQL or Kafka: the service's app with its use cases
on the in-memory event store (the lifespan never runs).

What the edge owns: the bounds of every body and path (the hand-found cases of issue 15 are
refused with a 422 ``validation-error`` naming the field, and nothing is stored), the
county's paginated lists, and the warnings of a round's close.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from zhucun.contracts.dispatch.events import registry
from zhucun.dispatch.app import create_app
from zhucun.dispatch.application import Dispatch
from zhucun.dispatch.domain import OpenRound
from zhucun.dispatch.domain.commands import RoundOpening
from zhucun.dispatch.http import OpenRoundBody, _in_county
from zhucun.shared.commands import CommandPath, StateCache
from zhucun.shared.http import provide_use_cases
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.policy import PolicyBook
from zhucun.shared.problems import PROBLEM_TYPE_BASE
from zhucun.shared.testing import bearer

pytestmark = pytest.mark.unit

BOOK = PolicyBook.load(Path(__file__).resolve().parents[3] / "policies")
COUNTY = "513427"
STREAM = f"dispatch-county-{COUNTY}"
ADMIN = bearer("org_admin", county=COUNTY)
VALIDATION_ERROR = PROBLEM_TYPE_BASE + "validation-error"
FENCE = {"latitude": 27.9, "longitude": 102.2, "radius_m": 1500}


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def client(store: InMemoryEventStore) -> TestClient:
    app = create_app()
    path = CommandPath(store, registry, StateCache())
    dispatch = Dispatch(lambda: path, BOOK, today=lambda: date(2025, 2, 1))
    provide_use_cases(app, lambda: dispatch)
    return TestClient(app)  # not entered: no lifespan, no database


class Admin:
    """An org_admin of ``COUNTY`` talking to the API."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def send(
        self, method: str, path: str, body: dict[str, Any] | None = None, expect: int = 201
    ) -> Any:
        response = self.client.request(
            method, f"/counties/{COUNTY}{path}", json=body, headers=ADMIN
        )
        assert response.status_code == expect, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any], expect: int = 201) -> Any:
        return self.send("POST", path, body, expect)

    def get(self, path: str, expect: int = 200, headers: dict[str, str] = ADMIN) -> Any:
        response = self.client.get(f"/counties/{COUNTY}{path}", headers=headers)
        assert response.status_code == expect, response.text
        return response.json()


@pytest.fixture
def admin(client: TestClient) -> Admin:
    return Admin(client)


def village(village_id: str, township: str = "t1", **extra: Any) -> dict[str, Any]:
    return {
        "village_id": village_id,
        "name": f"{village_id}村",
        "township": township,
        "categories": [],
        "geofence": FENCE,
        "households": 300,
        "monitored_population": 50,
        **extra,
    }


def cadre(cadre_id: str, level: str = "county", **extra: Any) -> dict[str, Any]:
    return {
        "cadre_id": cadre_id,
        "sending_unit": f"unit of {cadre_id}",
        "unit_kind": "line_department",
        "unit_level": level,
        "birth_year": 1985,
        "party_member_since": "2010-07-01",
        "rural_experience_years": 1,
        "skills": [],
        **extra,
    }


def assignment(assignment_id: str, team_id: str, cadre_id: str, role: str = "member") -> Any:
    return {
        "assignment_id": assignment_id,
        "team_id": team_id,
        "cadre_id": cadre_id,
        "role": role,
        "term_start": "2025-04-01",
    }


def invalid(response: Any, *location: str | int) -> dict[str, Any]:
    """The 422 validation problem of ``response``, whose errors name ``location``."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["type"] == VALIDATION_ERROR
    assert [error["location"] for error in problem["errors"]] == [list(location)]
    return problem


async def stored(store: InMemoryEventStore) -> list[str]:
    return [e.event_type for e in await store.read_all()]


# --- bounds: the hand-found cases of issue 15 -----------------------------------------------

RLO, ZWSP = "\u202e", "\u200b"


@pytest.mark.parametrize(
    ("change", "location"),
    [
        # A 10 MB name once stopped the relay for every county (the broker refused it).
        ({"name": "x" * 1_000_000}, ("name",)),
        ({"name": "x" * 201}, ("name",)),
        ({"name": ""}, ("name",)),
        ({"name": "村\x00"}, ("name",)),
        ({"name": f"村{RLO}"}, ("name",)),
        # A radius of 10^12 m stalled the replicas (int32) for five minutes.
        ({"geofence": {**FENCE, "radius_m": 10**12}}, ("geofence", "radius_m")),
        ({"geofence": {**FENCE, "radius_m": 0}}, ("geofence", "radius_m")),
        ({"geofence": {**FENCE, "latitude": True}}, ("geofence", "latitude")),
        # 10^30 households: the canonical JSON of the hash chain refused it (a 500).
        ({"households": 10**30}, ("households",)),
        ({"households": True}, ("households",)),
        ({"households": "300"}, ("households",)),
        ({"monitored_population": -1}, ("monitored_population",)),
        ({"village_id": "v\x00"}, ("village_id",)),
        ({"village_id": f"{RLO}v1"}, ("village_id",)),
        ({"village_id": f"v{ZWSP}1"}, ("village_id",)),
        ({"village_id": '=HYPERLINK("x")'}, ("village_id",)),
        ({"village_id": "+v1"}, ("village_id",)),
        ({"village_id": "v" * 129}, ("village_id",)),
        ({"township": "@t1"}, ("township",)),
        ({"categories": ["border", "border"]}, ("categories",)),
    ],
)
async def test_a_village_out_of_bounds_is_refused_and_stores_nothing(
    client: TestClient, store: InMemoryEventStore, change: dict[str, Any], location: tuple[str]
) -> None:
    body = {**village("v1"), **change}
    response = client.post(f"/counties/{COUNTY}/villages", json=body, headers=ADMIN)
    invalid(response, "body", *location)
    assert await stored(store) == []


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"cadre_id": '=HYPERLINK("x")'}, ("cadre_id",)),
        ({"cadre_id": f"c{ZWSP}1"}, ("cadre_id",)),
        ({"cadre_id": "c1\x00"}, ("cadre_id",)),
        ({"sending_unit": "省农业\u2028农村厅"}, ("sending_unit",)),
        ({"birth_year": True}, ("birth_year",)),
        ({"birth_year": 1939}, ("birth_year",)),
        ({"party_member_since": "1921-06-30"}, ("party_member_since",)),
        ({"rural_experience_years": 61}, ("rural_experience_years",)),
        ({"skills": ["law", "law"]}, ("skills",)),
    ],
)
async def test_a_cadre_out_of_bounds_is_refused_and_stores_nothing(
    client: TestClient, store: InMemoryEventStore, change: dict[str, Any], location: tuple[str]
) -> None:
    response = client.post(
        f"/counties/{COUNTY}/cadres", json={**cadre("c1"), **change}, headers=ADMIN
    )
    invalid(response, "body", *location)
    assert await stored(store) == []


@pytest.mark.parametrize(
    ("change", "location"),
    [
        # Both were 500s: the body was laxer than the command built from it in the route.
        ({"round_id": ""}, ("round_id",)),
        ({"name": ""}, ("name",)),
        ({"name": "   "}, ("name",)),
        ({"round_id": "r 1"}, ("round_id",)),
        ({"opened_on": "1999-12-31"}, ("opened_on",)),
        ({"opened_on": "2100-01-01"}, ("opened_on",)),
    ],
)
async def test_a_round_out_of_bounds_is_refused_and_stores_nothing(
    client: TestClient, store: InMemoryEventStore, change: dict[str, Any], location: tuple[str]
) -> None:
    body = {"round_id": "r1", "name": "2025年第一批", "opened_on": "2025-03-01", **change}
    response = client.post(f"/counties/{COUNTY}/rounds", json=body, headers=ADMIN)
    invalid(response, "body", *location)
    assert await stored(store) == []


async def test_other_bodies_are_bounded_too(
    admin: Admin, client: TestClient, store: InMemoryEventStore
) -> None:
    admin.post("/villages", village("v1"))
    before = await stored(store)
    recall = {"assignment_id": "a1", "reason": "", "recalled_on": "2025-06-01"}
    invalid(client.post(f"/counties/{COUNTY}/assignments/a1/recall", json=recall, headers=ADMIN),
            "body", "reason")  # fmt: skip
    too_long = {**recall, "reason": "x" * 5_001}
    invalid(
        client.post(f"/counties/{COUNTY}/assignments/a1/recall", json=too_long, headers=ADMIN),
        "body",
        "reason",
    )
    long_id = assignment("a" * 117, "team1", "c1")
    invalid(client.post(f"/counties/{COUNTY}/assignments", json=long_id, headers=ADMIN),
            "body", "assignment_id")  # fmt: skip
    needs = {"village_id": "v1", "needs": ["law", "law"], "declared_on": "2025-03-01"}
    invalid(client.put(f"/counties/{COUNTY}/villages/v1/needs", json=needs, headers=ADMIN),
            "body", "needs")  # fmt: skip
    team = {"team_id": "team1", "round_id": "r1", "village_id": "v1", "formed_on": "9999-12-31"}
    invalid(client.post(f"/counties/{COUNTY}/teams", json=team, headers=ADMIN),
            "body", "formed_on")  # fmt: skip
    assert await stored(store) == before


@pytest.mark.parametrize(
    "bad_id",
    ['=HYPERLINK("x")', f"{RLO}v1", f"v{ZWSP}1", "v\x00", "-v1", "v" * 129],
)
def test_an_id_in_a_path_out_of_the_pattern_is_invalid(client: TestClient, bad_id: str) -> None:
    response = client.get(f"/counties/{COUNTY}/villages/{quote(bad_id)}", headers=ADMIN)
    invalid(response, "path", "village_id")
    body = {"round_id": bad_id, "closed_on": "2025-04-30"}
    closing = client.post(
        f"/counties/{COUNTY}/rounds/{quote(bad_id)}/close", json=body, headers=ADMIN
    )
    assert closing.status_code == 422
    locations = [error["location"] for error in closing.json()["errors"]]
    assert ["path", "round_id"] in locations


def test_a_command_the_edge_cannot_build_is_invalid_input_not_an_error() -> None:
    # Unreachable through the routes (a body has its command's bounds and the path's county
    # its pattern), kept so that a body laxer than its command is never again a 500.
    body = OpenRoundBody(round_id="r1", name="2025", opened_on=date(2025, 3, 1))
    with pytest.raises(RequestValidationError) as refused:
        _in_county(OpenRound, body, "not a county")
    assert [error["loc"] for error in refused.value.errors()] == [("path", "county")]
    lax = RoundOpening.model_construct(round_id="", name="2025", opened_on=date(2025, 3, 1))
    with pytest.raises(RequestValidationError) as refused:
        _in_county(OpenRound, lax, COUNTY)
    assert [error["loc"] for error in refused.value.errors()] == [("body", "round_id")]


# --- lists ----------------------------------------------------------------------------------


def seven_of_everything(admin: Admin) -> None:
    """Villages v1..v7 (odd ones in township t1, even in t2), cadres c1..c7, rounds r1..r6
    closed and r7 open, teams team1..team7 of r7 (one per village), assignments a1..a7
    (cadre n to team n)."""
    for n in range(1, 8):
        admin.post("/villages", village(f"v{n}", township="t1" if n % 2 else "t2"))
        admin.post("/cadres", cadre(f"c{n}"))
    for n in range(1, 8):
        opened = f"2025-03-{n:02d}"
        admin.post("/rounds", {"round_id": f"r{n}", "name": f"第{n}批", "opened_on": opened})
        if n < 7:
            admin.post(f"/rounds/r{n}/close", {"round_id": f"r{n}", "closed_on": opened}, 200)
    for n in range(1, 8):
        team = {"team_id": f"team{n}", "round_id": "r7", "village_id": f"v{n}",
                "formed_on": "2025-03-15"}  # fmt: skip
        admin.post("/teams", team)
        admin.post("/assignments", assignment(f"a{n}", f"team{n}", f"c{n}"))


@pytest.mark.parametrize(
    ("path", "key", "stem"),
    [
        ("/villages", "village_id", "v"),
        ("/cadres", "cadre_id", "c"),
        ("/rounds", "round_id", "r"),
        ("/teams", "team_id", "team"),
        ("/assignments", "assignment_id", "a"),
    ],
)
def test_a_county_list_pages_through_its_items_in_id_order(
    admin: Admin, path: str, key: str, stem: str
) -> None:
    seven_of_everything(admin)
    first = admin.get(f"{path}?limit=3")
    assert [item[key] for item in first["items"]] == [f"{stem}1", f"{stem}2", f"{stem}3"]
    assert first["next"] == f"{stem}3"
    second = admin.get(f"{path}?limit=3&after={first['next']}")
    assert [item[key] for item in second["items"]] == [f"{stem}4", f"{stem}5", f"{stem}6"]
    assert second["next"] == f"{stem}6"
    last = admin.get(f"{path}?limit=3&after={second['next']}")
    assert [item[key] for item in last["items"]] == [f"{stem}7"]
    assert last["next"] is None
    everything = admin.get(path)
    assert len(everything["items"]) == 7
    assert everything["next"] is None


def test_the_lists_show_their_views(admin: Admin) -> None:
    seven_of_everything(admin)
    (round_,) = admin.get("/rounds?after=r6")["items"]
    assert round_ == {"round_id": "r7", "county": COUNTY, "name": "第7批",
                      "opened_on": "2025-03-07", "closed_on": None, "open": True}  # fmt: skip
    assert admin.get("/rounds?limit=1")["items"][0]["closed_on"] == "2025-03-01"
    (team,) = admin.get("/teams?after=team6")["items"]
    assert (team["township"], [m["cadre_id"] for m in team["members"]]) == ("t1", ["c7"])
    cadre_c1 = admin.get("/cadres?limit=1")["items"][0]
    assert cadre_c1["active_assignment"]["assignment_id"] == "a1"


def test_a_township_reader_lists_what_they_may_read(admin: Admin, client: TestClient) -> None:
    seven_of_everything(admin)
    admin.post("/cadres", cadre("c8"))  # not on post: county-wide
    t1 = bearer("township", county=COUNTY, township="t1")

    def ids(path: str, key: str) -> list[str]:
        return [item[key] for item in admin.get(path, headers=t1)["items"]]

    assert ids("/villages", "village_id") == ["v1", "v3", "v5", "v7"]
    assert ids("/teams", "team_id") == ["team1", "team3", "team5", "team7"]
    assert ids("/assignments", "assignment_id") == ["a1", "a3", "a5", "a7"]
    assert ids("/cadres", "cadre_id") == ["c1", "c3", "c5", "c7", "c8"]
    assert len(ids("/rounds", "round_id")) == 7
    auditor = bearer("auditor")
    assert len(admin.get("/villages", headers=auditor)["items"]) == 7
    elsewhere = bearer("org_admin", county="539999")
    refused = admin.get("/villages", expect=403, headers=elsewhere)
    assert refused["type"] == PROBLEM_TYPE_BASE + "forbidden-jurisdiction"
    assert client.get(f"/counties/{COUNTY}/villages").status_code == 401


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("limit=0", ("query", "limit")),
        ("limit=501", ("query", "limit")),
        ("limit=true", ("query", "limit")),
        ("after=%3Dv1", ("query", "after")),
        (f"after={quote(RLO)}v1", ("query", "after")),
        ("after=v%20", ("query", "after")),
    ],
)
def test_a_page_query_out_of_bounds_is_invalid(
    client: TestClient, query: str, location: tuple[str, str]
) -> None:
    for path in ["/villages", "/cadres", "/rounds", "/teams", "/assignments"]:
        response = client.get(f"/counties/{COUNTY}{path}?{query}", headers=ADMIN)
        invalid(response, *location)


def test_the_largest_page_is_allowed(admin: Admin) -> None:
    admin.post("/villages", village("v1"))
    page = admin.get("/villages?limit=500")
    assert ([v["village_id"] for v in page["items"]], page["next"]) == (["v1"], None)


# --- a round's close answers its warnings ---------------------------------------------------


def staff(admin: Admin, round_id: str, team_id: str, cadres: list[tuple[str, str]]) -> None:
    """A team of ``cadres`` (id, unit level; the first is first secretary) for v1 in the
    open ``round_id``."""
    opened = {"r1": "2025-03-01", "r2": "2025-05-01"}[round_id]
    admin.post("/rounds", {"round_id": round_id, "name": round_id, "opened_on": opened})
    admin.post("/teams", {"team_id": team_id, "round_id": round_id, "village_id": "v1",
                          "formed_on": opened})  # fmt: skip
    for n, (cadre_id, level) in enumerate(cadres):
        admin.post("/cadres", cadre(cadre_id, level))
        body = assignment(
            f"a-{cadre_id}", team_id, cadre_id, "first_secretary" if n == 0 else "member"
        )
        body["term_start"] = opened
        admin.post("/assignments", body)


async def test_closing_a_round_that_breaks_the_principle_answers_its_warnings(
    admin: Admin, store: InMemoryEventStore
) -> None:
    admin.post("/villages", village("v1"))
    staff(admin, "r1", "team1", [("c1", "province"), ("c2", "province"), ("c3", "county")])
    first = admin.post("/rounds/r1/close", {"round_id": "r1", "closed_on": "2025-04-30"}, 200)
    assert first["warnings"] == []  # a county's first round has nothing to compare with
    # 省 2 -> 1 (fell), 县 1 -> 2 (rose), 市 0 -> 0.
    staff(admin, "r2", "team2", [("c4", "province"), ("c5", "county"), ("c6", "county")])

    closed = admin.post("/rounds/r2/close", {"round_id": "r2", "closed_on": "2025-05-31"}, 200)

    expected = [
        {
            "code": "unit_level_decreased",
            "message": "省市只增不减: province units sent 1 to round 'r2', against 2 to round 'r1'",
        },
        {
            "code": "county_level_increased",
            "message": "县级只减不增: county units sent 2 to round 'r2', against 1 to round 'r1'",
        },
    ]
    assert closed["event_types"] == ["dispatch.RoundClosed"]
    assert closed["warnings"] == expected
    # The same warnings are on the recorded event.
    recorded = (await store.read_stream(STREAM))[-1]
    assert (recorded.event_type, recorded.data["warnings"]) == ("dispatch.RoundClosed", expected)
    report = admin.get("/rounds/r2/report")
    assert [level["level"] for level in report["levels"] if level["violation"]] == [
        "province",
        "county",
    ]
