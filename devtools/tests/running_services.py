"""``running_system``: the four services started for real, as processes, on the session's
Kafka and PostgreSQL, for tests that drive them over HTTP (the simulator's, the read-side
comparisons, schemathesis against the OpenAPI documents). Registered by the root
``conftest.py`` so every test directory shares one system per session.

Each service runs as ``python -m zhucun.cli.main serve <name> --port <free port>`` (as the
demo runs them, ``zhucun.infra.services``), with a fresh database of its own, and the
fixture waits for ``/health/ready``. It is session-scoped: starting four services takes
seconds, and a test must not assume it has them to itself (scenarios use their own seeds and
counties, so their ids never collide).

The databases come from the session's ``postgres_server`` directly: ``make_database`` is a
per-test fixture and this one outlives tests. When the projections service does not become
ready the system runs without it and says so (``missing``), and tests that need it skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sim_system import RunningSystem

from zhucun.infra import PostgresLike, free_port

SERVICES = ("dispatch", "attendance", "assessment", "projections")
#: Services the system cannot run without (the writers).
REQUIRED = ("dispatch", "attendance", "assessment")
READY_SECONDS = 90.0


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health/ready", timeout=3) as response:
                body = json.load(response)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        # Ready once the database works; the simulation also needs Kafka connected.
        return bool(body["components"]["kafka"]["state"] == "connected")

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def start_service(name: str, kafka_bootstrap: str, dsn: str, logs: Path) -> _Process:
    port = free_port()
    log = logs / f"{name}.log"
    env = {
        **os.environ,
        "ZHUCUN_SERVICE_NAME": name,
        "ZHUCUN_HTTP_PORT": str(port),
        "ZHUCUN_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ZHUCUN_POSTGRES__DSN": dsn,
        "ZHUCUN_KAFKA__TOPIC_PARTITIONS": "2",
        "ZHUCUN_LOG__FORMAT": "json",
        # Every request would be a log line: tens of thousands in a simulated term.
        "ZHUCUN_LOG__LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "zhucun.cli.main", "serve", name, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return _Process(name, popen, port, log)


def wait_ready(processes: list[_Process], seconds: float = READY_SECONDS) -> dict[str, str]:
    """Wait until each process is ready; returns the ones that died or never got ready,
    with their log's tail."""
    deadline = time.monotonic() + seconds
    waiting = list(processes)
    failed: dict[str, str] = {}
    while waiting and time.monotonic() < deadline:
        for process in list(waiting):
            if process.popen.poll() is not None:
                failed[process.name] = f"exited {process.popen.returncode}: {_tail(process.log)}"
                waiting.remove(process)
            elif process.ready():
                waiting.remove(process)
        time.sleep(0.3)
    for process in waiting:
        failed[process.name] = f"not ready after {seconds:.0f} s: {_tail(process.log)}"
    return failed


@pytest.fixture(scope="session")
def running_system(
    kafka_bootstrap: str, postgres_server: PostgresLike, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSystem]:
    logs = tmp_path_factory.mktemp("services")
    databases: dict[str, str] = {}
    processes: list[_Process] = []
    try:
        for name in SERVICES:
            database = f"sim_{name}_{uuid.uuid4().hex[:10]}"
            postgres_server.create_database(database)
            databases[name] = database
            processes.append(
                start_service(name, kafka_bootstrap, postgres_server.dsn(database), logs)
            )
        failed = wait_ready(processes)
        broken = {name: why for name, why in failed.items() if name in REQUIRED}
        if broken:
            pytest.fail(
                "services did not start:\n" + "\n".join(f"{k}: {v}" for k, v in broken.items())
            )
        for name, why in failed.items():
            warnings.warn(f"running without the {name} service: {why[-300:]}", stacklevel=1)
            next(p for p in processes if p.name == name).stop()
        yield RunningSystem(
            kafka_bootstrap=kafka_bootstrap,
            urls={p.name: p.url for p in processes if p.name not in failed},
            dsns={name: postgres_server.dsn(db) for name, db in databases.items()},
            missing=failed,
            logs={p.name: p.log for p in processes},
        )
    finally:
        for process in processes:
            process.stop()
        for database in databases.values():
            try:
                postgres_server.drop_database(database)
            except Exception as error:  # a leftover database must not fail the session
                warnings.warn(f"could not drop {database}: {error}", stacklevel=1)
