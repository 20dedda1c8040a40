"""The product as users install it: ``uv sync --frozen --no-dev`` (no development group, no
editable links), its ``zhucun`` command, its four services against the real Kafka and
PostgreSQL, and each workspace member alone with only the dependencies it declares.

The development environment the rest of the suite runs in has every member and every
development tool installed, so it cannot see an import of a package the product does not
ship; these tests can."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from served import (
    COMMANDS,
    DEV_ONLY_COMMANDS,
    SERVICES,
    Served,
    answer_real_requests,
    listed_commands,
    new_county,
    serving,
    verify_and_status,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY_MODULES = ("zhucun.infra", "zhucun.sim", "zhucun.reference", "zhucun.devtools")
#: Packages only the development tooling needs.
DEV_ONLY_PACKAGES = ("psutil", "httpx", "aiohttp", "pytest", "testcontainers")
#: Workspace member -> the import package(s) whose every module must import alone.
MEMBERS = {
    "zhucun-shared": "zhucun.shared",
    "zhucun-dispatch-contract": "zhucun.contracts.dispatch",
    "zhucun-attendance-contract": "zhucun.contracts.attendance",
    "zhucun-assessment-contract": "zhucun.contracts.assessment",
    "zhucun-decisions-contract": "zhucun.contracts.decisions",
    "zhucun-dispatch": "zhucun.dispatch",
    "zhucun-attendance": "zhucun.attendance",
    "zhucun-assessment": "zhucun.assessment",
    "zhucun-projections": "zhucun.projections",
    "zhucun": "zhucun.cli",
}
SYNC_TIMEOUT = 600


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        pytest.fail("uv is not on PATH: scripts/bootstrap.sh installs it")
    return found


def sync(environment: Path, *extra: str) -> None:
    """``uv sync --frozen --no-dev --no-editable`` into ``environment``, as the image does."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_NO_SYNC")}
    env["UV_PROJECT_ENVIRONMENT"] = str(environment)
    result = subprocess.run(
        [uv(), "sync", "--frozen", "--no-dev", "--no-editable", "--quiet", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SYNC_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A production install of the whole product; its ``bin`` folder."""
    environment = tmp_path_factory.mktemp("product") / "venv"
    sync(environment)
    return environment / "bin"


def run(
    product: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(product / "zhucun"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_product_install_holds_the_product_and_no_development_tooling(
    product: Path,
) -> None:
    probe = "; ".join(
        [
            "import importlib.util, json",
            f"names = {[*DEV_ONLY_MODULES, *DEV_ONLY_PACKAGES]!r}",
            "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))",
        ]
    )
    found = subprocess.run(
        [str(product / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    assert json.loads(found.stdout) == {n: False for n in (*DEV_ONLY_MODULES, *DEV_ONLY_PACKAGES)}
    imports = subprocess.run(
        [str(product / "python"), "-c", "import " + ", ".join(f"zhucun.{s}.app" for s in SERVICES)],
        capture_output=True,
        text=True,
    )
    assert imports.returncode == 0, imports.stderr


def test_every_product_command_answers_help_and_no_development_command_is_there(
    product: Path,
) -> None:
    top = run(product, "--help")
    assert top.returncode == 0, top.stderr
    listed = listed_commands(top.stdout)
    assert set(COMMANDS) <= listed, top.stdout
    assert not listed & set(DEV_ONLY_COMMANDS), top.stdout
    for command in COMMANDS:
        result = run(product, command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert f"Usage: zhucun {command}" in result.stdout, (command, result.stdout)


def test_commands_that_default_to_the_local_demo_say_what_they_need(product: Path) -> None:
    result = run(product, "verify", env={"ZHUCUN_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "development tooling (zhucun-devtools), not part of this installation" in message
    assert "--store dispatch=DSN" in message


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_each_member_imports_with_only_the_dependencies_it_declares(
    member: str, tmp_path: Path
) -> None:
    environment = tmp_path / "venv"
    sync(environment, "--package", member)
    package = MEMBERS[member]
    walk = "; ".join(
        [
            "import importlib, pkgutil",
            f"root = importlib.import_module({package!r})",
            f"names = [m.name for m in pkgutil.walk_packages(root.__path__, {package + '.'!r})]",
            "[importlib.import_module(n) for n in names]",
            "print(len(names))",
        ]
    )
    result = subprocess.run(
        [str(environment / "bin" / "python"), "-c", walk], capture_output=True, text=True
    )
    assert result.returncode == 0, f"{member}: {result.stderr}"
    assert int(result.stdout) > 0


# --- the four services, started as `zhucun serve` -------------------------------------------


@pytest.fixture(scope="module")
def served(
    product: Path,
    kafka_bootstrap: str,
    postgres_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Served]]:
    """The four services from the product install, each with a database of its own."""
    logs = tmp_path_factory.mktemp("served")

    def launch(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            return subprocess.Popen(
                [str(product / "zhucun"), "serve", name],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=logs,
            )

    with serving(
        launch,
        databases=postgres_server,
        kafka_bootstrap=kafka_bootstrap,
        logs=logs,
        environment={**os.environ, "ZHUCUN_POLICIES_DIR": str(ROOT / "policies")},
        prefix="prod",
    ) as services:
        yield services


def mint(product: Path, *args: str) -> str:
    result = run(product, "token", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_four_services_start_from_the_product_and_answer_real_requests(
    product: Path, served: dict[str, Served]
) -> None:
    county = new_county()
    answer_real_requests(served, county, mint(product, "--role", "org_admin", "--county", county))


def test_verify_and_status_from_the_product_against_the_services_databases(
    product: Path, served: dict[str, Served], kafka_bootstrap: str
) -> None:
    verify_and_status(lambda *args: run(product, *args), served, kafka_bootstrap)
