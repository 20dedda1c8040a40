"""Schemathesis, an outside judge, against each service's committed OpenAPI document.

The four services run for real (``running_system``: processes on the session's Kafka and
PostgreSQL). For each service and each role, ``st run`` (schemathesis's own command) reads
the committed ``services/<name>/openapi.json``, generates requests from it (its coverage
phase: the bounds' edges and just past them; its fuzzing phase: random valid and invalid
values) with a valid token of that role, and applies its standard checks:

- ``not_a_server_error``: no 5xx, whatever the input;
- ``status_code_conformance``: every status answered is documented for the operation;
- ``content_type_conformance``: every answer's media type is documented for its status
  (``application/problem+json`` for every error);
- ``response_schema_conformance``: every answer's body validates against its schema.

A county is staffed first through dispatch's API (``StaffedCounty``: a village in township
``t1``, a round, a team, two cadres on post from 2025-01-01). The county in every path is
that county, the token's, so requests pass the jurisdiction check and reach the rules; a
cadre's token also pins ``cadre_id`` to itself (a cadre on post), so its check-ins, diaries
and leave meet the real replica, geofence and policy pack. A run is
bounded so the whole file stays within a few minutes: the roles that do a service's work
(``THOROUGH``: org_admin everywhere, and the cadre at attendance) get every phase with
``MAX_EXAMPLES`` per operation; every other role gets the fuzzing phase with
``QUICK_EXAMPLES`` (their requests mostly end at the role check, which the thorough runs'
negative cases exercise too). The case counts per service and role are printed (``-s``)
and written to ``schemathesis.json`` in the test's temporary directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sim_system import RunningSystem

from zhucun.shared.openapi import operations
from zhucun.shared.testing import StaffedCounty, token

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("dispatch", "attendance", "assessment", "projections")
TOWNSHIP = "t1"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = 8
QUICK_EXAMPLES = 4
#: The roles each service is run with in every phase.
THOROUGH: dict[str, frozenset[str]] = {
    "dispatch": frozenset({"org_admin"}),
    "attendance": frozenset({"org_admin", "cadre"}),
    "assessment": frozenset({"org_admin"}),
    "projections": frozenset({"org_admin"}),
}
SEED = 15
ROLES = ("org_admin", "township", "auditor", "cadre", "service")


@pytest.fixture(scope="module")
def county(running_system: RunningSystem) -> StaffedCounty:
    """The county every run's paths name, staffed in dispatch."""
    with httpx.Client(base_url=running_system.require("dispatch"), timeout=30) as dispatch:
        return StaffedCounty(dispatch, cadres=2).register()


def _claims(role: str, county: StaffedCounty) -> dict[str, str]:
    """The token's jurisdiction claims of ``role`` in the staffed county."""
    return {
        "org_admin": {"county": county.code},
        "township": {"county": county.code, "township": TOWNSHIP},
        "auditor": {"county": county.code},
        "cadre": {"county": county.code, "township": TOWNSHIP, "cadre": county.cadres[0]},
        "service": {},
    }[role]


def _config(claims: dict[str, str], county: StaffedCounty) -> str:
    """A ``schemathesis.toml`` pinning the path parameters the token's claims name."""
    pinned = {"county": claims.get("county", county.code)}
    if "cadre" in claims:
        pinned["cadre_id"] = claims["cadre"]
    lines = ["[parameters]", *(f'{name} = "{value}"' for name, value in pinned.items())]
    return "\n".join(lines) + "\n"


def _run(service: str, url: str, role: str, county: StaffedCounty, work: Path) -> dict[str, Any]:
    """One ``st run`` of ``service`` with a token of ``role``: its JSON report."""
    claims = _claims(role, county)
    folder = work / role
    folder.mkdir()
    (folder / "schemathesis.toml").write_text(_config(claims, county))
    report = folder / "report.json"
    bearer = token(role, **claims)
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        str(ROOT / "services" / service / "openapi.json"),
        "--url",
        url,
        "-H",
        f"Authorization: Bearer {bearer}",
        "--checks",
        ",".join(CHECKS),
        *_depth(service, role),
        "--seed",
        str(SEED),
        "--no-shrink",
        # One worker: hypothesis describes strategies with ``ast.parse``, which CPython 3.11
        # does not make safe across threads (it failed a run with "AST constructor recursion
        # depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    done = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=600, check=False
    )
    (folder / "output.txt").write_text(done.stdout + done.stderr)
    assert report.exists(), f"st run wrote no report:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(report.read_text())
    result["output_tail"] = _failures_section(done.stdout)
    return result


def _depth(service: str, role: str) -> list[str]:
    if role in THOROUGH[service]:
        return ["--max-examples", str(MAX_EXAMPLES)]
    return ["--phases", "fuzzing", "--max-examples", str(QUICK_EXAMPLES)]


def _failures_section(output: str) -> str:
    """The part of st's output that shows each failure and how to reproduce it."""
    start = output.find("FAILURES")
    return output[start : start + 6000] if start >= 0 else output[-3000:]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", SERVICES)
def test_schemathesis_finds_no_failure(
    service: str, running_system: RunningSystem, county: StaffedCounty, tmp_path: Path
) -> None:
    url = running_system.require(service)
    document = json.loads((ROOT / "services" / service / "openapi.json").read_text())
    expected_operations = len(list(operations(document)))
    counts: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for role in ROLES:
        result = _run(service, url, role, county, tmp_path)
        cases, ops = result["test_cases"], result["operations"]
        counts[role] = {
            "generated": cases["generated"],
            "with_failures": cases["with_failures"],
            "errored": cases["errored"],
            "operations_tested": ops["tested"],
            "failures": result["failures"],
        }
        print(
            f"schemathesis {service} as {role}: {cases['generated']} cases over"
            f" {ops['tested']}/{ops['total']} operations, {cases['with_failures']} with"
            f" failures, {cases['errored']} errored"
        )
        if result["failures"] or result["errors"] or cases["errored"]:
            problems.append(
                f"--- as {role}: {result['failures']} {result['errors']}\n{result['output_tail']}"
            )
        assert ops["total"] == expected_operations, (role, ops)
        assert ops["tested"] == expected_operations, (role, ops, result["output_tail"])
        assert cases["generated"] >= expected_operations, (role, cases)
    (tmp_path / "schemathesis.json").write_text(json.dumps(counts, indent=2))
    assert not problems, "\n".join(problems)
