"""The image, built from the Dockerfile with podman and run the way Kubernetes runs it.

``scripts/image.sh build`` builds it here from local stand-ins for the base images (no
registry can be reached; ``docs/operations.md``, the image); on a machine with registry
access ``ZHUCUN_IMAGE_BASES=registry`` builds the same Dockerfile from the real ones. Every
container runs as deploy/k8s/base/services/common.yaml runs it: user 10001, read-only root
filesystem with a writable /tmp, all capabilities dropped, no privilege escalation, the
ConfigMap's settings (RS256 tokens checked against a mounted JWKS file), on the host network
to the tests' Kafka and PostgreSQL.

Where podman cannot work (``scripts/image.sh check`` exits 3) the module is skipped with the
reason; scripts/bootstrap.sh installs what it needs, so on the project's machines it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
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

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "image.sh"
#: Its own tag, so a test run never replaces the image a developer built.
IMAGE = "localhost/zhucun:test"
#: Exit status of ``scripts/image.sh`` when podman cannot work on this machine.
UNAVAILABLE = 3
#: A cold build (stand-ins made with debootstrap, every layer) takes a few minutes.
BUILD_TIMEOUT = 1800
KEY_ID = "test-key"
#: What the ConfigMap of deploy/k8s/base/kustomization.yaml sets, less what needs the cluster
#: (SASL_SSL to Strimzi's brokers, whose CA is mounted there; ZHUCUN_ENVIRONMENT=production
#: refuses PLAINTEXT Kafka, which is what the tests' broker speaks).
CONFIG = {
    "ZHUCUN_LOG__LEVEL": "INFO",
    "ZHUCUN_LOG__FORMAT": "json",
    "ZHUCUN_HTTP_HOST": "0.0.0.0",
    "ZHUCUN_AUTH__ALGORITHM": "RS256",
    "ZHUCUN_AUTH__JWKS_FILE": "/etc/zhucun/auth/jwks.json",
    "ZHUCUN_AUTH__ISSUER": "zhucun",
    "ZHUCUN_AUTH__AUDIENCE": "zhucun",
    "ZHUCUN_POLICIES_DIR": "/opt/zhucun/policies",
}


def image_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "ZHUCUN_IMAGE": IMAGE},
    )


def in_container(*args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """One container of the image, as Kubernetes runs it: ``zhucun ARGS``."""
    return image_script("run", *options, "--", *args, timeout=300)


@pytest.fixture(scope="module")
def image() -> str:
    check = image_script("check")
    if check.returncode == UNAVAILABLE:
        pytest.skip(f"THE IMAGE IS NOT BUILT OR RUN ON THIS MACHINE: {check.stderr.strip()}")
    assert check.returncode == 0, check.stderr
    build = image_script("build", timeout=BUILD_TIMEOUT)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return IMAGE


def test_the_image_runs_as_user_10001_with_zhucun_as_its_entry_point(image: str) -> None:
    found = subprocess.run(
        ["podman", "image", "inspect", image], capture_output=True, text=True, check=True
    )
    config = json.loads(found.stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["zhucun"]
    assert config["WorkingDir"] == "/tmp"


def test_inside_the_container_the_root_is_read_only_tmp_writable_no_capability_held(
    image: str,
) -> None:
    probe = "; ".join(
        [
            "id -u",
            "grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status",
            "touch /opt/zhucun/written 2>&1 || true",
            "touch /tmp/written && echo tmp-writable",
        ]
    )
    result = in_container("-c", probe, options=("--entrypoint=/bin/sh",))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "10001"
    capabilities = dict(line.split(":\t") for line in lines[1:4])
    assert capabilities == {"CapEff": "0" * 16, "CapPrm": "0" * 16, "CapBnd": "0" * 16}
    assert "Read-only file system" in lines[4]
    assert lines[5] == "tmp-writable"


def test_the_image_holds_the_product_and_no_development_tooling(image: str) -> None:
    probe = (
        "import importlib.util, json; print(json.dumps({n: importlib.util.find_spec(n) is not None"
        " for n in ['zhucun.cli.main', 'zhucun.dispatch.app', 'zhucun.projections.app',"
        " 'zhucun.infra', 'zhucun.sim', 'psutil', 'httpx', 'pytest', 'pip']}))"
    )
    result = in_container("-c", probe, options=("--entrypoint=python",))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "zhucun.cli.main": True,
        "zhucun.dispatch.app": True,
        "zhucun.projections.app": True,
        "zhucun.infra": False,
        "zhucun.sim": False,
        "psutil": False,
        "httpx": False,
        "pytest": False,
        "pip": False,
    }
    top = in_container("--help")
    assert top.returncode == 0, top.stderr
    listed = listed_commands(top.stdout)
    assert set(COMMANDS) <= listed, top.stdout
    assert not listed & set(DEV_ONLY_COMMANDS), top.stdout


# --- the four services, each in its container -----------------------------------------------


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[rsa.RSAPrivateKey, Path]:
    """The identity provider's key, and a folder holding its public JWKS, mounted where the
    manifests mount the ConfigMap ``zhucun-auth-keys`` (/etc/zhucun/auth)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder = tmp_path_factory.mktemp("auth")
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    entry = jwk | {"kid": KEY_ID, "use": "sig", "alg": "RS256"}
    (folder / "jwks.json").write_text(json.dumps({"keys": [entry]}))
    # The container's user 10001 reads it through the read-only bind mount.
    folder.chmod(0o755)
    (folder / "jwks.json").chmod(0o644)
    return key, folder


def token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "u-image", "iss": "zhucun", "aud": "zhucun", "iat": now, "exp": now + 600}
    return jwt.encode(body | claims, key, algorithm="RS256", headers={"kid": KEY_ID})


@pytest.fixture(scope="module")
def contained(
    image: str,
    signing_key: tuple[rsa.RSAPrivateKey, Path],
    kafka_bootstrap: str,
    postgres_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Served]]:
    """The four services, each in a container of the image with a database of its own."""
    logs = tmp_path_factory.mktemp("contained")
    run_id = uuid.uuid4().hex[:8]
    _, auth = signing_key

    def launch(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        settings = [f"--env={k}={v}" for k, v in env.items()]
        with log.open("wb") as sink:
            return subprocess.Popen(
                [
                    str(SCRIPT),
                    "run",
                    f"--name=zhucun-test-{name}-{run_id}",
                    f"--volume={auth}:/etc/zhucun/auth:ro",
                    *settings,
                    "--",
                    "serve",
                    name,
                ],
                env={**os.environ, "ZHUCUN_IMAGE": image},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    try:
        with serving(
            launch,
            databases=postgres_server,
            kafka_bootstrap=kafka_bootstrap,
            logs=logs,
            environment=CONFIG,
            prefix="image",
        ) as services:
            yield services
    finally:
        # podman run --rm removes a container that stopped; one that did not is removed here.
        names = [f"zhucun-test-{name}-{run_id}" for name in SERVICES]
        subprocess.run(["podman", "rm", "--force", "--ignore", *names], capture_output=True)


def test_each_service_container_becomes_ready_and_answers_authenticated_requests(
    contained: dict[str, Served], signing_key: tuple[rsa.RSAPrivateKey, Path]
) -> None:
    key, _ = signing_key
    county = new_county()
    answer_real_requests(contained, county, token(key, role="org_admin", county=county))
    # A token signed by a key the JWKS does not hold is refused.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = token(stranger, role="org_admin", county=county)
    assert contained["dispatch"].get(f"/counties/{county}/villages/v-prod", forged)[0] == 401
    # Logs are JSON lines (ZHUCUN_LOG__FORMAT=json), one object each.
    first = contained["dispatch"].log.read_text().splitlines()[0]
    assert json.loads(first)["event"]


def test_verify_and_status_run_from_the_image_as_the_cronjobs_run_them(
    contained: dict[str, Served], kafka_bootstrap: str
) -> None:
    document = verify_and_status(lambda *args: in_container(*args), contained, kafka_bootstrap)
    dispatch = next(r for r in document["relays"] if r["store"] == "dispatch")
    assert dispatch["lag"] == 0, document
