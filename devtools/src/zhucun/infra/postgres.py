"""A private PostgreSQL cluster (``initdb`` + ``pg_ctl``) in a project folder, on its own port.

The server binaries come from Debian's ``postgresql`` package and are installed when missing.
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user and
every server command runs through ``runuser``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from zhucun.infra._common import (
    LOOPBACK,
    InfraError,
    ensure_port_free,
    file_lock,
    free_port,
    pid_alive,
    pid_cmdline_contains,
    port_accepts,
    progress,
    read_state,
    run_coroutine_blocking,
    tail,
    write_state,
)

#: Names we create databases under; also what makes interpolating them into SQL safe.
DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SERVER_OS_USER = "postgres"
#: Linux's limit on a unix socket path (sun_path), including the terminating NUL.
_SOCKET_PATH_MAX = 107


def _is_root() -> bool:
    return os.geteuid() == 0


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<major>/bin
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (0,)


def find_postgres_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live: PATH first, then Debian's versioned folders."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if (path.parent / "pg_ctl").is_file()
    ]
    return max(candidates, key=_version_key) if candidates else None


def ensure_postgres_installed() -> Path:
    """The PostgreSQL server binaries' folder, installing Debian's packages when needed."""
    bindir = find_postgres_bindir()
    if bindir is not None:
        return bindir
    if not _is_root() or shutil.which("apt-get") is None:
        raise InfraError(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found; install them "
            "(Debian/Ubuntu: sudo apt-get install -y postgresql) or run scripts/bootstrap.sh"
        )
    progress("PostgreSQL server not found; installing Debian's postgresql package")
    # Debian's package would otherwise create and start a 'main' cluster on port 5432 that
    # nothing here uses. postgresql-common reads this switch from createcluster.conf, which
    # includes createcluster.d/: a drop-in there avoids a conffile conflict on install.
    no_main_cluster = Path("/etc/postgresql-common/createcluster.d/zhucun-no-main-cluster.conf")
    no_main_cluster.parent.mkdir(parents=True, exist_ok=True)
    no_main_cluster.write_text("create_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        [
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "postgresql",
        ],
    ):
        result = subprocess.run(
            command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise InfraError(
                f"{' '.join(command)} failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )
    bindir = find_postgres_bindir()
    if bindir is None:
        raise InfraError("postgresql was installed but initdb/pg_ctl still cannot be found")
    return bindir


def _check_database_name(name: str) -> str:
    if not DATABASE_NAME.match(name):
        raise ValueError(f"database name {name!r} must match {DATABASE_NAME.pattern}")
    return name


async def _create_database(admin_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn, timeout=30)
    try:
        exists = await connection.fetchval("select 1 from pg_database where datname = $1", name)
        if exists:
            return
        # Created concurrently by someone else between the check and here: fine all the same.
        with contextlib.suppress(asyncpg.DuplicateDatabaseError):
            await connection.execute(f'create database "{_check_database_name(name)}"')
    finally:
        await connection.close()


async def _drop_database(admin_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn, timeout=30)
    try:
        # FORCE: tests may leave pooled connections open; the database goes regardless.
        await connection.execute(
            f'drop database if exists "{_check_database_name(name)}" with (force)'
        )
    finally:
        await connection.close()


async def _select_one(dsn: str, connect_timeout: float) -> bool:
    connection = await asyncpg.connect(dsn, timeout=connect_timeout)
    try:
        return bool(await connection.fetchval("select 1") == 1)
    finally:
        await connection.close()


class PostgresLike(Protocol):
    """What tests need from a PostgreSQL server, wherever it runs."""

    def dsn(self, database: str) -> str: ...

    def create_database(self, name: str) -> None: ...

    def drop_database(self, name: str) -> None: ...


class ExternalPostgres:
    """A server we did not start (env var, testcontainers), reached through an admin DSN."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn

    def dsn(self, database: str) -> str:
        parts = urlsplit(self.admin_dsn)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def create_database(self, name: str) -> None:
        _check_database_name(name)
        run_coroutine_blocking(lambda: _create_database(self.admin_dsn, name))

    def drop_database(self, name: str) -> None:
        _check_database_name(name)
        run_coroutine_blocking(lambda: _drop_database(self.admin_dsn, name))


class PostgresServer:
    """A private PostgreSQL cluster in ``base_dir`` listening on 127.0.0.1 only.

    Layout: ``data/`` (PGDATA), ``run/`` (unix socket), ``postgres.log``. The superuser is
    ``zhucun``/``zhucun`` with scram-sha-256 on TCP. ``fsync`` stays on: this is the real
    server, and durability is part of what the tests check.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        user: str = "zhucun",
        password: str = "zhucun",
        state_file: Path | None = None,
        startup_timeout: float = 60.0,
        detach: bool = False,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.port = port
        self.user = user
        self.password = password
        self.state_file = state_file
        self.startup_timeout = startup_timeout
        self.detach = detach
        self.started_in: float | None = None

    # -- addresses and files ------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (from ``postmaster.pid``)."""
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first_line.strip())
        except (OSError, ValueError, IndexError):
            return None
        # postmaster.pid outlives a crash: make sure the pid is still our postmaster.
        alive = pid_alive(pid) and pid_cmdline_contains(pid, "postgres", str(self.data_dir))
        return pid if alive else None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def dsn(self, database: str) -> str:
        if self.port is None:
            raise InfraError("the PostgreSQL server has no port yet; start() it first")
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"postgresql://{credentials}@{LOOPBACK}:{self.port}/{database}"

    @property
    def admin_dsn(self) -> str:
        return self.dsn("postgres")

    # -- databases -----------------------------------------------------------------------
    def create_database(self, name: str) -> None:
        """Create database ``name`` unless it exists (safe to call again)."""
        _check_database_name(name)
        run_coroutine_blocking(lambda: _create_database(self.admin_dsn, name))

    def drop_database(self, name: str) -> None:
        _check_database_name(name)
        run_coroutine_blocking(lambda: _drop_database(self.admin_dsn, name))

    async def acreate_database(self, name: str) -> None:
        await _create_database(self.admin_dsn, _check_database_name(name))

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self.is_running():
            return
        started = time.monotonic()
        bindir = ensure_postgres_installed()
        self._prepare_dirs()
        with file_lock(self.base_dir / ".init.lock"):
            if not (self.data_dir / "PG_VERSION").is_file():
                self._initdb(bindir)
        if self.port is None:
            self.port = free_port()
        else:
            ensure_port_free(self.port, "PostgreSQL", "--postgres-port")
        self._write_runtime_config()
        result = self._run_as_server_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(int(self.startup_timeout)),
                "-s",
                "start",
            ],
            timeout=self.startup_timeout + 30,
        )
        if result.returncode != 0:
            raise InfraError(
                f"PostgreSQL did not start on port {self.port} (pg_ctl exit "
                f"{result.returncode}): {result.stderr.strip()}\nlast lines of "
                f"{self.log_file}:\n{tail(self.log_file)}"
            )
        self.started_in = time.monotonic() - started
        progress(f"PostgreSQL up at {self.address} (pid {self.pid}) in {self.started_in:.1f}s")
        if self.state_file is not None:
            write_state(self.state_file, self.state())

    def stop(self) -> None:
        if self.is_running():
            bindir = find_postgres_bindir()
            if bindir is None:
                raise InfraError("cannot stop PostgreSQL: pg_ctl is no longer installed")
            # Fast: roll back open transactions and disconnect clients, then a clean
            # shutdown checkpoint (unlike immediate, which needs crash recovery next time).
            command = [str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60"]
            result = self._run_as_server_user([*command, "-s", "-m", "fast", "stop"], timeout=90)
            if result.returncode != 0 and self.is_running():
                progress(f"pg_ctl stop -m fast failed ({result.stderr.strip()}); using immediate")
                self._run_as_server_user([*command, "-s", "-m", "immediate", "stop"], timeout=90)
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def is_running(self) -> bool:
        return self.pid is not None

    def ping(self, timeout: float = 5.0) -> bool:
        """Whether the server answers ``select 1`` over TCP with the superuser's password."""
        if self.port is None or not port_accepts(self.port):
            return False
        try:
            return run_coroutine_blocking(
                lambda: _select_one(self.admin_dsn, timeout), timeout=timeout + 5
            )
        except Exception:  # any failure to answer means "not usable", which is the answer
            return False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- state shared with other processes (zhucun infra status/down) -----------------
    def state(self) -> dict[str, Any]:
        return {
            "kind": "postgres",
            "pid": self.pid,
            "port": self.port,
            "base_dir": str(self.base_dir),
            "user": self.user,
            "log_file": str(self.log_file),
        }

    @classmethod
    def from_state(cls, state_file: Path) -> PostgresServer | None:
        state = read_state(state_file)
        if state is None or state.get("kind") != "postgres":
            return None
        return cls(
            Path(state["base_dir"]),
            port=state.get("port"),
            user=state.get("user", "zhucun"),
            state_file=state_file,
            detach=True,
        )

    # -- internals ---------------------------------------------------------------------
    def _server_user(self) -> pwd.struct_passwd | None:
        """The unprivileged owner of the cluster when we are root; None when we are not."""
        if not _is_root():
            return None
        try:
            return pwd.getpwnam(SERVER_OS_USER)
        except KeyError:
            # Debian's package creates it; a hand-made install may not have.
            progress(f"creating system user {SERVER_OS_USER!r} to own the PostgreSQL cluster")
            subprocess.run(
                ["useradd", "--system", "--no-create-home", SERVER_OS_USER],
                check=True,
                capture_output=True,
            )
            return pwd.getpwnam(SERVER_OS_USER)

    def _run_as_server_user(
        self, command: list[str], *, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", SERVER_OS_USER, "--"] if self._server_user() else []
        return subprocess.run(
            [*prefix, *command],
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            # pg_ctl sends the postmaster's own output to the -l log file, so these pipes
            # close when pg_ctl exits.
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=self.detach,
            check=False,
        )

    def _prepare_dirs(self) -> None:
        socket_path = self.socket_dir / ".s.PGSQL.65535"
        if len(str(socket_path)) > _SOCKET_PATH_MAX:
            raise InfraError(
                f"{self.base_dir} is too deep for a unix socket path ({len(str(socket_path))} "
                f"> {_SOCKET_PATH_MAX} characters); use a shorter data directory"
            )
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        owner = self._server_user()
        if owner is None:
            return
        for path in (self.base_dir, self.socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.socket_dir.chmod(0o700)
        if self.log_file.exists():
            os.chown(self.log_file, owner.pw_uid, owner.pw_gid)
        # The server user must be able to walk down to its folder: give others search
        # (x, not read) permission on ancestors that lack it, e.g. a 0700 temp folder.
        for ancestor in self.base_dir.parents:
            mode = ancestor.stat().st_mode
            if not mode & stat.S_IXOTH:
                progress(f"allowing others to traverse {ancestor} (o+x) for the postgres user")
                ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)

    def _initdb(self, bindir: Path) -> None:
        progress(f"initialising a PostgreSQL cluster in {self.data_dir}")
        password_file = self.base_dir / ".initdb-password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        owner = self._server_user()
        if owner is not None:
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        try:
            result = self._run_as_server_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    f"--pwfile={password_file}",
                    "--auth-host=scram-sha-256",
                    # The socket lives in a 0700 folder of the server user: only that user
                    # (and root) can reach it, so trust there is safe and spares a password.
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                timeout=300,
            )
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise InfraError(
                f"initdb failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# Rewritten by zhucun.infra on every start.\ninclude 'zhucun.conf'\n")

    def _write_runtime_config(self) -> None:
        settings = {
            "listen_addresses": f"'{LOOPBACK}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
            "shared_buffers": "'128MB'",
            "fsync": "on",
            "password_encryption": "'scram-sha-256'",
        }
        conf = self.data_dir / "zhucun.conf"
        conf.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        owner = self._server_user()
        if owner is not None:
            os.chown(conf, owner.pw_uid, owner.pw_gid)
        conf.chmod(0o600)
