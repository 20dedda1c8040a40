"""The dispatch HTTP edge against the real PostgreSQL and Kafka: a county round end to end,
concurrent assignments of one cadre, the published events, and the refusals."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from zhucun.contracts.dispatch import SOURCE, TOPIC
from zhucun.dispatch.app import create_app
from zhucun.shared.service import service_runtime
from zhucun.shared.store import PostgresEventStore
from zhucun.shared.testing import (
    bearer,
    portal,
    read_topic,
    service_settings,
    wait_until_published,
)

pytestmark = pytest.mark.integration

FENCE = {"latitude": 25.04, "longitude": 102.71, "radius_m": 1500}


@pytest.fixture
def county() -> str:
    return f"53{random.randint(1000, 9999)}"


@pytest.fixture
def client(kafka_bootstrap: str, fresh_database: str) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings("dispatch", kafka_bootstrap, fresh_database))) as c:
        yield c


class Admin:
    """An org_admin of ``county`` talking to the API."""

    def __init__(self, client: TestClient, county: str) -> None:
        self.client = client
        self.county = county
        # One subject, so the events' actor is known: ``org_admin-1:org_admin``.
        self.headers = bearer("org_admin", subject="org_admin-1", county=county)

    def post(self, path: str, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
        response = self.client.post(
            f"/counties/{self.county}{path}", json=body, headers=self.headers
        )
        assert response.status_code == expect, response.text
        return dict(response.json())

    def get(self, path: str, expect: int = 200) -> Any:
        response = self.client.get(f"/counties/{self.county}{path}", headers=self.headers)
        assert response.status_code == expect, response.text
        return response.json()


def village(village_id: str, *categories: str, township: str = "t1") -> dict[str, Any]:
    return {
        "village_id": village_id,
        "name": f"{village_id}村",
        "township": township,
        "categories": list(categories),
        "geofence": FENCE,
        "households": 300,
        "monitored_population": 50,
    }


def cadre(cadre_id: str, *, level: str = "county", kind: str = "line_department") -> dict[str, Any]:
    return {
        "cadre_id": cadre_id,
        "sending_unit": f"unit of {cadre_id}",
        "unit_kind": kind,
        "unit_level": level,
        "birth_year": 1985,
        "party_member_since": "2010-07-01",
        "rural_experience_years": 1,
        "skills": [],
    }


def assign(assignment_id: str, team_id: str, cadre_id: str, role: str = "member") -> dict[str, Any]:
    return {
        "assignment_id": assignment_id,
        "team_id": team_id,
        "cadre_id": cadre_id,
        "role": role,
        "term_start": "2025-04-01",
    }


def setup_round(admin: Admin) -> None:
    admin.post("/villages", village("v1", "weak_party_branch"))
    admin.post("/villages", village("v2", "lifted_out_of_poverty", township="t2"))
    for n, level in enumerate(["province", "city", "county", "county", "county", "city"], 1):
        admin.post("/cadres", cadre(f"c{n}", level=level))
    admin.post("/rounds", {"round_id": "r1", "name": "2025", "opened_on": "2025-03-01"})
    admin.post("/teams", {"team_id": "team1", "round_id": "r1", "village_id": "v1",
                          "formed_on": "2025-03-15"})  # fmt: skip
    admin.post("/teams", {"team_id": "team2", "round_id": "r1", "village_id": "v2",
                          "formed_on": "2025-03-15"})  # fmt: skip


KEY_FIELDS = {
    "dispatch.CadreRegistered": "cadre_id",
    "dispatch.CadreAssigned": "cadre_id",
    "dispatch.VillageRegistered": "village_id",
    "dispatch.TeamFormed": "village_id",
    "dispatch.RoundOpened": "county",
    "dispatch.RoundClosed": "county",
}


def test_a_county_round_end_to_end(client: TestClient, county: str, kafka_bootstrap: str) -> None:
    admin = Admin(client, county)
    setup_round(admin)
    first = admin.post("/assignments", assign("a1", "team1", "c1", "first_secretary"))
    assert first["event_types"] == ["dispatch.CadreAssigned"]
    assert first["stream_id"] == f"dispatch-county-{county}"
    admin.post("/assignments", assign("a2", "team1", "c2"))
    admin.post("/assignments", assign("a3", "team1", "c3"))
    admin.post("/assignments", assign("a4", "team2", "c4", "first_secretary"))
    admin.post("/assignments", assign("a5", "team2", "c5"))
    last = admin.post("/assignments", assign("a6", "team2", "c6"))
    assert isinstance(last["warnings"], list)
    closed = admin.post("/rounds/r1/close", {"round_id": "r1", "closed_on": "2025-04-30"}, 200)
    assert closed["event_types"] == ["dispatch.RoundClosed"]

    report = admin.get("/rounds/r1/report")
    assert report["teams"] == 2
    sent = {level["level"]: level["sent"] for level in report["levels"]}
    assert sent == {"province": 1, "city": 2, "county": 3}

    team = admin.get("/teams/team1")
    assert {m["cadre_id"] for m in team["members"]} == {"c1", "c2", "c3"}
    assert admin.get("/villages/v1")["weak_party_branch"] is True
    assert admin.get("/cadres/c1")["active_assignment"]["assignment_id"] == "a1"
    assert [a["assignment_id"] for a in admin.get("/cadres/c1/assignments")] == ["a1"]
    assert admin.get("/handovers") == []
    assert admin.get("/replacement-obligations") == []

    # Published on dispatch.events.v1 with the right keys and CloudEvents headers.
    wait_until_published(client)
    stored = portal(client).call(runtime_store(client).read_stream, f"dispatch-county-{county}")
    on_topic = asyncio.run(read_topic(kafka_bootstrap, TOPIC, source=SOURCE))
    published = {p.event.event_id: (p.key, p.event) for p in on_topic}
    for event in stored:
        key, on_topic_event = published[event.event_id]
        assert on_topic_event == event
        field = KEY_FIELDS[event.event_type]
        assert key == str(event.data[field]).encode()
        assert event.actor == "org_admin-1:org_admin"


def test_one_of_two_concurrent_assignments_of_a_cadre_wins(client: TestClient, county: str) -> None:
    admin = Admin(client, county)
    setup_round(admin)
    other = bearer("org_admin", subject="admin-2", county=county)
    results: list[httpx.Response] = []
    barrier = threading.Barrier(2)

    def send(body: dict[str, Any], headers: dict[str, str]) -> None:
        barrier.wait()
        results.append(client.post(f"/counties/{county}/assignments", json=body, headers=headers))

    threads = [
        threading.Thread(target=send, args=(assign("x1", "team1", "c3"), admin.headers)),
        threading.Thread(target=send, args=(assign("x2", "team2", "c3"), other)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in results) == [201, 409]
    refused = next(r for r in results if r.status_code == 409).json()
    assert refused["code"] == "cadre_already_assigned"
    assert refused["type"].endswith("/dispatch/cadre-already-assigned")
    stored = portal(client).call(runtime_store(client).read_stream, f"dispatch-county-{county}")
    assert [e.event_type for e in stored].count("dispatch.CadreAssigned") == 1


def runtime_store(client: TestClient) -> PostgresEventStore:
    return service_runtime(client.app).event_store()


def test_roles_and_jurisdiction(client: TestClient, county: str) -> None:
    admin = Admin(client, county)
    admin.post("/villages", village("v1"))
    path = f"/counties/{county}/villages"
    assert client.post(path, json=village("v2")).status_code == 401
    township = bearer("township", county=county, township="t1")
    refused = client.post(path, json=village("v2"), headers=township)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/forbidden-role")
    elsewhere = bearer("org_admin", county="539999")
    refused = client.post(path, json=village("v2"), headers=elsewhere)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/forbidden-jurisdiction")
    # Reads: the township of the village, an auditor; not another township.
    assert client.get(f"{path}/v1", headers=township).status_code == 200
    assert client.get(f"{path}/v1", headers=bearer("auditor")).status_code == 200
    other_township = bearer("township", county=county, township="t9")
    assert client.get(f"{path}/v1", headers=other_township).status_code == 403
    assert client.get(f"{path}/v1", headers=elsewhere).status_code == 403


def test_unknown_ids_are_404_and_invalid_input_422(client: TestClient, county: str) -> None:
    admin = Admin(client, county)
    for path in ["/villages/nope", "/cadres/nope", "/teams/nope", "/rounds/nope/report"]:
        problem = admin.get(path, expect=404)
        assert problem["code"].startswith("unknown_")
    problem = admin.post("/teams", {"team_id": "t", "round_id": "nope", "village_id": "v",
                                    "formed_on": "2025-03-15"}, 404)  # fmt: skip
    assert problem["code"] == "unknown_round"

    problem = admin.post("/villages", village("v1", "not_a_category"), 422)
    assert problem["type"].endswith("/validation-error")
    assert any(error["location"][:3] == ["body", "categories", 0] for error in problem["errors"])
    assert portal(client).call(runtime_store(client).read_all) == []


def test_recall_replacement_handover_reinforcement_leader_and_matching(
    client: TestClient, county: str
) -> None:
    admin = Admin(client, county)
    setup_round(admin)
    for n, team, role in [(1, "team1", "first_secretary"), (2, "team1", "member"),
                          (3, "team1", "member"), (4, "team2", "first_secretary"),
                          (5, "team2", "member"), (6, "team2", "member")]:  # fmt: skip
        admin.post("/assignments", assign(f"a{n}", team, f"c{n}", role))
    admin.post("/cadres", cadre("c7", kind="economic_department"))
    older = {**cadre("c8"), "birth_year": 1965}
    admin.post("/cadres", older)

    # 县配菜: only cadres not yet assigned in the round are candidates; 经济部门驻穷村 puts
    # the economic department's cadre first for a village lifted out of poverty, with reasons.
    ranked = admin.get("/rounds/r1/villages/v2/candidates")["candidates"]
    assert {c["cadre_id"] for c in ranked} == {"c7", "c8"}
    assert ranked[0]["cadre_id"] == "c7"
    assert ranked[0]["reasons"]
    assert ranked[0]["score"] > ranked[1]["score"]
    admin.post("/rounds/r1/close", {"round_id": "r1", "closed_on": "2025-04-30"}, 200)

    # Township team leader: t1 has three cadres on post.
    leader = {
        "appointment_id": "l1",
        "township": "t1",
        "cadre_id": "c1",
        "term_start": "2025-05-01",
    }
    assert admin.post("/township-leaders", leader)["event_types"] == [
        "dispatch.TownshipLeaderAppointed"
    ]

    # Recall opens a replacement obligation; the replacement closes it and opens a handover.
    recall = {"assignment_id": "a2", "reason": "连续两月在岗天数不足", "decision_id": "d-1",
              "recalled_on": "2025-06-01"}  # fmt: skip
    recalled = admin.post("/assignments/a2/recall", recall, 200)
    assert "dispatch.CadreRecalled" in recalled["event_types"]
    (obligation,) = admin.get("/replacement-obligations")
    assert (obligation["team_id"], obligation["vacated_assignment_id"]) == ("team1", "a2")
    oid = obligation["obligation_id"]
    replacement = {"obligation_id": oid, "assignment_id": "a7", "cadre_id": "c7",
                   "term_start": "2025-06-10"}  # fmt: skip
    admin.post(f"/replacement-obligations/{oid}/replacement", replacement)
    assert admin.get("/replacement-obligations") == []
    (handover,) = admin.get("/handovers")
    assert (handover["predecessor_cadre_id"], handover["successor_cadre_id"]) == ("c2", "c7")
    assert len(handover["outstanding_items"]) == 5
    hid = handover["handover_id"]
    for item in handover["outstanding_items"]:
        body = {"handover_id": hid, "item": item, "completed_on": "2025-06-20"}
        admin.post(f"/handovers/{hid}/items", body, 200)
    assert admin.get("/handovers") == []
    again = {"handover_id": hid, "item": "training", "completed_on": "2025-06-21"}
    assert admin.post(f"/handovers/{hid}/items", again, 409)["status"] == 409

    # 增派 after the round closed; an older cadre is accepted with the warning on record.
    body = {"assignment_id": "a8", "team_id": "team2", "cadre_id": "c8", "term_start": "2025-07-01"}
    reinforced = admin.post("/teams/team2/reinforcements", body)
    assert "age_above_normal_limit" in {w["code"] for w in reinforced["warnings"]}
    assert "c8" in {m["cadre_id"] for m in admin.get("/teams/team2")["members"]}
    assert admin.get("/cadres/c2")["active_assignment"] is None
