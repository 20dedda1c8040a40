"""A real Apache Kafka broker (KRaft, one node, static quorum) run from Maven Central jars.

There is no Docker engine on the development and CI machines and no Debian package for the
broker, so the jars named in ``infra/kafka/pom.xml`` are fetched once with Maven into
``.cache/kafka/lib`` and the broker runs as ``java -cp 'lib/*' kafka.Kafka server.properties``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO, Any, Self

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
    repo_root,
    run_coroutine_blocking,
    tail,
    terminate_pid,
    wait_until,
    write_state,
)

#: Printed by ``KafkaBroker`` once its listeners accept requests (``STARTED_MESSAGE``).
STARTED_MESSAGE = "Kafka Server started"
POM_DIGEST_MARKER = ".pom.sha256"


def _pom_path(root: Path) -> Path:
    return root / "infra" / "kafka" / "pom.xml"


def default_lib_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / ".cache" / "kafka" / "lib"


def ensure_kafka_jars(root: Path | None = None) -> Path:
    """Fetch the broker's jars with Maven unless they are already there for this very pom.

    The pom's sha256 is kept beside the jars, so editing the pom (a Kafka upgrade) refetches.
    """
    root = root or repo_root()
    pom = _pom_path(root)
    lib = default_lib_dir(root)
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    marker = lib / POM_DIGEST_MARKER

    def up_to_date() -> bool:
        return marker.is_file() and marker.read_text().strip() == digest

    if up_to_date():
        return lib
    with file_lock(lib.parent / ".fetch.lock"):
        if up_to_date():  # another process fetched them while we waited for the lock
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError(
                "Maven (mvn) is needed once to fetch the Kafka broker jars and was not found; "
                "install it (Debian: apt-get install -y maven openjdk-17-jre-headless) or run "
                "scripts/bootstrap.sh"
            )
        # Fetch into a scratch folder and swap it in, so an interrupted fetch or a pom change
        # never leaves a mix of old and new jars on the classpath.
        staging = lib.with_name("lib.partial")
        shutil.rmtree(staging, ignore_errors=True)
        progress(f"fetching Kafka broker jars with Maven into {lib}")
        started = time.monotonic()
        result = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-4000:]
            raise InfraError(
                f"mvn could not fetch the Kafka jars (exit {result.returncode}):\n{output}"
            )
        (staging / POM_DIGEST_MARKER).write_text(digest + "\n")
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
        progress(f"Kafka jars fetched in {time.monotonic() - started:.1f}s")
    return lib


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise InfraError(
            "Java 17 or newer is needed to run the Kafka broker and was not found "
            "(Debian: apt-get install -y openjdk-17-jre-headless)"
        )
    return java


def new_cluster_id() -> str:
    """What ``kafka-storage.sh random-uuid`` prints, without starting a JVM for it."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaServer:
    """One local Kafka broker+controller on loopback, with its data in ``data_dir``.

    Ports are picked when first started (unless given) and kept, so ``restart()`` brings the
    same broker back on the same address with the same data.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        auto_create_topics: bool = False,
        lib_dir: Path | None = None,
        log4j_config: Path | None = None,
        state_file: Path | None = None,
        startup_timeout: float = 120.0,
        shutdown_timeout: float = 60.0,
        detach: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.auto_create_topics = auto_create_topics
        self._lib_dir = lib_dir
        self._log4j_config = log4j_config
        self.state_file = state_file
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        #: Detached brokers get their own session, so they outlive the CLI that started them
        #: and a Ctrl-C in that terminal does not reach them.
        self.detach = detach
        self._process: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self.started_in: float | None = None

    # -- addresses and files ------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise InfraError("the Kafka broker has no port yet; start() it first")
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def log_dir(self) -> Path:
        """Where the broker keeps partitions and the KRaft metadata log."""
        return self.data_dir / "data"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self.is_running():
            return
        started = time.monotonic()
        java = find_java()
        lib = self._lib_dir or ensure_kafka_jars()
        log4j = self._log4j_config or repo_root() / "infra" / "kafka" / "log4j2.properties"
        self._claim_ports()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        classpath = f"{lib}/*"
        if not (self.log_dir / "meta.properties").is_file():
            self._format_storage(java, classpath, log4j)

        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        command = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            # The JVM flags of Kafka's own kafka-run-class.sh.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:MaxInlineLevel=15",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.config_file),
        ]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.detach,
            )
        self._pid = self._process.pid
        self._await_started(offset)
        self.started_in = time.monotonic() - started
        progress(
            f"Kafka up at {self.bootstrap_servers} (pid {self._pid}) in {self.started_in:.1f}s"
        )
        self._save_state()

    def stop(self) -> None:
        if self._process is not None:
            self._stop_child(self._process)
        elif self._pid is not None and self._is_our_broker(self._pid):
            terminate_pid(self._pid, timeout=self.shutdown_timeout, what="Kafka")
        self._process = None
        self._pid = None
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)

    def restart(self) -> None:
        """Stop and start again: same ports, same data (ports are kept after the first start)."""
        self.stop()
        self.start()

    async def astart(self) -> None:
        """``start()`` without blocking the caller's event loop (consumers keep running)."""
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def arestart(self) -> None:
        await asyncio.to_thread(self.restart)

    def is_running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self._pid is not None and self._is_our_broker(self._pid)

    def ping(self, timeout: float = 10.0) -> bool:
        """Whether the broker answers a real Kafka request (DescribeCluster), not just TCP."""
        if self.port is None or not port_accepts(self.port):
            return False
        from aiokafka.admin import AIOKafkaAdminClient

        async def describe() -> Any:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                request_timeout_ms=int(timeout * 1000),
            )
            await admin.start()
            try:
                return await admin.describe_cluster()
            finally:
                await admin.close()

        try:
            run_coroutine_blocking(describe, timeout=timeout + 5)
        except Exception:  # any failure to answer means "not usable", which is the answer
            return False
        return True

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- state shared with other processes (zhucun infra status/down) -----------------
    def state(self) -> dict[str, Any]:
        return {
            "kind": "kafka",
            "pid": self._pid,
            "port": self.port,
            "controller_port": self.controller_port,
            "bootstrap_servers": self.bootstrap_servers,
            "data_dir": str(self.data_dir),
            "heap": self.heap,
            "auto_create_topics": self.auto_create_topics,
            "log_file": str(self.log_file),
        }

    @classmethod
    def from_state(cls, state_file: Path) -> KafkaServer | None:
        """The broker a state file describes (running or not), or None without a state file."""
        state = read_state(state_file)
        if state is None or state.get("kind") != "kafka":
            return None
        server = cls(
            Path(state["data_dir"]),
            port=state.get("port"),
            controller_port=state.get("controller_port"),
            heap=state.get("heap", "512m"),
            auto_create_topics=bool(state.get("auto_create_topics", False)),
            state_file=state_file,
            detach=True,
        )
        server._pid = state.get("pid")
        return server

    # -- internals ---------------------------------------------------------------------
    def _save_state(self) -> None:
        if self.state_file is not None:
            write_state(self.state_file, self.state())

    def _is_our_broker(self, pid: int) -> bool:
        # The config path is unique to this data dir: a reused pid cannot match it.
        return pid_alive(pid) and pid_cmdline_contains(pid, "kafka.Kafka", str(self.config_file))

    def _claim_ports(self) -> None:
        if self.port is None:
            self.port = free_port()
        else:
            ensure_port_free(self.port, "the Kafka broker", "--kafka-port")
        if self.controller_port is None:
            self.controller_port = free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()
        else:
            ensure_port_free(
                self.controller_port, "the Kafka controller", "--kafka-controller-port"
            )

    def _write_config(self) -> None:
        listeners = (
            f"PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}"
        )
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # Static quorum: one voter, formatted without --standalone.
            "controller.quorum.voters": f"1@{LOOPBACK}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            # Two cores: fewer threads than Kafka's defaults.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            # The project creates its topics explicitly; a typo must not create a topic.
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
            "offsets.topic.replication.factor": "1",
            # Default 50 partitions make the first consumer group slow to join.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Default 3 s wait before the first rebalance: pure delay for one-node tests.
            "group.initial.rebalance.delay.ms": "0",
            # Default 128 MiB on-heap cleaner buffer would take a quarter of a 512m heap.
            "log.cleaner.dedupe.buffer.size": "16777216",
        }
        text = "".join(f"{key}={value}\n" for key, value in settings.items())
        self.config_file.write_text("# Written by zhucun.infra on every start.\n" + text)

    def _format_storage(self, java: str, classpath: str, log4j: Path) -> None:
        result = subprocess.run(
            [
                java,
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={log4j}",
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                # '=' form: a random id may begin with '-', which argparse4j takes for an option.
                f"--cluster-id={new_cluster_id()}",
                f"--config={self.config_file}",
                "--ignore-formatted",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if result.returncode != 0:
            raise InfraError(
                f"formatting Kafka storage in {self.log_dir} failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )

    def _await_started(self, offset: int) -> None:
        process = self._process
        assert process is not None
        port = self.port
        assert port is not None

        def started() -> bool:
            return _log_contains(self.log_file, offset, STARTED_MESSAGE) and port_accepts(port)

        def died() -> bool:
            return process.poll() is not None

        if wait_until(started, timeout=self.startup_timeout, interval=0.2, failed=died):
            return
        exit_code = process.poll()
        if exit_code is None:
            self._stop_child(process)
            reason = f"did not report '{STARTED_MESSAGE}' within {self.startup_timeout:.0f}s"
        else:
            reason = f"exited with code {exit_code}"
        self._process = None
        self._pid = None
        raise InfraError(
            f"Kafka broker on port {port} {reason}; last lines of {self.log_file}:\n"
            f"{tail(self.log_file)}"
        )

    def _stop_child(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            return
        process.terminate()  # SIGTERM: Kafka's shutdown hook flushes and closes the logs
        try:
            process.wait(timeout=self.shutdown_timeout)
        except subprocess.TimeoutExpired:
            progress(f"Kafka (pid {process.pid}) ignored SIGTERM; sending SIGKILL")
            process.kill()
            process.wait(timeout=10)


def _log_contains(path: Path, offset: int, needle: str) -> bool:
    try:
        handle: IO[bytes]
        with path.open("rb") as handle:
            handle.seek(offset)
            return needle.encode() in handle.read()
    except OSError:
        return False
