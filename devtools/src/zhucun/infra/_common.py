"""Plumbing shared by the local Kafka and PostgreSQL launchers: paths, ports, processes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")

LOOPBACK = "127.0.0.1"


class InfraError(RuntimeError):
    """A local server could not be installed, started, reached or stopped."""


class PortInUseError(InfraError):
    """The port we were asked to use belongs to some other process."""


def progress(message: str) -> None:
    """Progress for humans on stderr (stdout stays clean for command output such as tokens).

    Never pass personal data here: only server names, ports, paths and timings.
    """
    print(f"[zhucun.infra] {message}", file=sys.stderr, flush=True)


def repo_root() -> Path:
    """The checkout this package runs from (it owns ``infra/kafka/pom.xml`` and ``.cache/``).

    ``ZHUCUN_HOME`` overrides it, for an installed (non-editable) copy of the CLI.
    """
    override = os.environ.get("ZHUCUN_HOME")
    if override:
        return Path(override).resolve()
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "infra" / "kafka" / "pom.xml").is_file():
                return candidate
    raise InfraError(
        "cannot find the Zhucun checkout (no infra/kafka/pom.xml above this package or the "
        "current directory); set ZHUCUN_HOME to the repository root"
    )


def cache_dir() -> Path:
    return repo_root() / ".cache"


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the servers themselves use it: a port in TIME_WAIT is usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
        return True


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def describe_port_owner(port: int) -> str:
    """Who listens on ``port``, as far as we may know (other users' processes may be hidden)."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return "an unknown process"
                try:
                    proc = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({proc.name()})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except (psutil.AccessDenied, OSError):
        pass
    return "another process"


def ensure_port_free(port: int, what: str, option: str) -> None:
    if not port_is_free(port):
        raise PortInUseError(
            f"port {port} wanted for {what} is already in use by {describe_port_owner(port)}, "
            f"which is not a server this launcher started; stop it or choose another port "
            f"with {option}"
        )


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` runs (a zombie has exited; only its parent has not reaped it yet)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pid_cmdline_contains(pid: int, *needles: str) -> bool:
    """Guards against pid reuse: the process must still be the one we started."""
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
    return all(needle in cmdline for needle in needles)


def terminate_pid(pid: int, *, timeout: float, what: str) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Works for non-children too."""
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(timeout=timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        progress(f"{what} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; sending SIGKILL")
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
            proc.wait(timeout=10)


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.2,
    failed: Callable[[], bool] = lambda: False,
) -> bool:
    """Poll ``condition`` until it holds (True), ``failed`` holds or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if failed():
            return False
        time.sleep(interval)
    return condition()


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def run_coroutine_blocking(factory: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    """Run a coroutine to completion from synchronous code.

    It runs on a private event loop in a worker thread, so this works whether or not the
    caller's thread already runs a loop (pytest-asyncio's session loop, for instance).
    """

    async def runner() -> T:
        return await factory()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zhucun-infra") as pool:
        return pool.submit(asyncio.run, runner()).result(timeout=timeout)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two processes don't fetch or initialise the same thing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    scratch.replace(path)  # atomic: a concurrent `status` never reads half a file


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
