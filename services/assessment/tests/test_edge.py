"""The HTTP edge without PostgreSQL or Kafka: the app's routes wired to the use cases on the
in-memory event store and in-memory replicas (the lifespan never runs), to check the bounds
of what a request may carry and the regressions of issue 15: each malformed path, query or
body value is a 422 ``validation-error`` naming its field, an annual round of a year not over
is a 409 ``year-not-over``, and nothing is stored for any of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from zhucun.assessment.app import create_app
from zhucun.assessment.application import Application
from zhucun.assessment.application.quarters import obligation_id
from zhucun.assessment.domain import quarter_stream
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.assessment.replicas.dispatch import AssignmentRow
from zhucun.contracts.assessment.events import registry
from zhucun.shared.auth import Principal
from zhucun.shared.bounds import ID_MAX_LENGTH
from zhucun.shared.commands import CommandPath, StateCache
from zhucun.shared.envelope import EventMetadata
from zhucun.shared.http import provide_use_cases
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.policy import PolicyBook
from zhucun.shared.problems import PROBLEM_TYPE_BASE
from zhucun.shared.settings import ServiceSettings
from zhucun.shared.testing import bearer

pytestmark = pytest.mark.unit

COUNTY = "530102"
#: The day the 2027 round was opened, proposed and finalised in the issue.
DEC_3_2026 = date(2026, 12, 3)
LONG_ID = "c" * ID_MAX_LENGTH
ADMIN = bearer("org_admin", county=COUNTY)
TOWNSHIP = bearer("township", county=COUNTY, township="t1")


class Assignments:
    """The replica of dispatch: every cadre asked about is on post in the county since 2025."""

    def _row(self, cadre_id: str) -> AssignmentRow:
        return AssignmentRow(
            assignment_id=f"a-{cadre_id[:100]}",
            cadre_id=cadre_id,
            team_id="team-1",
            village_id="v1",
            county=COUNTY,
            term_start=date(2025, 1, 1),
            term_end=date(2026, 12, 31),
            ended_on=None,
            township="t1",
        )

    async def assignments_of(self, cadre_id: str) -> Sequence[AssignmentRow]:
        return [self._row(cadre_id)]

    async def assignments_between(
        self, cadre_id: str, first: date, last: date
    ) -> Sequence[AssignmentRow]:
        return [self._row(cadre_id)]

    async def team_assignments(self, team_id: str) -> Sequence[AssignmentRow]:
        return [self._row("c1")]


class NoAbsences:
    async def unexcused_absences(self, cadre_id: str, year: int) -> int:
        return 0


def metadata(principal: Principal) -> EventMetadata:
    return EventMetadata(occurred_at=datetime(2026, 12, 3, 9, tzinfo=UTC))


@dataclass
class Edge:
    client: TestClient
    store: InMemoryEventStore

    def send(self, method: str, path: str, body: Any = None, headers: Any = None) -> Any:
        return self.client.request(method, path, json=body, headers=headers or ADMIN)

    async def stored(self) -> int:
        return await self.store.head_position()


def edge(today: date) -> Edge:
    app = create_app(ServiceSettings(service_name="assessment"))
    store = InMemoryEventStore()
    policies = PolicyBook.load(app.state.settings.policies_dir, sections=(AssessmentPolicy,))
    application = Application(
        commands=CommandPath(store, registry, StateCache()),
        assignments=Assignments(),
        absences=NoAbsences(),
        policies=policies,
        metadata=metadata,
        today=lambda: today,
    )
    provide_use_cases(app, lambda: application)
    return Edge(TestClient(app), store)  # not entered: no lifespan, no database


@pytest.fixture
def client() -> Edge:
    return edge(date(2026, 1, 15))


def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_TYPE_BASE + slug
    return body


def invalid(response: Any) -> list[list[str | int]]:
    """The locations a 422 names."""
    body = problem(response, 422, "validation-error")
    return [error["location"] for error in body["errors"]]


INSPECTION = {"inspection_id": "i1", "kind": "weekly_inspection", "held_on": "2025-05-06"}
EVALUATION = {"evaluation_id": "e1", "period": "2025", "satisfaction": 90, "respondents": 30}
SANCTION = {"sanction_id": "s1", "kind": "警告", "decided_on": "2025-09-01", "authority": "县纪委"}
SCORES = {"township_score": 90, "villager_score": 90, "county_panel_score": 90}


@pytest.mark.parametrize(
    ("method", "path", "body", "location"),
    [
        # Periods of year 0000 and dates at the window's edge (issue 15's 500s).
        ("PUT", "/cadres/c1/quarters/0000-Q1", SCORES, ["path", "quarter"]),
        ("PUT", "/cadres/c1/quarters/2025-Q5", SCORES, ["path", "quarter"]),
        (
            "POST",
            "/cadres/c1/villager-evaluations",
            {**EVALUATION, "period": "0000"},
            ["body", "period"],
        ),
        (
            "POST",
            "/cadres/c1/villager-evaluations",
            {**EVALUATION, "period": "2100-Q1"},
            ["body", "period"],
        ),
        ("GET", "/cadres/c1/attendance/0", None, ["path", "year"]),
        ("GET", "/cadres/c1/attendance/2100", None, ["path", "year"]),
        ("POST", f"/counties/{COUNTY}/annual/1999", {"round_id": "r"}, ["path", "year"]),
        ("GET", f"/counties/{COUNTY}/quarters/9999-Q4", None, ["path", "quarter"]),
        (
            "POST",
            "/cadres/c1/inspections",
            {**INSPECTION, "held_on": "9999-12-31"},
            ["body", "held_on"],
        ),
        (
            "POST",
            "/cadres/c1/sanctions",
            {**SANCTION, "decided_on": "1999-12-31"},
            ["body", "decided_on"],
        ),
        # Characters no id, name or text holds.
        (
            "POST",
            "/cadres/c1/inspections",
            {**INSPECTION, "findings": "a\x00b"},
            ["body", "findings"],
        ),
        (
            "POST",
            "/cadres/c1/inspections",
            {**INSPECTION, "inspection_id": "=HYPERLINK(1)"},
            ["body", "inspection_id"],
        ),
        ("POST", "/cadres/=HYPERLINK(1)/inspections", INSPECTION, ["path", "cadre_id"]),
        ("POST", "/teams/team\u202e1/inspections", INSPECTION, ["path", "team_id"]),
        ("POST", "/cadres/c1/sanctions", {**SANCTION, "kind": "警\u200b告"}, ["body", "kind"]),
        ("POST", "/cadres/c1/sanctions", {**SANCTION, "authority": ""}, ["body", "authority"]),
        (
            "POST",
            "/cadres/c1/sanctions",
            {**SANCTION, "reason": "x" * 5_001},
            ["body", "reason"],
        ),
        ("POST", f"/counties/{COUNTY}/annual/2025", {"round_id": ""}, ["body", "round_id"]),
        (
            "POST",
            f"/counties/{COUNTY}/quarters/2025-Q2/lists",
            {"list_id": "x" * (ID_MAX_LENGTH + 1)},
            ["body", "list_id"],
        ),
        (
            "POST",
            f"/counties/{COUNTY}/quarters/2025-Q2/obligations/@x/talks",
            {"cadre_id": "c1", "by": "township", "held_on": "2025-07-05"},
            ["path", "obligation_id"],
        ),
        (
            "POST",
            "/cadres/c1/term-assessments/a 1",
            {"grade": "competent"},
            ["path", "assignment_id"],
        ),
        # Numbers: strict and within their ranges.
        (
            "POST",
            "/cadres/c1/inspections",
            {**INSPECTION, "problems_found": 10**30},
            ["body", "problems_found"],
        ),
        (
            "POST",
            "/cadres/c1/inspections",
            {**INSPECTION, "problems_found": True},
            ["body", "problems_found"],
        ),
        (
            "POST",
            "/cadres/c1/villager-evaluations",
            {**EVALUATION, "satisfaction": "95"},
            ["body", "satisfaction"],
        ),
        (
            "POST",
            "/cadres/c1/villager-evaluations",
            {**EVALUATION, "respondents": 0},
            ["body", "respondents"],
        ),
        ("PUT", "/cadres/c1/quarters/2025-Q2", {**SCORES, "township_score": 100.5}, None),
    ],
)
async def test_a_value_out_of_its_bounds_is_a_422_naming_it_and_nothing_is_stored(
    client: Edge, method: str, path: str, body: Any, location: list[str] | None
) -> None:
    locations = invalid(client.send(method, path, body))
    assert locations == [location or ["body", "township_score"]]
    assert await client.stored() == 0


async def test_the_values_just_inside_the_bounds_are_accepted(client: Edge) -> None:
    first = client.send("POST", "/cadres/c1/villager-evaluations", {**EVALUATION, "period": "2026"})
    assert first.status_code == 201, first.text
    inspected = client.send(
        "POST",
        "/cadres/c1/inspections",
        {**INSPECTION, "findings": "第一行\n\t第二行", "problems_found": 10_000_000},
    )
    assert inspected.status_code == 201, inspected.text
    assert client.send("GET", "/cadres/c1/attendance/2099").status_code == 200
    assert client.send("GET", f"/counties/{COUNTY}/quarters/2099-Q4").status_code == 200
    assert await client.stored() == 2


async def test_a_2027_round_is_refused_on_3_december_2026_and_its_grades_too() -> None:
    # Issue 15: a 2027 round was opened, proposed and finalised on 2026-12-03.
    early = edge(DEC_3_2026)
    refused = problem(
        early.send("POST", f"/counties/{COUNTY}/annual/2027", {"round_id": "r-2027"}),
        409,
        "assessment/year-not-over",
    )
    assert (refused["code"], refused["year"], refused["action"], refused["from_day"]) == (
        "year_not_over",
        2027,
        "open",
        "2027-12-01",
    )
    assert refused["retryable"] is False
    assert await early.stored() == 0
    # The year's own round opens in December; its grades wait for 31 December.
    opened = early.send("POST", f"/counties/{COUNTY}/annual/2026", {"round_id": "r-2026"})
    assert opened.status_code == 201, opened.text
    proposal = early.send(
        "PUT", f"/counties/{COUNTY}/annual/2026/proposals/c1", {"grade": "competent"}
    )
    body = problem(proposal, 409, "assessment/year-not-over")
    assert (body["action"], body["from_day"]) == ("propose", "2026-12-31")
    final = problem(
        early.send("POST", f"/counties/{COUNTY}/annual/2026/finalise"),
        409,
        "assessment/year-not-over",
    )
    assert final["action"] == "finalise"
    assert await early.stored() == 1  # the opening only


async def test_a_proposal_before_the_round_is_opened_is_refused_as_not_open(client: Edge) -> None:
    # The command's round id is the stream's: none while no round is open (once a 500).
    path = f"/counties/{COUNTY}/annual/2025/proposals/c1"
    refused = problem(
        client.send("PUT", path, {"grade": "competent"}), 409, "assessment/round-not-open"
    )
    assert refused["code"] == "round_not_open"
    problem(
        client.send("POST", f"/counties/{COUNTY}/annual/2025/finalise"),
        409,
        "assessment/round-not-open",
    )
    assert await client.stored() == 0


async def test_an_average_of_a_cadre_with_the_longest_id_opens_an_obligation_within_bounds(
    client: Edge,
) -> None:
    scores = {"township_score": 65, "villager_score": 65, "county_panel_score": 65}
    response = client.send("PUT", f"/cadres/{LONG_ID}/quarters/2025-Q2", scores, TOWNSHIP)
    assert response.status_code == 201, response.text
    assert response.json()["event_types"] == [
        "assessment.QuarterlyAssessed",
        "assessment.AdmonitionTalksRequired",
    ]
    [_, required] = await client.store.read_stream(quarter_stream(COUNTY, "2025-Q2"))
    assert required.data["obligation_id"] == obligation_id(LONG_ID, "2025-Q2")
    assert len(required.data["obligation_id"]) <= ID_MAX_LENGTH
    # A short id keeps the readable form.
    assert obligation_id("c1", "2025-Q2") == "talks-c1-2025-Q2"
