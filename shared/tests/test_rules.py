"""Refusals as problems: the shared refusals, the namespace a refusal may declare, figures
named like a problem's own members, and the bulk writes of a replica's tables (their SQL)."""

from __future__ import annotations

from typing import ClassVar

import httpx
import pytest
from fastapi import FastAPI

from zhucun.shared.auth import Jurisdiction, Principal, Role, Scope
from zhucun.shared.problems import PROBLEM_TYPE_BASE, install_problem_handlers, rule_problem
from zhucun.shared.replica import Table, unnest
from zhucun.shared.rules import (
    PROBLEM_MEMBERS,
    DatesOutOfOrder,
    DuplicateId,
    OutsideJurisdiction,
    RuleKind,
    RuleViolation,
)

pytestmark = pytest.mark.unit


class ReservedFigures(RuleViolation):
    """A refusal whose figures are named like members of the problem document."""

    code: ClassVar[str] = "reserved_figures"
    kind: ClassVar[RuleKind] = "conflict"

    def __init__(self) -> None:
        super().__init__("leave L is rejected")
        self.status = "rejected"
        self.type = "personal"
        self.title = "a title"
        self.detail = "a detail"
        self.instance = "an instance"
        self.errors = 3
        self.correlation_id = "c"
        self.code_of_leave = "L"  # not reserved: kept


class AuditRefusal(RuleViolation):
    code: ClassVar[str] = "unknown_cadre"
    kind: ClassVar[RuleKind] = "not_found"
    namespace: ClassVar[str | None] = "audit"


def test_figures_named_like_problem_members_are_left_out_not_a_crash() -> None:
    refusal = ReservedFigures()
    assert refusal.details() == {"code_of_leave": "L"}
    problem = rule_problem(refusal, service="attendance").to_problem()
    assert (problem.status, problem.type, problem.detail) == (
        409,
        PROBLEM_TYPE_BASE + "attendance/reserved-figures",
        "leave L is rejected",
    )
    assert problem.model_extra == {
        "code_of_leave": "L",
        "code": "reserved_figures",
        "retryable": False,
    }
    assert {"status", "type", "title", "detail", "instance", "errors"} <= PROBLEM_MEMBERS


async def test_a_refusal_with_reserved_figures_is_answered_by_the_handler_not_a_500() -> None:
    app = FastAPI()
    install_problem_handlers(app, service="attendance")

    @app.get("/refuse")
    async def refuse() -> None:
        raise ReservedFigures()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/refuse")
    assert response.status_code == 409
    assert response.json()["type"] == PROBLEM_TYPE_BASE + "attendance/reserved-figures"


def test_a_refusal_is_answered_under_its_declared_namespace_or_its_service() -> None:
    audit = rule_problem(AuditRefusal("no file"), service="projections")
    assert (audit.status, audit.type) == (404, PROBLEM_TYPE_BASE + "audit/unknown-cadre")
    plain = rule_problem(DatesOutOfOrder("the term ends before it starts"), service="dispatch")
    assert (plain.status, plain.type) == (422, PROBLEM_TYPE_BASE + "dispatch/dates-out-of-order")


@pytest.mark.parametrize("service", ["dispatch", "attendance", "assessment", "projections"])
def test_outside_the_jurisdiction_is_one_unprefixed_403_in_every_service(service: str) -> None:
    principal = Principal(subject="a", role=Role.ORG_ADMIN, jurisdiction=Jurisdiction(county="1"))
    principal.ensure_covers(Scope(county="1"))
    with pytest.raises(OutsideJurisdiction) as refused:
        principal.ensure_covers(Scope(county="2"))
    problem = rule_problem(refused.value, service=service)
    assert (problem.status, problem.type) == (403, PROBLEM_TYPE_BASE + "forbidden-jurisdiction")
    assert problem.extensions == {"code": "forbidden_jurisdiction", "retryable": False}


def test_a_duplicate_id_names_what_and_says_the_services_qualifier() -> None:
    class AlsoContent(DuplicateId):
        qualifier = "with other content"

    plain, qualified = DuplicateId("village", "v1"), AlsoContent("leave", "L")
    assert plain.message == "village 'v1' already exists"
    assert qualified.message == "leave 'L' already exists with other content"
    assert (qualified.code, qualified.kind) == ("duplicate_id", "conflict")
    assert qualified.details() == {"what": "leave", "identifier": "L"}


def test_a_table_writes_its_ddl_and_its_arrays() -> None:
    table = Table(
        '"s".t',
        {"id": "text", "day": "date", "ended_on": "date"},
        key=("id",),
        nullable=frozenset({"ended_on"}),
    )
    assert table.create() == (
        'CREATE TABLE IF NOT EXISTS "s".t (\n    id text NOT NULL,\n    day date NOT NULL,\n'
        "    ended_on date,\n    PRIMARY KEY (id)\n)"
    )
    assert unnest(["text", "date"], first=2) == "unnest($2::text[], $3::date[])"
    with pytest.raises(ValueError, match="no column"):
        Table("t", {"id": "text"}, key=("nope",))
