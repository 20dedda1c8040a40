"""The dispatch HTTP edge against the real PostgreSQL and Kafka: a county round end to end,
concurrent assignments of one cadre, the published events, and the refusals."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi.testclient import TestClient
from pydantic import SecretStr

from zhucun.dispatch.app import SOURCE, TOPIC, create_app
from zhucun.shared.auth import mint_token
from zhucun.shared.envelope import RecordedEvent, from_kafka
from zhucun.shared.service import ServiceRuntime
from zhucun.shared.settings import AuthSettings, KafkaSettings, PostgresSettings, ServiceSettings

pytestmark = pytest.mark.integration

AUTH = AuthSettings()
FENCE = {"latitude": 25.04, "longitude": 102.71, "radius_m": 1500}


def token(role: str = "org_admin", *, county: str | None = None, **claims: str) -> str:
    return mint_token(AUTH, subject=f"{role}-1", role=role, county=county, **claims)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def county() -> str:
    return f"53{random.randint(1000, 9999)}"


@pytest.fixture
def client(kafka_bootstrap: str, fresh_database: str) -> Iterator[TestClient]:
    settings = ServiceSettings(
        service_name="dispatch",
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=2),
        postgres=PostgresSettings(dsn=SecretStr(fresh_database)),
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


class Admin:
    """An org_admin of ``county`` talking to the API."""

    def __init__(self, client: TestClient, county: str) -> None:
        self.client = client
        self.county = county
        self.headers = bearer(token(county=county))

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


async def read_topic(bootstrap: str) -> list[tuple[bytes, RecordedEvent]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([TOPIC])
    finally:
        await admin.close()
    numbers = sorted(p["partition"] for p in described["partitions"])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in numbers]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[tuple[bytes, RecordedEvent]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in partitions])

        while await behind():
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for r in batch:
                    headers = dict(r.headers)
                    if headers.get("ce_source") != SOURCE.encode():
                        continue
                    event, _ = from_kafka(r.headers, r.value)
                    assert r.key is not None
                    records.append((r.key, event))
        return records
    finally:
        await consumer.stop()


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
    runtime: ServiceRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    assert runtime.relay is not None
    deadline = time.monotonic() + 20
    while client.portal.call(runtime.relay.lag) and time.monotonic() < deadline:
        time.sleep(0.05)
    stored = client.portal.call(runtime.event_store().read_stream, f"dispatch-county-{county}")
    published = {e.event_id: (key, e) for key, e in asyncio.run(read_topic(kafka_bootstrap))}
    for event in stored:
        key, on_topic = published[event.event_id]
        assert on_topic == event
        field = KEY_FIELDS[event.event_type]
        assert key == str(event.data[field]).encode()
        assert event.actor == "org_admin-1:org_admin"


def test_one_of_two_concurrent_assignments_of_a_cadre_wins(client: TestClient, county: str) -> None:
    admin = Admin(client, county)
    setup_round(admin)
    other = bearer(mint_token(AUTH, subject="admin-2", role="org_admin", county=county))
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
    stored = client.portal.call(runtime_store(client).read_stream, f"dispatch-county-{county}")
    assert [e.event_type for e in stored].count("dispatch.CadreAssigned") == 1


def runtime_store(client: TestClient) -> Any:
    runtime: ServiceRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime.event_store()


def test_roles_and_jurisdiction(client: TestClient, county: str) -> None:
    admin = Admin(client, county)
    admin.post("/villages", village("v1"))
    path = f"/counties/{county}/villages"
    assert client.post(path, json=village("v2")).status_code == 401
    township = bearer(token("township", county=county, township="t1"))
    refused = client.post(path, json=village("v2"), headers=township)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/forbidden-role")
    elsewhere = bearer(token(county="539999"))
    refused = client.post(path, json=village("v2"), headers=elsewhere)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/forbidden-jurisdiction")
    # Reads: the township of the village, an auditor; not another township.
    assert client.get(f"{path}/v1", headers=township).status_code == 200
    assert client.get(f"{path}/v1", headers=bearer(token("auditor"))).status_code == 200
    other_township = bearer(token("township", county=county, township="t9"))
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
    assert client.portal.call(runtime_store(client).read_all) == []


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
