"""The image (Dockerfile, .dockerignore) and docker-compose.yml, checked offline.

No Docker engine is needed: the Dockerfile's structure is checked by reading it, and the
compose file is validated against the Compose Specification bundled in check-jsonschema
(``--builtin-schema vendor.compose-spec``) plus the project's own rules. Negative tests
break each file in one way and assert the check responsible rejects it.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = ("dispatch", "attendance", "assessment", "projections")
EVENT_TOPICS = (
    "dispatch.events.v1",
    "attendance.events.v1",
    "assessment.events.v1",
    "decisions.events.v1",
)
#: Things that compile or fetch code: none belongs in the image that runs.
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|cc|clang|make|cmake|build-essential|[a-z0-9.+-]+-dev|git|curl|wget|uv|pip)\b"
)
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
#: An exact release: major.minor.patch, or major.minor for PostgreSQL (its versions have two
#: parts), optionally followed by a variant such as -slim-bookworm.
EXACT_TAG = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+([-.][A-Za-z0-9.-]+)?$")
POSTGRES_TAG = re.compile(r"^[0-9]+\.[0-9]+([-.][A-Za-z0-9.-]+)?$")


# --- the Dockerfile --------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages and their instructions (continuations joined, comments and blanks dropped)."""
    stages: list[Stage] = []
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    for number, line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [w for w in arguments.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(words[0], name, number))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, arguments.strip(), number))
    return stages


def _pinned(image: str) -> bool:
    """A digest, or a tag naming an exact release (never latest, never 3.11 or 18)."""
    if DIGEST.search(image):
        return True
    repository, _, tag = image.rpartition("/")[2].partition(":")
    return bool(EXACT_TAG.match(tag) or (repository == "postgres" and POSTGRES_TAG.match(tag)))


def dockerfile_problems(text: str, root: Path = ROOT) -> list[str]:
    stages = parse_dockerfile(text)
    if not stages:
        return ["no FROM"]
    problems = []
    names = {s.name for s in stages if s.name}
    if len(stages) < 2:
        problems.append("single stage: build and runtime are not separated")
    for stage in stages:
        if stage.image not in names and not _pinned(stage.image):
            problems.append(f"line {stage.line}: base image {stage.image} is not an exact version")
        for instruction in stage.instructions:
            if instruction.keyword in ("COPY", "ADD"):
                source = re.search(r"--from=(\S+)", instruction.arguments)
                if source and source.group(1) not in names and not _pinned(source.group(1)):
                    problems.append(
                        f"line {instruction.line}: COPY --from={source.group(1)} is not pinned"
                    )
            if instruction.keyword == "ADD" and re.search(r"https?://", instruction.arguments):
                problems.append(f"line {instruction.line}: ADD from a URL")
            if instruction.keyword in ("ENV", "ARG") and re.search(
                r"(PASSWORD|SECRET|TOKEN)\w*\s*=", instruction.arguments, re.IGNORECASE
            ):
                problems.append(f"line {instruction.line}: a secret in {instruction.keyword}")
    syncs = [
        i for s in stages for i in s.instructions if i.keyword == "RUN" and "uv sync" in i.arguments
    ]
    if not syncs:
        problems.append("dependencies are not installed with uv sync")
    for sync in syncs:
        if not re.search(r"--(frozen|locked)\b", sync.arguments):
            problems.append(f"line {sync.line}: uv sync ignores the lock file (no --frozen)")
        if "--no-dev" not in sync.arguments:
            problems.append(f"line {sync.line}: uv sync installs the dev dependencies")

    final = stages[-1]
    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users:
        problems.append("the final stage runs as root (no USER)")
    else:
        user = users[-1].arguments.split(":")[0]
        if not user.isdigit() or int(user) == 0:
            problems.append(
                f"line {users[-1].line}: USER {users[-1].arguments} is not a non-root uid"
            )
    for instruction in final.instructions:
        if instruction.keyword == "RUN":
            installs = re.search(
                r"(apt-get|apt|apk|yum|dnf)\s+(-\S+\s+)*(install|add)\b(.*)", instruction.arguments
            )
            if installs and BUILD_TOOLS.search(installs.group(4)):
                problems.append(f"line {instruction.line}: installs build tools in the final stage")
            if re.search(r"\b(pip|uv)\s+(install|sync)\b", instruction.arguments):
                problems.append(f"line {instruction.line}: installs packages in the final stage")
        if instruction.keyword == "COPY":
            source = re.search(r"--from=(\S+)", instruction.arguments)
            if source and source.group(1) not in names:
                problems.append(
                    f"line {instruction.line}: copies from an image into the final stage"
                )
            if re.search(r"(^|\s)/?(usr/local/)?bin/uv\b|/uv(\s|$)", instruction.arguments):
                problems.append(f"line {instruction.line}: copies uv into the final stage")
    if not any(
        i.keyword == "COPY" and re.search(r"--from=(\S+)", i.arguments) for i in final.instructions
    ):
        problems.append("the final stage copies nothing built in an earlier stage")
    for keyword in ("ENTRYPOINT", "CMD"):
        found = [i for i in final.instructions if i.keyword == keyword]
        if keyword == "ENTRYPOINT" and not found:
            problems.append("no ENTRYPOINT")
        for instruction in found:
            try:
                parsed = json.loads(instruction.arguments)
            except json.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, list):
                problems.append(
                    f"line {instruction.line}: {keyword} in shell form (signals would not reach "
                    "the process)"
                )
    environment = " ".join(i.arguments for i in final.instructions if i.keyword == "ENV")
    policies = re.search(r"ZHUCUN_POLICIES_DIR=(\S+)", environment)
    if not policies:
        problems.append("ZHUCUN_POLICIES_DIR is not set (the default points into the source tree)")
    elif not any(
        i.keyword == "COPY" and i.arguments.split()[-1].rstrip("/") == policies.group(1)
        for i in final.instructions
    ):
        problems.append(f"no policy packs are copied to {policies.group(1)}")

    # The same Python and uv as the development environment.
    python = (root / ".python-version").read_text().strip()
    for stage in stages:
        if stage.image.startswith("python:") and not stage.image.startswith(f"python:{python}."):
            problems.append(f"line {stage.line}: {stage.image} is not Python {python}")
    bootstrap = (root / "scripts" / "bootstrap.sh").read_text()
    uv_version = re.search(r'UV_VERSION="([^"]+)"', bootstrap)
    uv_images = [s.image for s in stages if s.image.startswith("ghcr.io/astral-sh/uv:")]
    if (
        uv_version
        and uv_images
        and any(not i.endswith(":" + uv_version.group(1)) for i in uv_images)
    ):
        problems.append(f"uv image {uv_images} differs from bootstrap.sh's {uv_version.group(1)}")
    return problems


def copied_sources(text: str) -> list[str]:
    """Paths of the build context that the Dockerfile copies."""
    sources = []
    for stage in parse_dockerfile(text):
        for instruction in stage.instructions:
            if instruction.keyword not in ("COPY", "ADD") or "--from=" in instruction.arguments:
                continue
            words = [w for w in shlex.split(instruction.arguments) if not w.startswith("--")]
            sources.extend(words[:-1])
    return sources


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(f"^{out}(/.*)?$")


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's .dockerignore semantics: the last matching pattern wins, ! re-includes."""
    verdict = False
    for rule in rules:
        negated = rule.startswith("!")
        pattern = rule[1:] if negated else rule
        if _ignore_regex(pattern.strip("/")).match(path):
            verdict = not negated
    return verdict


def dockerignore_rules(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_is_multi_stage_pinned_non_root_and_lean() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_everything_the_dockerfile_copies_exists_and_is_sent() -> None:
    rules = dockerignore_rules(DOCKERIGNORE.read_text())
    sources = copied_sources(DOCKERFILE.read_text())
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        files = (
            [ROOT / source] if (ROOT / source).is_file() else sorted((ROOT / source).rglob("*.py"))
        )
        files = files or sorted(p for p in (ROOT / source).rglob("*") if p.is_file())
        for path in files[:50]:
            relative = path.relative_to(ROOT).as_posix()
            if "__pycache__" in relative:
                continue
            assert not ignored(relative, rules), f".dockerignore drops {relative}"


@pytest.mark.parametrize(
    "path",
    [
        ".cache/kafka/lib/kafka-clients.jar",
        ".cache/infra/postgres/data/PG_VERSION",
        ".venv/bin/python",
        ".git/HEAD",
        "tests/deploy/test_images.py",
        "bench/results/run.json",
        "deploy/k8s/base/kustomization.yaml",
        "shared/src/zhucun/shared/__pycache__/store.cpython-311.pyc",
    ],
)
def test_dockerignore_keeps_local_state_out_of_the_build_context(path: str) -> None:
    assert ignored(path, dockerignore_rules(DOCKERIGNORE.read_text()))


DOCKERFILE_BREAKAGES: list[tuple[str, Callable[[str], str], str]] = [
    ("USER removed", lambda t: re.sub(r"^USER .*$", "", t, flags=re.M), "runs as root"),
    ("USER root", lambda t: re.sub(r"^USER .*$", "USER root", t, flags=re.M), "non-root"),
    ("USER 0", lambda t: re.sub(r"^USER .*$", "USER 0:0", t, flags=re.M), "non-root"),
    (
        "floating base image",
        lambda t: t.replace(
            "python:3.11.14-slim-bookworm AS runtime", "python:3.11-slim AS runtime"
        ),
        "exact version",
    ),
    (
        "latest base image",
        lambda t: t.replace("python:3.11.14-slim-bookworm AS build", "python:latest AS build"),
        "exact version",
    ),
    (
        "floating uv",
        lambda t: t.replace("ghcr.io/astral-sh/uv:0.13.9", "ghcr.io/astral-sh/uv:latest"),
        "not an exact version",
    ),
    (
        "compiler in the final stage",
        lambda t: t.replace(
            "RUN python -m pip uninstall",
            "RUN apt-get update && apt-get install -y --no-install-recommends gcc libpq-dev\n"
            "RUN python -m pip uninstall",
        ),
        "build tools",
    ),
    (
        "pip install in the final stage",
        lambda t: t.replace("USER 10001:10001", "RUN pip install httpie\nUSER 10001:10001"),
        "installs packages",
    ),
    (
        "single stage",
        lambda t: (
            "FROM python:3.11.14-slim-bookworm\nRUN uv sync --frozen --no-dev\nUSER 10001\n"
            'ENTRYPOINT ["zhucun"]\n'
        ),
        "single stage",
    ),
    (
        "lock file ignored",
        lambda t: t.replace(
            "uv sync --frozen --no-dev --no-editable", "uv sync --no-dev --no-editable"
        ),
        "lock file",
    ),
    (
        "dev dependencies installed",
        lambda t: t.replace(
            "uv sync --frozen --no-dev --no-editable", "uv sync --frozen --no-editable"
        ),
        "dev dependencies",
    ),
    (
        "shell-form entry point",
        lambda t: t.replace('ENTRYPOINT ["zhucun"]', "ENTRYPOINT zhucun"),
        "shell form",
    ),
    (
        "policy packs not copied",
        lambda t: re.sub(r"^COPY --chown=root:root policies .*$", "", t, flags=re.M),
        "policy packs",
    ),
    (
        "another Python",
        lambda t: t.replace(
            "python:3.11.14-slim-bookworm AS runtime", "python:3.12.8-slim-bookworm AS runtime"
        ),
        "is not Python 3.11",
    ),
    (
        "a secret baked in",
        lambda t: t.replace(
            "ZHUCUN_LOG__FORMAT=json", "ZHUCUN_LOG__FORMAT=json \\\n    ZHUCUN_AUTH__SECRET=x"
        ),
        "secret",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "expected"), [pytest.param(b, e, id=n) for n, b, e in DOCKERFILE_BREAKAGES]
)
def test_a_broken_dockerfile_is_rejected(breakage: Callable[[str], str], expected: str) -> None:
    original = DOCKERFILE.read_text()
    broken = breakage(original)
    assert broken != original, "the breakage did not apply"
    problems = dockerfile_problems(broken)
    assert any(expected in problem for problem in problems), problems


# --- docker-compose.yml ----------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def compose_spec_errors(
    document: dict[str, Any], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def compose_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    services: dict[str, Any] = compose.get("services") or {}
    for required in ("kafka", "postgres", *SERVICES):
        if required not in services:
            problems.append(f"no service {required}")
    built = {s.get("image") for s in services.values() if "build" in s}
    for name, service in services.items():
        image = service.get("image", "")
        if image not in built and not _pinned(image):
            problems.append(f"{name}: image {image!r} is not an exact version")
    kafka = services.get("kafka", {})
    if not kafka.get("image", "").startswith("apache/kafka:"):
        problems.append("kafka: not the official apache/kafka image")
    if "controller" not in str((kafka.get("environment") or {}).get("KAFKA_PROCESS_ROLES", "")):
        problems.append("kafka: not in KRaft mode")
    if any("zookeeper" in name for name in services):
        problems.append("a ZooKeeper service")
    for name in ("kafka", "postgres", *SERVICES):
        if "test" not in (services.get(name, {}).get("healthcheck") or {}):
            problems.append(f"{name}: no healthcheck")
    topics = str((services.get("kafka-topics") or {}).get("command", ""))
    for topic in EVENT_TOPICS:
        if topic not in topics:
            problems.append(f"kafka-topics: does not create {topic} and its .dlq")
    if "retention.ms=-1" not in topics:
        problems.append("kafka-topics: event topics do not keep everything")
    for name in SERVICES:
        service = services.get(name)
        if not service:
            continue
        depends = service.get("depends_on") or {}
        if (depends.get("postgres") or {}).get("condition") != "service_healthy":
            problems.append(f"{name}: does not wait for a healthy PostgreSQL")
        if (depends.get("kafka-topics") or {}).get("condition") != "service_completed_successfully":
            problems.append(f"{name}: does not wait for the topics")
        if service.get("command") != ["serve", name]:
            problems.append(f"{name}: command is {service.get('command')}, not serve {name}")
        if service.get("read_only") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if not any(str(t).startswith("/tmp") for t in service.get("tmpfs") or []):
            problems.append(f"{name}: no tmpfs at /tmp")
        if "ALL" not in (service.get("cap_drop") or []):
            problems.append(f"{name}: capabilities are not dropped")
        dsn = str((service.get("environment") or {}).get("ZHUCUN_POSTGRES__DSN", ""))
        if not dsn.endswith(f"@postgres:5432/{name}"):
            problems.append(f"{name}: ZHUCUN_POSTGRES__DSN {dsn!r} is not its own database")
    demo = [
        (name, service)
        for name, service in services.items()
        if "demo" in (service.get("profiles") or [])
    ]
    if not demo:
        problems.append("no service in the demo profile")
    for name, service in demo:
        waits = {
            dependency
            for dependency, condition in (service.get("depends_on") or {}).items()
            if (condition or {}).get("condition") == "service_healthy"
        }
        if not set(SERVICES) <= waits:
            problems.append(f"{name}: starts before every service is healthy")
    for name, service in services.items():
        if (
            "demo" not in (service.get("profiles") or [])
            and name in SERVICES
            and service.get("profiles")
        ):
            problems.append(f"{name}: only runs in a profile")
    return problems


def test_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_everything_in_order_with_healthchecks() -> None:
    assert compose_problems(load_compose()) == []


def test_compose_postgres_init_creates_one_database_per_service() -> None:
    compose = load_compose()
    mounts = compose["services"]["postgres"]["volumes"]
    init = [m.split(":")[0] for m in mounts if "docker-entrypoint-initdb.d" in m]
    assert init, "no init script"
    sql = (ROOT / init[0]).read_text()
    for service in SERVICES:
        assert f"CREATE ROLE {service} LOGIN" in sql
        assert f"CREATE DATABASE {service} OWNER {service};" in sql


COMPOSE_SPEC_BREAKAGES: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    (
        "unknown depends_on condition",
        lambda c: c["services"]["dispatch"]["depends_on"]["postgres"].update(condition="healthy"),
    ),
    ("misspelt key", lambda c: c["services"]["attendance"].update(portz=["8002:8000"])),
    (
        "healthcheck test not a command",
        lambda c: c["services"]["kafka"]["healthcheck"].update(test=5),
    ),
    ("ports not a list", lambda c: c["services"]["postgres"].update(ports="15432:5432")),
    ("misspelt volume option", lambda c: c["volumes"].update({"kafka-data": {"driverr": "local"}})),
]


@pytest.mark.parametrize("breakage", [pytest.param(b, id=n) for n, b in COMPOSE_SPEC_BREAKAGES])
def test_a_compose_file_breaking_the_specification_is_rejected(
    breakage: Callable[[dict[str, Any]], None], tmp_path: Path
) -> None:
    compose = load_compose()
    assert compose_spec_errors(compose, tmp_path).returncode == 0
    breakage(compose)
    result = compose_spec_errors(compose, tmp_path)
    assert result.returncode != 0, result.stdout


COMPOSE_BREAKAGES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "healthcheck removed",
        lambda c: c["services"]["assessment"].pop("healthcheck"),
        "no healthcheck",
    ),
    (
        "no start-up ordering",
        lambda c: c["services"]["projections"].pop("depends_on"),
        "does not wait",
    ),
    (
        "latest image",
        lambda c: c["services"]["postgres"].update(image="postgres:latest"),
        "exact version",
    ),
    ("writable root", lambda c: c["services"]["dispatch"].update(read_only=False), "writable"),
    (
        "shared database",
        lambda c: c["services"]["attendance"]["environment"].update(
            ZHUCUN_POSTGRES__DSN="postgresql://dispatch:dispatch@postgres:5432/dispatch"
        ),
        "not its own database",
    ),
    ("no demo profile", lambda c: c["services"].pop("demo"), "demo profile"),
    (
        "ZooKeeper mode",
        lambda c: c["services"]["kafka"]["environment"].pop("KAFKA_PROCESS_ROLES"),
        "KRaft",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "expected"), [pytest.param(b, e, id=n) for n, b, e in COMPOSE_BREAKAGES]
)
def test_a_broken_compose_file_is_rejected(
    breakage: Callable[[dict[str, Any]], None], expected: str
) -> None:
    compose = copy.deepcopy(load_compose())
    breakage(compose)
    problems = compose_problems(compose)
    assert any(expected in problem for problem in problems), problems
