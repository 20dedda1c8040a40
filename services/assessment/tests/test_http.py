"""Assessment against the real PostgreSQL and Kafka, with the real dispatch and attendance
services upstream: attendance facts flowing in and capping a proposed grade; a county round
refused over the share of 优秀, then finalised; quarterly assessments opening a 双约谈; the
lists; role and jurisdiction refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from zhucun.assessment.app import create_app as create_assessment
from zhucun.attendance.app import create_app as create_attendance
from zhucun.dispatch.app import create_app as create_dispatch
from zhucun.shared.testing import StaffedCounty, bearer, service_settings, wait_for

pytestmark = pytest.mark.integration


class System:
    """Dispatch, attendance and assessment, each with its own database, on one broker, and
    a county of five cadres staffed in dispatch."""

    def __init__(self, dispatch: TestClient, attendance: TestClient, assessment: TestClient):
        self.dispatch = dispatch
        self.attendance = attendance
        self.assessment = assessment
        self.staffed = StaffedCounty(dispatch, cadres=5)
        self.county = self.staffed.code
        self.cadres = self.staffed.cadres
        self.admin = bearer("org_admin", county=self.county)
        self.township = bearer("township", county=self.county, township="t1")

    def set_up_county(self) -> None:
        self.staffed.register()

    def wait(self, client: TestClient, path: str, ready: Callable[[Any], bool]) -> Any:
        """Poll a read until the replicas have caught up (they follow Kafka)."""

        def read() -> Any:
            response = client.get(path, headers=self.admin)
            return response.json() if response.status_code == 200 else None

        return wait_for(read, lambda body: body is not None and ready(body), what=f"{path} ready")

    def assess(self, method: str, path: str, expect: int, body: Any = None) -> Any:
        response = self.assessment.request(method, path, json=body, headers=self.admin)
        assert response.status_code == expect, response.text
        return response.json()


@pytest.fixture
def system(kafka_bootstrap: str, make_database: Callable[[], str]) -> Iterator[System]:
    apps = [
        create_dispatch(service_settings("dispatch", kafka_bootstrap, make_database())),
        create_attendance(service_settings("attendance", kafka_bootstrap, make_database())),
        create_assessment(service_settings("assessment", kafka_bootstrap, make_database())),
    ]
    with TestClient(apps[0]) as d, TestClient(apps[1]) as at, TestClient(apps[2]) as asm:
        system = System(d, at, asm)
        system.set_up_county()
        last = system.cadres[-1]
        system.wait(asm, f"/cadres/{last}/record", lambda body: True)
        system.wait(at, f"/cadres/{last}/leave", lambda body: True)
        yield system


def test_attendance_facts_cap_a_proposed_grade(system: System) -> None:
    absent, clean = system.cadres[0], system.cadres[1]
    for n, day in enumerate(["2025-03-04", "2025-06-17"]):
        response = system.attendance.post(
            f"/cadres/{absent}/spot-checks",
            json={"spot_check_id": f"sc-{n}", "day": day, "result": "absent"},
            headers=system.township,
        )
        assert response.status_code == 201, response.text
    # The two unexcused absences reach assessment's replica of attendance.
    facts = system.wait(
        system.assessment,
        f"/cadres/{absent}/attendance/2025",
        lambda body: body["unexcused_absences"] == 2,
    )
    assert facts == {"cadre_id": absent, "year": 2025, "unexcused_absences": 2}

    base = f"/counties/{system.county}/annual/2025"
    system.assess("POST", base, 201, {"round_id": "annual-2025"})
    capped = system.assess("PUT", f"{base}/proposals/{absent}", 200, {"grade": "excellent"})
    (proposal,) = capped["events"]
    assert proposal["proposed_grade"] == "excellent"
    assert proposal["grade"] == "basically_competent"
    assert proposal["cap"]["unexcused_absences"] == 2
    assert proposal["cap"]["best_allowed"] == "basically_competent"
    assert proposal["cap"]["reason"]
    uncapped = system.assess("PUT", f"{base}/proposals/{clean}", 200, {"grade": "excellent"})
    assert uncapped["events"][0]["grade"] == "excellent"
    assert uncapped["events"][0]["cap"] is None


def test_a_round_over_the_share_of_excellent_is_refused_then_finalised(system: System) -> None:
    base = f"/counties/{system.county}/annual/2025"
    system.assess("POST", base, 201, {"round_id": "annual-2025"})
    grades = ["excellent", "excellent", "competent", "competent", "basically_competent"]
    for cadre_id, grade in zip(system.cadres, grades, strict=True):
        system.assess("PUT", f"{base}/proposals/{cadre_id}", 200, {"grade": grade})

    # 5 cadres: at most floor(20% x 5) = 1 优秀.
    refused = system.assess("POST", f"{base}/finalise", 409)
    assert refused["type"].endswith("/assessment/excellent-share-exceeded")
    assert (refused["excellent"], refused["cadres_assessed"]) == (2, 5)
    assert "1" in refused["detail"]
    assert system.assess("GET", base, 200)["finalisation"] is None

    system.assess("PUT", f"{base}/proposals/{system.cadres[1]}", 200, {"grade": "competent"})
    final = system.assess("POST", f"{base}/finalise", 200)
    assert final["event_types"] == [
        "assessment.AnnualRoundFinalised",
        *["assessment.AnnualResultIssued"] * 5,
    ]
    summary = final["events"][0]
    assert (summary["excellent"], summary["excellent_cap"], summary["cadres_assessed"]) == (1, 1, 5)
    results = {e["cadre_id"]: e["grade"] for e in final["events"][1:]}
    assert results[system.cadres[0]] == "excellent"
    assert results[system.cadres[1]] == "competent"
    # A finalised round takes no more proposals.
    late = system.assess("PUT", f"{base}/proposals/{system.cadres[2]}", 409, {"grade": "excellent"})
    assert late["code"] == "round_already_finalised"


def test_a_quarterly_average_opens_the_double_admonition_and_the_lists(system: System) -> None:
    scores = [(95, 90, 90), (85, 80, 80), (70, 60, 60), (50, 40, 40), (88, 90, 90)]
    for cadre_id, (township, villagers, panel) in zip(system.cadres, scores, strict=True):
        response = system.assessment.put(
            f"/cadres/{cadre_id}/quarters/2025-Q2",
            json={
                "township_score": township,
                "villager_score": villagers,
                "county_panel_score": panel,
            },
            headers=system.township,
        )
        assert response.status_code == 201, response.text
    third = system.cadres[2]
    quarter = f"/counties/{system.county}/quarters/2025-Q2"
    obligations = system.assess("GET", f"{quarter}/obligations", 200)
    assert [o["cadre_id"] for o in obligations] == [third]
    obligation_id = obligations[0]["obligation_id"]
    for by in ("township", "sending_unit"):
        talk = system.assessment.post(
            f"{quarter}/obligations/{obligation_id}/talks",
            json={"cadre_id": third, "by": by, "held_on": "2025-07-10"},
            headers=system.township,
        )
        assert talk.status_code == 201, talk.text
    assert talk.json()["event_types"][-1] == "assessment.AdmonitionTalksCompleted"
    assert system.assess("GET", f"{quarter}/obligations", 200) == []

    lists = system.assess("POST", f"{quarter}/lists", 201, {"list_id": "2025-Q2"})
    published = lists["events"][0]
    assert published["red"][0]["cadre_id"] == system.cadres[0]
    assert published["blue"][0]["cadre_id"] == system.cadres[3]


def test_roles_and_jurisdiction_are_enforced(system: System) -> None:
    cadre_id = system.cadres[0]
    base = f"/counties/{system.county}/annual/2025"
    # A township may not run annual rounds; another county may not touch this one.
    as_township = system.assessment.post(base, json={"round_id": "x"}, headers=system.township)
    assert as_township.status_code == 403
    other_county = system.assessment.post(
        base, json={"round_id": "x"}, headers=bearer("org_admin", county="539999")
    )
    assert other_county.status_code == 403
    # A township of another township may not enter quarterly inputs here.
    elsewhere = system.assessment.put(
        f"/cadres/{cadre_id}/quarters/2025-Q2",
        json={"township_score": 90, "villager_score": 90, "county_panel_score": 90},
        headers=bearer("township", county=system.county, township="t2"),
    )
    assert elsewhere.status_code == 403
    # Auditors read, but do not write; cadres do neither here.
    auditor = bearer("auditor")
    assert system.assessment.get(f"/cadres/{cadre_id}/record", headers=auditor).status_code == 200
    assert (
        system.assessment.post(
            f"/cadres/{cadre_id}/sanctions",
            json={
                "sanction_id": "s1",
                "kind": "警告",
                "decided_on": "2025-05-01",
                "authority": "县纪委",
            },
            headers=auditor,
        ).status_code
        == 403
    )
    as_cadre = bearer("cadre", county=system.county, cadre=cadre_id)
    assert system.assessment.get(f"/cadres/{cadre_id}/record", headers=as_cadre).status_code == 403
    # Bad input: field-level errors, nothing stored.
    bad = system.assessment.put(
        f"/cadres/{cadre_id}/quarters/2025-Q2",
        json={"township_score": 120, "villager_score": "high"},
        headers=system.township,
    )
    assert bad.status_code == 422
    fields = {tuple(e["location"]) for e in bad.json()["errors"]}
    assert ("body", "township_score") in fields
    assert ("body", "county_panel_score") in fields
    assert (
        system.assess("GET", f"/counties/{system.county}/quarters/2025-Q2", 200)["assessments"]
        == {}
    )
