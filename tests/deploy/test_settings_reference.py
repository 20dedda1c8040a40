"""The settings the deployment sets are real settings, and docs/operations.md documents every one.

pydantic-settings ignores unknown ``ZHUCUN_*`` variables, so a misspelt name in a ConfigMap
or in docker-compose.yml would be silently ignored and the default used: these tests catch
that, and a setting added to the code without a line in the operators' reference.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from zhucun.shared.settings import ServiceSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
SERVICES = ("dispatch", "attendance", "assessment", "projections")
#: Variables the processes read that are not Zhucun settings.
OTHER_VARIABLES = {"PGSSLROOTCERT"}


def _variables(model: type[BaseModel], prefix: str = "ZHUCUN_") -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _variables(annotation, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}"


def settings_variables() -> set[str]:
    found = set(_variables(ServiceSettings))
    for service in SERVICES:
        module = importlib.import_module(f"zhucun.{service}.app")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, ServiceSettings):
                found |= set(_variables(value))
    return found


def _rendered(overlay: str) -> list[dict[str, Any]]:
    kubectl = Path(sys.executable).parent / "kubectl"
    result = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(result.stdout, Loader=loader) if doc]


def deployment_variables(docs: list[dict[str, Any]]) -> set[str]:
    """Every variable name set on a container or in a ConfigMap it loads."""
    names: set[str] = set()
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            names |= set(doc.get("data") or {})
        spec = doc.get("spec") or {}
        template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get(
            "template"
        )
        for container in (template or {}).get("spec", {}).get("containers") or []:
            names |= {var["name"] for var in container.get("env") or []}
    return names


def test_every_setting_is_documented_in_the_operations_guide() -> None:
    text = OPERATIONS.read_text()
    missing = sorted(v for v in settings_variables() if f"`{v}`" not in text)
    assert missing == [], f"docs/operations.md does not document {missing}"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kubernetes_sets_only_real_settings(overlay: str) -> None:
    known = settings_variables() | OTHER_VARIABLES
    set_here = {v for v in deployment_variables(_rendered(overlay)) if v.startswith("ZHUCUN_")}
    unknown = sorted(set_here - known)
    assert unknown == [], f"not settings (misspelt?): {unknown}"


def test_compose_sets_only_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = settings_variables()
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        unknown = sorted(v for v in environment if v.startswith("ZHUCUN_") and v not in known)
        assert unknown == [], f"{name}: not settings (misspelt?): {unknown}"


def test_a_misspelt_setting_is_caught() -> None:
    docs = _rendered("prod")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    config["data"]["ZHUCUN_KAFKA__SASL_MECHANISMS"] = "SCRAM-SHA-512"
    known = settings_variables() | OTHER_VARIABLES
    assert "ZHUCUN_KAFKA__SASL_MECHANISMS" in deployment_variables(docs) - known


def test_production_settings_load_as_a_pod_would_see_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The prod ConfigMap plus a pod's env build valid production settings (no PLAINTEXT,
    no development secret)."""
    docs = _rendered("prod")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    for name, value in config["data"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ZHUCUN_KAFKA__SASL_USERNAME", "dispatch")
    monkeypatch.setenv("ZHUCUN_KAFKA__SASL_PASSWORD", "from-the-strimzi-secret")
    monkeypatch.setenv("ZHUCUN_POSTGRES__DSN", "postgresql://dispatch:x@zhucun-pg-rw:5432/dispatch")
    from zhucun.dispatch.app import DispatchSettings

    settings = DispatchSettings()
    assert settings.environment == "production"
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert settings.auth.algorithm == "RS256"
    assert str(settings.auth.jwks_file) == "/etc/zhucun/auth/jwks.json"
    assert str(settings.policies_dir) == "/opt/zhucun/policies"
