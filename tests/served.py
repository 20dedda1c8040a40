"""The four services started as users start them (from the production install, or from the
image), and the same real requests and operator commands against both.

``tests/production/test_production_install.py`` launches ``zhucun serve`` processes,
``tests/production/test_image.py`` launches containers; everything else (their databases,
readiness, the requests, ``verify`` and ``status``) is here once.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

SERVICES = ("dispatch", "attendance", "assessment", "projections")
#: The operators' and auditors' commands the product ships.
COMMANDS = ("serve", "verify", "status", "export", "replay", "what-if", "token")
#: Development tooling that must not be part of the product.
DEV_ONLY_COMMANDS = ("infra", "services", "contracts", "simulate", "demo")

#: ``launch(service, environment, log)``: start one service, its output going to ``log``.
Launch = Callable[[str, dict[str, str], Path], subprocess.Popen[bytes]]
#: ``command(*arguments)``: run one ``zhucun`` command the way a user does.
Command = Callable[..., subprocess.CompletedProcess[str]]


class Databases(Protocol):
    def dsn(self, database: str) -> str: ...

    def create_database(self, name: str) -> None: ...

    def drop_database(self, name: str) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    name: str
    port: int
    dsn: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        return self.request("GET", path, token=token)

    def request(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def wait_until_connected(service: Served, seconds: float = 120) -> dict[str, Any]:
    """The readiness body once the service is ready and connected to Kafka."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} exited: {service.log.read_text()[-3000:]}")
        try:
            status, last = service.get("/health/ready")
        except OSError as error:
            last = str(error)
        else:
            if status == 200 and last["components"]["kafka"]["state"] == "connected":
                return dict(last)
        time.sleep(0.3)
    pytest.fail(
        f"{service.name} not ready in {seconds}s: {last}; {service.log.read_text()[-3000:]}"
    )


def wait_for(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.3)


@contextmanager
def serving(
    launch: Launch,
    *,
    databases: Databases,
    kafka_bootstrap: str,
    logs: Path,
    environment: dict[str, str],
    prefix: str,
) -> Iterator[dict[str, Served]]:
    """The four services, each with a database of its own, ready and connected to Kafka;
    stopped with SIGTERM (a grace period, then killed) and their databases dropped after."""
    created: list[str] = []
    services: dict[str, Served] = {}
    try:
        for name in SERVICES:
            database = f"{prefix}_{name}_{uuid.uuid4().hex[:8]}"
            databases.create_database(database)
            created.append(database)
            port = free_port()
            env = {
                **environment,
                "ZHUCUN_SERVICE_NAME": name,
                "ZHUCUN_HTTP_PORT": str(port),
                "ZHUCUN_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
                "ZHUCUN_KAFKA__TOPIC_PARTITIONS": "2",
                "ZHUCUN_POSTGRES__DSN": databases.dsn(database),
                "ZHUCUN_LOG__FORMAT": "json",
            }
            log = logs / f"{name}.log"
            process = launch(name, env, log)
            services[name] = Served(name, port, databases.dsn(database), process, log)
        for service in services.values():
            wait_until_connected(service)
        yield services
    finally:
        for service in services.values():
            service.process.terminate()
        for service in services.values():
            try:
                service.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
        for database in created:
            databases.drop_database(database)


VILLAGE = {
    "village_id": "v-prod",
    "name": "试点村",
    "township": "t1",
    "categories": [],
    "geofence": {"latitude": 25.04, "longitude": 102.71, "radius_m": 1500},
    "households": 300,
    "monitored_population": 50,
}


def listed_commands(help_text: str) -> set[str]:
    """The command names of ``zhucun --help``'s table."""
    return {
        line.split()[1]
        for line in help_text.splitlines()
        if line.startswith("│ ") and len(line.split()) > 1
    }


def new_county() -> str:
    return f"53{uuid.uuid4().int % 10_000:04d}"


def answer_real_requests(services: dict[str, Served], county: str, admin: str) -> None:
    """One real request to each service with an org_admin token of ``county``; dispatch's
    event reaches Kafka."""
    dispatch = services["dispatch"]
    status, body = dispatch.request(
        "POST", f"/counties/{county}/villages", token=admin, body=VILLAGE
    )
    assert status == 201, body
    status, body = dispatch.get(f"/counties/{county}/villages/v-prod", token=admin)
    assert (status, body["village_id"], body["households"]) == (200, "v-prod", 300)
    assert dispatch.get(f"/counties/{county}/villages/v-prod")[0] == 401

    status, body = services["assessment"].get(f"/counties/{county}/quarters/2026-Q4", token=admin)
    assert status == 200, body
    status, body = services["projections"].get(f"/counties/{county}/decisions", token=admin)
    assert (status, body["items"]) == (200, [])
    # A problem from the domain, not from the framework: the replica of dispatch was read.
    # Retryable (409) while the replica is behind dispatch's topic; once it has caught up
    # (its offsets equal the end offsets, asked of the real broker) the cadre is unknown:
    # a final 404, so a client honouring Retry-After stops.
    attendance = services["attendance"]
    answers: list[tuple[int, Any]] = []

    def final() -> bool:
        answers.append(attendance.get("/cadres/c-nobody/months/2026-11", token=admin))
        return answers[-1][0] != 409

    wait_for(final)
    status, body = answers[-1]
    assert status == 404, body
    assert body["type"].endswith("/attendance/no-active-assignment"), body
    assert (body["retryable"], body["replica_caught_up"]) == (False, True), body

    # The relay publishes what dispatch stored; the service reports it caught up.
    wait_for(lambda: dispatch.get("/health/ready")[1]["components"]["relay"]["lag"] == 0)


def store_arguments(services: dict[str, Served]) -> list[str]:
    """``--store`` arguments of the four event stores, as the verify and status CronJobs
    pass them (deploy/k8s/base/jobs)."""
    return [
        f"--store=dispatch={services['dispatch'].dsn}",
        f"--store=attendance={services['attendance'].dsn}",
        f"--store=assessment={services['assessment'].dsn}",
        f"--store=decisions={services['projections'].dsn}",
    ]


def verify_and_status(
    command: Command, services: dict[str, Served], kafka_bootstrap: str
) -> dict[str, Any]:
    """``zhucun verify`` and ``zhucun status --json`` against the services' databases; the
    status document."""
    projections = services["projections"].dsn
    stores = store_arguments(services)
    # The audit trail is a projection: it holds an event once it has read it from Kafka,
    # some time after the event was stored (a decision the projections service derived just
    # now, for one). Verify until it has caught up, or fail with the last report.
    deadline = time.monotonic() + 90
    while True:
        verify = command("verify", *stores, f"--audit-dsn={projections}")
        if verify.returncode == 0 or time.monotonic() > deadline:
            break
        assert "audit trail incomplete" in verify.stdout, verify.stdout + verify.stderr
        time.sleep(2)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.count("intact") == 4, verify.stdout
    assert "audit trail complete" in verify.stdout

    databases = [
        f"--database={n}={services[n].dsn}" for n in ("attendance", "assessment", "projections")
    ]
    status = command("status", *databases, *stores, f"--bootstrap={kafka_bootstrap}", "--json")
    assert status.returncode == 0, status.stderr
    document: dict[str, Any] = json.loads(status.stdout)
    assert {r["store"] for r in document["relays"]} == {
        "dispatch",
        "attendance",
        "assessment",
        "decisions",
    }
    projections_seen = {(p["database"], p["projection"]) for p in document["projections"]}
    assert ("projections", "projections-audit-trail") in projections_seen
    return document
