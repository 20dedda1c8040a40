"""The demo's service processes: every service as its own detached uvicorn process, wired to
the local Kafka and PostgreSQL of ``zhucun infra up``.

State lives in ``.cache/infra/services.json`` so ``zhucun services status`` and
``zhucun services down`` in another process find them again. Logs go to
``.cache/infra/services/<name>.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from zhucun.infra._common import (
    InfraError,
    ensure_port_free,
    pid_alive,
    pid_cmdline_contains,
    progress,
    read_state,
    terminate_pid,
    wait_until,
    write_state,
)
from zhucun.infra.kafka import KafkaServer
from zhucun.infra.local import ServerStatus, infra_dir, kafka_state_file, postgres_state_file
from zhucun.infra.postgres import PostgresServer

#: Every service that exists, and the loopback port the demo serves it on.
SERVICE_PORTS = {"dispatch": 8001, "attendance": 8002, "assessment": 8003, "projections": 8004}
STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_running(self) -> bool:
        return pid_alive(self.pid) and pid_cmdline_contains(self.pid, "serve", self.name)

    def readiness(self) -> tuple[bool, str]:
        """Asks the service itself. ``/health/ready`` answers 200 once the database works;
        the local launcher also waits for Kafka, so that a demo started next is published."""
        try:
            with urllib.request.urlopen(f"{self.url}/health/ready", timeout=5) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            return False, f"not ready: {error.read().decode(errors='replace')[:200]}"
        except (OSError, ValueError) as error:
            return False, f"not answering: {error}"
        kafka = body.get("components", {}).get("kafka", {}).get("state", "absent")
        if kafka != "connected":
            return False, f"ready, Kafka {kafka}"
        attention = body.get("attention") or []
        return True, f"ready; needs attention: {', '.join(attention)}" if attention else "ready"


def _state_file() -> Path:
    return infra_dir() / "services.json"


def _load() -> dict[str, ServiceProcess]:
    state = read_state(_state_file()) or {}
    return {
        name: ServiceProcess(name, int(entry["pid"]), int(entry["port"]))
        for name, entry in state.items()
    }


def _save(processes: dict[str, ServiceProcess]) -> None:
    write_state(
        _state_file(),
        {p.name: {"pid": p.pid, "port": p.port} for p in processes.values()},
    )


def up() -> list[ServiceProcess]:
    """Start every service not running yet (idempotent); waits until each reports ready."""
    kafka = KafkaServer.from_state(kafka_state_file())
    postgres = PostgresServer.from_state(postgres_state_file())
    if kafka is None or postgres is None or not (kafka.is_running() and postgres.is_running()):
        raise InfraError("Kafka and PostgreSQL are not running: run `zhucun infra up` first")
    processes = _load()
    logs = infra_dir() / "services"
    logs.mkdir(parents=True, exist_ok=True)
    started: list[ServiceProcess] = []
    for name, port in SERVICE_PORTS.items():
        current = processes.get(name)
        if current is not None and current.is_running():
            progress(f"{name} already running at {current.url} (pid {current.pid})")
            continue
        ensure_port_free(port, f"the {name} service", "(stop what uses it)")
        env = {
            **os.environ,
            "ZHUCUN_SERVICE_NAME": name,
            "ZHUCUN_HTTP_PORT": str(port),
            "ZHUCUN_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "ZHUCUN_POSTGRES__DSN": postgres.dsn(name),
            "ZHUCUN_LOG__FORMAT": "json",
        }
        with (logs / f"{name}.log").open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "zhucun.cli.main", "serve", name, "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI; Ctrl-C there does not reach it
            )
        processes[name] = ServiceProcess(name, child.pid, port)
        started.append(processes[name])
        _save(processes)
    for service in started:
        ready = wait_until(
            lambda s=service: s.readiness()[0],  # type: ignore[misc]
            timeout=STARTUP_SECONDS,
            interval=0.3,
            failed=lambda s=service: not pid_alive(s.pid),  # type: ignore[misc]
        )
        if not ready:
            raise InfraError(
                f"{service.name} did not become ready: see {logs / (service.name + '.log')}"
            )
        progress(f"{service.name} ready at {service.url} (pid {service.pid})")
    return list(processes.values())


def down() -> list[str]:
    stopped = []
    for service in _load().values():
        if service.is_running():
            terminate_pid(service.pid, timeout=30, what=service.name)
            stopped.append(service.name)
    _state_file().unlink(missing_ok=True)
    return stopped


def status() -> list[ServerStatus]:
    processes = _load()
    result = []
    for name in SERVICE_PORTS:
        service = processes.get(name)
        if service is None:
            result.append(ServerStatus(name, None, None, False, "not started"))
        elif not service.is_running():
            result.append(ServerStatus(name, service.pid, service.url, False, "not running"))
        else:
            ready, detail = service.readiness()
            result.append(ServerStatus(name, service.pid, service.url, ready, detail))
    return result
