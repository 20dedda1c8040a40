"""Attendance against the real PostgreSQL and Kafka, with the real dispatch service upstream:
dispatch events -> the replica -> check-ins accepted; the unassigned refused (retryably); an
idempotent repeat; a batch with mixed items; a scripted month closed; roles and jurisdiction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from zhucun.attendance.app import create_app as create_attendance
from zhucun.contracts.attendance import SOURCE as ATTENDANCE_SOURCE
from zhucun.contracts.attendance import TOPIC as ATTENDANCE_TOPIC
from zhucun.dispatch.app import create_app as create_dispatch
from zhucun.shared.testing import (
    StaffedCounty,
    bearer,
    read_topic,
    service_settings,
    wait_for,
    wait_until_published,
)

pytestmark = pytest.mark.integration

#: Around the staffed county's village (its geofence: 1000 m around 25.04, 102.71); 0.001
#: degree of latitude is about 111 m.
INSIDE = {"latitude": 25.045, "longitude": 102.71}  # ~556 m north
OUTSIDE = {"latitude": 25.06, "longitude": 102.71}  # ~2.2 km north


@pytest.fixture
def services(
    kafka_bootstrap: str, make_database: Callable[[], str]
) -> Iterator[tuple[TestClient, TestClient]]:
    dispatch = create_dispatch(service_settings("dispatch", kafka_bootstrap, make_database()))
    attendance = create_attendance(service_settings("attendance", kafka_bootstrap, make_database()))
    with TestClient(dispatch) as dispatch_client, TestClient(attendance) as attendance_client:
        yield dispatch_client, attendance_client


@pytest.fixture
def county(services: tuple[TestClient, TestClient]) -> StaffedCounty:
    dispatch, attendance = services
    county = StaffedCounty(
        dispatch,
        unassigned=1,
        opened_on="2025-03-01",
        formed_on="2025-03-15",
        term_start="2025-04-01",
        households=4,
        categories=("lifted_out_of_poverty",),
    ).register()
    # The replica learns the assignments from Kafka: wait until the last one is known.
    wait_until_replicated(attendance, county.cadres[-1], county)
    return county


def wait_until_replicated(attendance: TestClient, cadre_id: str, county: StaffedCounty) -> None:
    headers = bearer("org_admin", county=county.code)

    def answer() -> httpx.Response:
        response: httpx.Response = attendance.get(f"/cadres/{cadre_id}/leave", headers=headers)
        if response.status_code != 200:
            # Not yet: a retryable refusal while the replica is behind, or a 404 while
            # dispatch's relay has not published the assignment at all.
            assert response.status_code in (404, 409), response.text
            assert response.json()["code"] == "no_active_assignment", response.text
        return response

    wait_for(answer, lambda r: r.status_code == 200, what=f"{cadre_id} reaching the replica")


def cadre_headers(cadre_id: str, county: StaffedCounty) -> dict[str, str]:
    return bearer("cadre", county=county.code, cadre=cadre_id)


def township_headers(county: StaffedCounty, township: str = "t1") -> dict[str, str]:
    return bearer("township", county=county.code, township=township)


def check_in(
    client: TestClient,
    cadre_id: str,
    county: StaffedCounty,
    occurred_at: str,
    location: dict[str, float] | None = None,
    check_in_id: str | None = None,
) -> Any:
    body: dict[str, Any] = {
        "check_in_id": check_in_id or uuid.uuid4().hex,
        "occurred_at": occurred_at,
    }
    if location is not None:
        body["location"] = location
    return client.post(
        f"/cadres/{cadre_id}/check-ins", json=body, headers=cadre_headers(cadre_id, county)
    )


def test_dispatch_events_reach_the_replica_and_a_check_in_is_accepted(
    services: tuple[TestClient, TestClient], county: StaffedCounty, kafka_bootstrap: str
) -> None:
    _, attendance = services
    cadre_id = county.cadres[0]
    response = check_in(attendance, cadre_id, county, "2025-04-02T01:00:00Z", INSIDE, "ci-1")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["duplicate"] is False
    assert body["event_types"] == ["attendance.CheckInRecorded"]
    assert body["day"] == "2025-04-02"
    assert body["location"] == {"inside_geofence": True, "distance_m": 560}

    # Idempotent: the same check-in id again stores nothing.
    again = check_in(attendance, cadre_id, county, "2025-04-02T01:00:00Z", INSIDE, "ci-1")
    assert again.status_code == 201, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["event_ids"] == []

    # Published on attendance.events.v1, keyed by the cadre, without coordinates.
    wait_until_published(attendance)
    published = [
        p
        for p in asyncio.run(
            read_topic(kafka_bootstrap, ATTENDANCE_TOPIC, source=ATTENDANCE_SOURCE)
        )
        if p.event.data.get("cadre_id") == cadre_id
    ]
    assert [p.event.event_type for p in published] == ["attendance.CheckInRecorded"]
    assert published[0].key == cadre_id.encode()
    assert "latitude" not in str(published[0].event.data)
    assert str(published[0].event.event_id) == body["event_ids"][0]


def test_a_cadre_without_an_assignment_is_unknown_once_the_replica_has_caught_up(
    services: tuple[TestClient, TestClient], county: StaffedCounty
) -> None:
    """A retryable refusal while the replica may lag; once it has caught up with dispatch's
    topic, a final 404 (a client honouring ``Retry-After`` would retry a typo for ever)."""
    _, attendance = services

    def final(response: httpx.Response) -> bool:
        if response.status_code == 409:  # the replica still behind: retryable
            assert response.json()["retryable"] is True, response.text
            assert response.headers["retry-after"] == "5"
            return False
        return True

    response = wait_for(
        lambda: check_in(attendance, county.unassigned[0], county, "2025-04-02T01:00:00Z"),
        final,
        what="the replica catching up",
    )
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "retry-after" not in response.headers
    problem = response.json()
    assert problem["type"].endswith("/attendance/no-active-assignment")
    assert (problem["code"], problem["retryable"]) == ("no_active_assignment", False)
    assert (problem["cadre_id"], problem["when"]) == (county.unassigned[0], "2025-04-02")
    # Before the term started the cadre was not on post either.
    early = check_in(attendance, county.cadres[0], county, "2025-03-20T01:00:00Z")
    assert early.status_code == 404
    assert early.json()["code"] == "no_active_assignment"


def test_a_batch_answers_per_item_and_stores_the_valid_ones(
    services: tuple[TestClient, TestClient], county: StaffedCounty
) -> None:
    _, attendance = services
    cadre_id = county.cadres[1]
    stored = check_in(attendance, cadre_id, county, "2025-04-03T01:00:00Z", None, "b-0")
    assert stored.status_code == 201
    items = [
        {"check_in_id": "b-0", "occurred_at": "2025-04-03T01:00:00Z"},  # stored before
        {"check_in_id": "b-1", "occurred_at": "2025-04-04T01:00:00Z", "location": INSIDE},
        {"check_in_id": "b-2", "occurred_at": "not a time"},  # invalid field
        {"check_in_id": "b-3", "occurred_at": "2025-03-04T01:00:00Z"},  # before the term
        {"check_in_id": "b-4", "occurred_at": "2025-05-31T23:30:00Z"},  # = 1 June in Shanghai
        {"check_in_id": "b-5", "occurred_at": "2099-01-01T00:00:00Z"},  # from the future
        {"check_in_id": "b-1", "occurred_at": "2025-04-04T01:00:00Z"},  # repeated in the batch
        {"check_in_id": "b-6", "occurred_at": "2025-04-05T01:00:00Z", "location": OUTSIDE},
    ]
    response = attendance.post(
        f"/cadres/{cadre_id}/check-ins/batch",
        json={"items": items},
        headers=cadre_headers(cadre_id, county),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    statuses = [(i["index"], i["check_in_id"], i["status"]) for i in result["items"]]
    assert statuses == [
        (0, "b-0", "duplicate"),
        (1, "b-1", "recorded"),
        (2, "b-2", "refused"),
        (3, "b-3", "refused"),
        (4, "b-4", "recorded"),
        (5, "b-5", "refused"),
        (6, "b-1", "duplicate"),
        (7, "b-6", "recorded"),
    ]
    assert (result["recorded"], result["duplicates"], result["refused"]) == (3, 2, 3)
    invalid = result["items"][2]["problem"]
    assert invalid["status"] == 422
    assert invalid["errors"][0]["location"] == ["occurred_at"]
    assert result["items"][3]["problem"]["code"] == "no_active_assignment"
    assert result["items"][5]["problem"]["code"] == "evidence_from_the_future"

    # The 23:30 UTC check-in counts for June (Asia/Shanghai), the outside one for nothing.
    reader = bearer("auditor")
    june = attendance.get(f"/cadres/{cadre_id}/months/2025-06", headers=reader).json()
    assert june["status"] == "open"
    assert june["presence_days"] == 1
    april = attendance.get(f"/cadres/{cadre_id}/months/2025-04", headers=reader).json()
    assert april["presence_days"] == 2  # 3rd and 4th; the 5th was outside the geofence

    too_many = attendance.post(
        f"/cadres/{cadre_id}/check-ins/batch",
        json={"items": [items[1]] * 501},
        headers=cadre_headers(cadre_id, county),
    )
    assert too_many.status_code == 422


def test_a_scripted_month_closes_with_the_expected_figures(
    services: tuple[TestClient, TestClient], county: StaffedCounty, kafka_bootstrap: str
) -> None:
    """April 2025 (30 days, on post all month): presence on 12 days by check-in and 5 by
    township confirmation, 2 days of personal leave, 3 days of village business, one
    unexcused spot-check absence. Required = ceil(20 x 28 / 30) = 19; in the village
    17 + 3 = 20 -> no shortfall."""
    _, attendance = services
    cadre_id = county.cadres[0]
    me = cadre_headers(cadre_id, county)
    township = township_headers(county)

    # Check-ins on 1..12 April at 09:00 Shanghai time, inside the geofence.
    items = [
        {"check_in_id": f"apr-{d}", "occurred_at": f"2025-04-{d:02d}T01:00:00Z", "location": INSIDE}
        for d in range(1, 13)
    ]
    batch = attendance.post(
        f"/cadres/{cadre_id}/check-ins/batch", json={"items": items}, headers=me
    )
    assert batch.json()["recorded"] == 12, batch.text
    confirm = attendance.post(
        f"/cadres/{cadre_id}/presence-confirmations",
        json={"confirmation_id": "conf-1", "days": [f"2025-04-{d}" for d in range(13, 18)]},
        headers=township,
    )
    assert confirm.status_code == 201, confirm.text

    def leave(leave_id: str, kind: str, first: str, last: str, purpose: str = "") -> None:
        body = {"leave_id": leave_id, "kind": kind, "first_day": first, "last_day": last}
        if purpose:
            body["purpose"] = purpose
        response = attendance.post(f"/cadres/{cadre_id}/leave", json=body, headers=me)
        assert response.status_code == 201, response.text
        approved = attendance.post(f"/cadres/{cadre_id}/leave/{leave_id}/approve", headers=township)
        assert approved.status_code == 200, approved.text

    leave("l-personal", "personal", "2025-04-20", "2025-04-21")
    leave("l-trip", "village_business", "2025-04-24", "2025-04-26", "县里项目申报会")
    absent = attendance.post(
        f"/cadres/{cadre_id}/spot-checks",
        json={"spot_check_id": "sc-1", "day": "2025-04-28", "result": "absent"},
        headers=township,
    )
    assert absent.status_code == 201, absent.text

    closed = attendance.post(f"/cadres/{cadre_id}/months/2025-04/close", headers=township)
    assert closed.status_code == 201, closed.text
    assert closed.json()["event_types"] == ["attendance.MonthClosed"]

    month = attendance.get(f"/cadres/{cadre_id}/months/2025-04", headers=bearer("auditor")).json()
    expected = {
        "status": "closed",
        "month": "2025-04",
        "days_in_month": 30,
        "days_in_post": 30,
        "presence_days": 17,
        "business_days": 3,
        "in_village_days": 20,
        "personal_leave_days": 2,
        "sick_leave_days": 0,
        "eligible_days": 28,
        "required_days": 19,
        "shortfall": 0,
        "spot_checks": 1,
        "unexcused_absences": 1,
        "policy_version": "reference-2021",
    }
    assert {k: month[k] for k in expected} == expected

    # Evidence for a closed month is refused, clearly.
    late = check_in(attendance, cadre_id, county, "2025-04-30T01:00:00Z", INSIDE)
    assert late.status_code == 409
    assert late.json()["code"] == "month_already_closed"
    again = attendance.post(f"/cadres/{cadre_id}/months/2025-04/close", headers=township)
    assert again.status_code == 409

    # The county-wide close closes the others and reports this one as already closed.
    whole = attendance.post(
        f"/counties/{county.code}/months/2025-04/close",
        headers=bearer("org_admin", county=county.code),
    )
    assert whole.status_code == 200, whole.text
    outcome = {c["cadre_id"]: c["status"] for c in whole.json()["cadres"]}
    assert outcome == {
        county.cadres[0]: "already_closed",
        county.cadres[1]: "closed",
        county.cadres[2]: "closed",
    }


def test_roles_and_jurisdiction_are_enforced(
    services: tuple[TestClient, TestClient], county: StaffedCounty
) -> None:
    _, attendance = services
    cadre_id, other = county.cadres[0], county.cadres[1]
    body = {"check_in_id": "x", "occurred_at": "2025-04-02T01:00:00Z"}
    # A cadre checks in for themselves only.
    someone_else = attendance.post(
        f"/cadres/{other}/check-ins", json=body, headers=cadre_headers(cadre_id, county)
    )
    assert someone_else.status_code == 403
    # A township user may not check in for a cadre, and sees only its own township.
    as_township = attendance.post(
        f"/cadres/{cadre_id}/check-ins", json=body, headers=township_headers(county)
    )
    assert as_township.status_code == 403
    wrong_township = attendance.post(
        f"/cadres/{cadre_id}/spot-checks",
        json={"spot_check_id": "s", "day": "2025-04-02", "result": "present"},
        headers=township_headers(county, "t2"),
    )
    assert wrong_township.status_code == 403
    other_county = attendance.get(
        f"/cadres/{cadre_id}/leave", headers=bearer("org_admin", county="539999")
    )
    assert other_county.status_code == 403
    # Auditors read but do not write.
    assert attendance.get(f"/cadres/{cadre_id}/leave", headers=bearer("auditor")).status_code == 200
    audit_write = attendance.post(
        f"/cadres/{cadre_id}/months/2025-04/close", headers=bearer("auditor")
    )
    assert audit_write.status_code == 403
    # A four-day leave needs the county: the township may not approve it.
    me = cadre_headers(cadre_id, county)
    request = attendance.post(
        f"/cadres/{cadre_id}/leave",
        json={
            "leave_id": "long",
            "kind": "sick",
            "first_day": "2025-05-05",
            "last_day": "2025-05-08",
        },
        headers=me,
    )
    assert request.status_code == 201, request.text
    by_township = attendance.post(
        f"/cadres/{cadre_id}/leave/long/approve", headers=township_headers(county)
    )
    assert by_township.status_code == 403
    assert by_township.json()["code"] == "approval_beyond_level"
    by_county = attendance.post(
        f"/cadres/{cadre_id}/leave/long/approve", headers=bearer("org_admin", county=county.code)
    )
    assert by_county.status_code == 200, by_county.text
    # Bad input: field-level errors, nothing stored.
    bad = attendance.post(
        f"/cadres/{cadre_id}/leave",
        json={"leave_id": "bad", "kind": "holiday", "first_day": "2025-05-05"},
        headers=me,
    )
    assert bad.status_code == 422
    fields = {tuple(e["location"]) for e in bad.json()["errors"]}
    assert ("body", "kind") in fields
    assert ("body", "last_day") in fields
    unknown = attendance.post(
        f"/cadres/{cadre_id}/leave/nope/approve", headers=township_headers(county)
    )
    assert unknown.status_code == 404


def test_the_county_lists_its_pending_leave_from_the_replica(
    services: tuple[TestClient, TestClient], county: StaffedCounty
) -> None:
    """The county's list reads the posts of its villages from the replica in PostgreSQL
    (every post, filtered by the township of its village), then each cadre's leave."""
    _, attendance = services
    for n, cadre_id in enumerate(county.cadres[:2]):
        body = {
            "leave_id": "l1",
            "kind": "personal",
            "first_day": f"2025-06-0{n + 1}",
            "last_day": f"2025-06-0{n + 1}",
        }
        response = attendance.post(
            f"/cadres/{cadre_id}/leave", json=body, headers=cadre_headers(cadre_id, county)
        )
        assert response.status_code == 201, response.text
    path = f"/counties/{county.code}/leave"
    listed = attendance.get(path, headers=township_headers(county))
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [(i["cadre_id"], i["leave_id"], i["township"]) for i in page["items"]] == [
        (county.cadres[0], "l1", "t1"),
        (county.cadres[1], "l1", "t1"),
    ]
    first = attendance.get(f"{path}?limit=1", headers=county.admin).json()
    assert [i["cadre_id"] for i in first["items"]] == [county.cadres[0]]
    rest = attendance.get(f"{path}?limit=1&after={first['next']}", headers=county.admin).json()
    assert ([i["cadre_id"] for i in rest["items"]], rest["next"]) == ([county.cadres[1]], None)
    other = attendance.get(path, headers=township_headers(county, "t2"))
    assert (other.status_code, other.json()["items"]) == (200, [])
