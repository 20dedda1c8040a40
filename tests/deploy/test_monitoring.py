"""The monitoring component (deploy/k8s/components/monitoring), checked offline.

* It is a kustomize Component that the prod overlay includes, and the render
  (``test_kubernetes.py``'s helpers, so the same kubectl) holds its PodMonitor,
  PrometheusRule and Grafana dashboard ConfigMap.
* The PodMonitor selects exactly the pods of the four service Deployments, on the port that
  serves ``/metrics``, gives them the labels the alerts use, and the services'
  NetworkPolicies let the monitoring namespace in on that port.
* Every metric an alert or a panel reads is one the code exports (or kube-state-metrics'
  ``kube_pod_status_ready``, or ``up``), with labels it has.
* Prometheus's own checker: ``promtool check rules`` on the rule groups, ``promtool test rules``
  on ``prometheusrule_test.yaml`` (each alert fires on broken series, stays silent on healthy
  ones), and ``promtool check rules`` on the dashboard's queries turned into recording rules,
  so every panel's PromQL parses.
* Every runbook_url leads to a section of docs/operations.md; the dashboard has a datasource
  variable, and every panel uses it and has queries.

promtool is Debian's (package ``prometheus``; scripts/bootstrap.sh installs the binary): the
tests that need it fail when it is missing. The negative tests at the end break one thing
each and assert that the check responsible rejects it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import yaml

pytestmark = pytest.mark.unit

Doc = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "deploy" / "k8s" / "components" / "monitoring"
PROD = ROOT / "deploy" / "k8s" / "overlays" / "prod" / "kustomization.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
DASHBOARD = COMPONENT / "zhucun-dashboard.json"
RULE_TESTS = COMPONENT / "prometheusrule_test.yaml"
CODE = (ROOT / "shared" / "src", ROOT / "src", *sorted((ROOT / "services").glob("*/src")))


def _load_kubernetes_checks() -> ModuleType:
    """test_kubernetes.py's rendering and selector helpers (tests/deploy is no package)."""
    path = Path(__file__).with_name("test_kubernetes.py")
    spec = importlib.util.spec_from_file_location("_zhucun_deploy_kubernetes", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:  # mypy sees tests/deploy/test_kubernetes.py as deploy.test_kubernetes
    from deploy import test_kubernetes as K  # noqa: N812 - K, as at run time
else:
    K = _load_kubernetes_checks()

#: What the services export (prometheus_client: a Counter gets ``_total``, a Histogram
#: ``_bucket``, ``_sum`` and ``_count``), with its labels. ``test_metrics_exist_in_the_code``
#: checks the names against the code.
COUNTERS = {
    "zhucun_relay_published_events": {"relay"},
    "zhucun_projection_events": {"projection", "outcome"},
    "http_requests": {"method", "route", "status"},
}
GAUGES = {
    "zhucun_relay_lag_events": {"relay"},
    "zhucun_relay_stalled": {"relay"},
    "zhucun_relay_last_progress_timestamp": {"relay"},
    "zhucun_projection_lag_events": {"projection", "topic", "partition"},
    "zhucun_projection_last_progress_timestamp": {"projection"},
    "zhucun_projection_stalled": {"projection"},
}
HISTOGRAMS = {"http_request_duration_seconds": {"method", "route", "status"}}
#: The labels Prometheus gives every target of the PodMonitor (``service`` is its relabeling).
TARGET_LABELS = {"job", "namespace", "pod", "container", "endpoint", "instance", "service"}
EXPORTED: dict[str, set[str]] = {
    **{f"{name}_total": labels for name, labels in COUNTERS.items()},
    **GAUGES,
    **{f"{name}_bucket": labels | {"le"} for name, labels in HISTOGRAMS.items()},
    **{
        f"{name}_{part}": labels for name, labels in HISTOGRAMS.items() for part in ("sum", "count")
    },
}
#: Not Zhucun's: Prometheus's own, and kube-state-metrics' (scraped with honorLabels).
OTHER_METRICS = {"up": set(), "kube_pod_status_ready": {"uid", "condition"}}
KNOWN_METRICS = {name: labels | TARGET_LABELS for name, labels in EXPORTED.items()} | {
    name: labels | TARGET_LABELS for name, labels in OTHER_METRICS.items()
}
LABEL_VALUES = {"outcome": {"applied", "duplicate", "dead_lettered"}}

#: The alerts the issue asks for, and the metric each one must read.
REQUIRED_ALERTS = {
    "ZhucunRelayStalled": "zhucun_relay_stalled",
    "ZhucunProjectionLagHigh": "zhucun_projection_lag_events",
    "ZhucunDeadLettersGrowing": "zhucun_projection_events_total",
    "ZhucunPodNotReady": "kube_pod_status_ready",
    "ZhucunTargetDown": "up",
}
SEVERITIES = {"critical", "warning"}
#: The metrics the dashboard must show.
DASHBOARD_METRICS = {
    "zhucun_relay_lag_events",
    "zhucun_relay_stalled",
    "zhucun_projection_lag_events",
    "zhucun_projection_stalled",
    "zhucun_projection_events_total",
    "http_requests_total",
    "http_request_duration_seconds_bucket",
}
#: What Grafana substitutes before sending a query, for checking the queries with promtool.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": "zhucun",
    "$service": ".*",
}
PROMTOOL = shutil.which("promtool")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


# --- the objects -----------------------------------------------------------------------------


def render_prod() -> list[Doc]:
    docs: list[Doc] = K.render("prod")
    return docs


def monitoring_objects(docs: list[Doc]) -> tuple[Doc, Doc, Doc]:
    """The PodMonitor, the PrometheusRule and the dashboard ConfigMap of the render."""
    monitors = K.of_kind(docs, "PodMonitor") + K.of_kind(docs, "ServiceMonitor")
    rules = K.of_kind(docs, "PrometheusRule")
    assert len(monitors) == 1, [K.where(d) for d in monitors]
    assert len(rules) == 1, [K.where(d) for d in rules]
    dashboard = K.named(docs, "ConfigMap", "zhucun-grafana-dashboard")
    assert dashboard is not None, "no ConfigMap zhucun-grafana-dashboard"
    return monitors[0], rules[0], dashboard


def alerting_rules(rule: Doc) -> Iterator[Doc]:
    for group in rule["spec"]["groups"]:
        yield from (r for r in group["rules"] if "alert" in r)


def dashboard_panels(dashboard: Doc) -> Iterator[Doc]:
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


# --- PromQL, as far as the checks need it ----------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "start",
    "end",
}


def metric_names(expr: str) -> set[str]:
    """The metrics an expression selects (identifiers that are no function, keyword, label)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    return {m for m in _IDENTIFIER.findall(text) if m.lower() not in _KEYWORDS}


def promql_problems(where: str, expr: str) -> list[str]:
    """Unknown metrics, labels that the metrics read do not have, unknown label values."""
    problems = []
    names = metric_names(expr)
    if not names:
        problems.append(f"{where}: reads no metric: {expr!r}")
    for name in sorted(names - KNOWN_METRICS.keys()):
        problems.append(f"{where}: unknown metric {name}")
    allowed = set().union(*(KNOWN_METRICS.get(n, set()) for n in names)) if names else set()
    for match in _SELECTOR.finditer(expr):
        name, matchers = match.group(1), match.group(2)
        labels = KNOWN_METRICS.get(name, allowed) if name else allowed
        for label, _, quoted in _MATCHER.findall(matchers):
            if label not in labels:
                problems.append(f"{where}: {name or 'selector'} has no label {label}")
            value = json.loads(quoted)
            if label in LABEL_VALUES and not set(value.split("|")) <= LABEL_VALUES[label]:
                problems.append(f"{where}: {label}={value!r} is none of {LABEL_VALUES[label]}")
    for clause, labels in _GROUPING.findall(_STRING.sub('""', expr)):
        for label in (part.strip() for part in labels.split(",")):
            if label and label not in allowed:
                problems.append(f"{where}: {clause} ({label}): no metric here has that label")
    return problems


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


# --- the checks ------------------------------------------------------------------------------


def scrape_problems(docs: list[Doc]) -> list[str]:
    """The PodMonitor scrapes /metrics on the http port of exactly the service pods."""
    problems = []
    monitor, rule, _ = monitoring_objects(docs)
    spec = monitor["spec"]
    namespace = monitor["metadata"].get("namespace")
    names = (spec.get("namespaceSelector") or {}).get("matchNames")
    if (spec.get("namespaceSelector") or {}).get("any") or (names and names != [namespace]):
        problems.append(f"{K.where(monitor)}: scrapes outside its own namespace")
    endpoints = spec.get("podMetricsEndpoints") or spec.get("endpoints") or []
    if len(endpoints) != 1:
        problems.append(f"{K.where(monitor)}: expected one endpoint, found {len(endpoints)}")
        return problems
    endpoint = endpoints[0]
    if endpoint.get("path", "/metrics") != "/metrics":
        problems.append(f"{K.where(monitor)}: scrapes {endpoint.get('path')}, not /metrics")
    if endpoint.get("scheme", "http") != "http":
        problems.append(f"{K.where(monitor)}: scheme {endpoint.get('scheme')}, the pods serve http")
    interval, timeout = endpoint.get("interval", "30s"), endpoint.get("scrapeTimeout", "10s")
    for value in (interval, timeout):
        if not DURATION.match(str(value)):
            problems.append(f"{K.where(monitor)}: {value!r} is no duration")
    port = endpoint.get("port")
    deployments = K.app_deployments(docs)
    selected = []
    for doc, template in K.workloads(docs):
        labels = K.pod_labels(template)
        if not K.selects(spec.get("selector"), labels):
            continue
        selected.append(doc["metadata"]["name"])
        if doc["kind"] != "Deployment" or doc["metadata"]["name"] not in deployments:
            problems.append(f"{K.where(doc)}: selected by the PodMonitor, but serves no metrics")
            continue
        ports = {
            p.get("name"): p for c in template["spec"]["containers"] for p in c.get("ports") or []
        }
        if port not in ports:
            problems.append(f"{K.where(doc)}: no container port named {port!r} to scrape")
        elif ports[port]["containerPort"] != K.HTTP_PORT:
            problems.append(f"{K.where(doc)}: port {port} is not the HTTP port {K.HTTP_PORT}")
        # The labels the alerts and the dashboard group by: job="zhucun" and service.
        if labels.get(spec.get("jobLabel", "")) != "zhucun":
            problems.append(f"{K.where(doc)}: jobLabel {spec.get('jobLabel')!r} is not zhucun")
        if labels.get("app.kubernetes.io/name") != doc["metadata"]["name"]:
            problems.append(f"{K.where(doc)}: app.kubernetes.io/name is not its service name")
        # Prometheus must be let in on that port (network/default-deny.yaml denies the rest).
        if not any(_admits_monitoring(policy, port) for policy in K._policies_for(docs, labels)):
            problems.append(f"{K.where(doc)}: no NetworkPolicy admits monitoring on {port!r}")
    if sorted(selected) != sorted(K.SERVICES):
        problems.append(f"the PodMonitor selects {sorted(selected)}, not {sorted(K.SERVICES)}")
    relabeled = {
        r.get("targetLabel"): r.get("sourceLabels") for r in endpoint.get("relabelings") or []
    }
    if relabeled.get("service") != ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]:
        problems.append(f"{K.where(monitor)}: no service label from app.kubernetes.io/name")
    jobs = {m for r in alerting_rules(rule) for m in re.findall(r'job="([^"]*)"', r["expr"])}
    if jobs != {"zhucun"}:
        problems.append(f"{K.where(rule)}: the alerts read job {sorted(jobs)}, the targets zhucun")
    return problems


def _admits_monitoring(policy: Doc, port: str | None) -> bool:
    for rule in policy["spec"].get("ingress") or []:
        ports = {p.get("port") for p in rule.get("ports") or []}
        if ports and port not in ports and K.HTTP_PORT not in ports:
            continue
        for peer in rule.get("from") or []:
            labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
            if labels.get("zhucun.io/monitoring") == "true" and "podSelector" not in peer:
                return True
    return False


def rule_problems(docs: list[Doc]) -> list[str]:
    """Every alert is complete, reads known metrics and links to its runbook."""
    problems = []
    _, rule, _ = monitoring_objects(docs)
    anchors = github_anchors(OPERATIONS.read_text())
    seen: dict[str, Doc] = {}
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            name = r.get("alert") or r.get("record")
            at = f"PrometheusRule {group['name']}/{name}"
            if name in seen:
                problems.append(f"{at}: defined twice")
            seen[name] = r
            problems += promql_problems(at, r["expr"])
            if "record" in r:
                continue
            if not re.fullmatch(r"Zhucun[A-Z][A-Za-z0-9]+", name):
                problems.append(f"{at}: alert names start with Zhucun (CamelCase)")
            if "for" in r and not DURATION.match(str(r["for"])):
                problems.append(f"{at}: for {r['for']!r} is no duration")
            if (r.get("labels") or {}).get("severity") not in SEVERITIES:
                problems.append(f"{at}: severity is none of {sorted(SEVERITIES)}")
            annotations = r.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                if not str(annotations.get(key, "")).strip():
                    problems.append(f"{at}: no {key} annotation")
            url = str(annotations.get("runbook_url", ""))
            page, _, anchor = url.partition("#")
            if not page.endswith("docs/operations.md") or anchor not in anchors:
                problems.append(f"{at}: runbook {url!r} is no section of docs/operations.md")
            if anchor and anchor != name.lower():
                problems.append(f"{at}: its runbook section is #{name.lower()}, not #{anchor}")
    for alert, metric in REQUIRED_ALERTS.items():
        if alert not in seen:
            problems.append(f"no alert {alert}")
        elif metric not in metric_names(seen[alert]["expr"]):
            problems.append(f"{alert} does not read {metric}")
    return problems


def dashboard_problems(dashboard: Doc) -> list[str]:
    """The Grafana dashboard: a datasource variable that every panel and query uses."""
    problems = []
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in dashboard:
            problems.append(f"dashboard: no {key}")
    variables = {v["name"]: v for v in (dashboard.get("templating") or {}).get("list") or []}
    source = variables.get("datasource")
    if not source or source.get("type") != "datasource" or source.get("query") != "prometheus":
        problems.append("dashboard: no Prometheus datasource variable named datasource")
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    for name, variable in variables.items():
        if variable.get("type") == "query":
            if variable.get("datasource") != wanted:
                problems.append(f"dashboard variable {name}: datasource is not ${{datasource}}")
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query)
            inner = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]\w*)\)", text)
            if not inner:
                problems.append(f"dashboard variable {name}: not label_values(selector, label)")
            else:
                problems += promql_problems(f"dashboard variable {name}", inner.group(1))
    ids: set[int] = set()
    shown: set[str] = set()
    for panel in dashboard_panels(dashboard):
        at = f"dashboard panel {panel.get('title')!r}"
        panel_id = panel.get("id")
        if not isinstance(panel_id, int):
            problems.append(f"{at}: id {panel_id!r} is not a number")
        elif panel_id in ids:
            problems.append(f"{at}: id {panel_id} used twice")
        else:
            ids.add(panel_id)
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
            problems.append(f"{at}: gridPos {grid} is not within the 24 columns")
        if panel.get("type") == "row":
            continue
        if panel.get("datasource") != wanted:
            problems.append(f"{at}: datasource is not ${{datasource}}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{at}: no queries")
        if len({t.get("refId") for t in targets}) != len(targets):
            problems.append(f"{at}: refIds not unique")
        for target in targets:
            expr = str(target.get("expr") or "")
            if not expr.strip():
                problems.append(f"{at}: query {target.get('refId')} has no expr")
                continue
            if target.get("datasource", wanted) != wanted:
                problems.append(f"{at}: query {target.get('refId')} has another datasource")
            for variable in re.findall(r"\$(\w+)", expr):
                if variable not in variables and f"${variable}" not in GRAFANA_VARIABLES:
                    problems.append(f"{at}: ${variable} is no variable of the dashboard")
            problems += promql_problems(at, expr)
            shown |= metric_names(expr)
    for metric in sorted(DASHBOARD_METRICS - shown):
        problems.append(f"dashboard: no panel shows {metric}")
    return problems


def dashboard_as_rules(dashboard: Doc) -> Doc:
    """Every query of the dashboard as a recording rule, with Grafana's variables filled in."""
    rules = []
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets") or []:
            expr = str(target["expr"])
            for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(variable, value)
            rules.append(
                {"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr}
            )
    return {"groups": [{"name": "dashboard", "rules": rules}]}


# --- promtool --------------------------------------------------------------------------------


def promtool() -> str:
    assert PROMTOOL, (
        "promtool is not on PATH: scripts/bootstrap.sh installs it from Debian's package "
        "prometheus (apt-get download prometheus; dpkg-deb -x; install usr/bin/promtool)"
    )
    return PROMTOOL


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )


def write_rules(directory: Path, spec: Doc, name: str = "rules.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return path


def unit_test_rules(directory: Path, spec: Doc) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of prometheusrule_test.yaml against these rule groups."""
    write_rules(directory, spec)
    tests = directory / RULE_TESTS.name
    shutil.copyfile(RULE_TESTS, tests)
    return run_promtool("test", "rules", tests)


# --- the tests -------------------------------------------------------------------------------


def test_the_component_is_a_kustomize_component_in_prod() -> None:
    component = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert component["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert component["kind"] == "Component"
    assert set(component["resources"]) == {"podmonitor.yaml", "prometheusrule.yaml"}
    generated = {g["name"]: g for g in component["configMapGenerator"]}
    assert generated["zhucun-grafana-dashboard"]["files"] == [DASHBOARD.name]
    prod = yaml.safe_load(PROD.read_text())
    assert "../../components/monitoring" in prod["components"]


def test_prod_renders_the_monitoring_objects() -> None:
    docs = render_prod()
    monitor, rule, dashboard = monitoring_objects(docs)
    for doc in (monitor, rule):
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", K.where(doc)
        assert doc["metadata"]["namespace"] == "zhucun", K.where(doc)
    # Grafana's sidecar picks up the ConfigMap by its label, under a name that does not change.
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"][DASHBOARD.name]) == json.loads(DASHBOARD.read_text())
    assert len(DASHBOARD.read_bytes()) < 256 * 1024, "a ConfigMap (and its apply) stays small"


def test_the_podmonitor_scrapes_every_service_pod() -> None:
    assert scrape_problems(render_prod()) == []


def test_alerts_are_complete_and_read_known_metrics() -> None:
    assert rule_problems(render_prod()) == []


def test_the_dashboard_is_well_formed_and_reads_known_metrics() -> None:
    assert dashboard_problems(json.loads(DASHBOARD.read_text())) == []


def test_metrics_exist_in_the_code() -> None:
    """The names above are the code's, so a renamed metric fails here, not in production."""
    sources = "\n".join(p.read_text() for root in CODE for p in sorted(root.rglob("*.py")))
    defined = set(re.findall(r'(?:Counter|Gauge|Histogram)\(\s*"([a-zA-Z_:][\w:]*)"', sources))
    expected = COUNTERS.keys() | GAUGES.keys() | HISTOGRAMS.keys()
    assert expected - defined == set(), "metrics the checks expect but the code does not export"
    ours = {name for name in defined if name.startswith("zhucun_")}
    assert ours - expected == set(), "metrics the code exports that this file does not know"


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    _, rule, _ = monitoring_objects(render_prod())
    result = run_promtool(
        "check", "rules", "--lint=all", "--lint-fatal", write_rules(tmp_path, rule["spec"])
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(g["rules"]) for g in rule["spec"]["groups"])
    assert f"SUCCESS: {count} rules found" in result.stdout, result.stdout


def test_promtool_unit_tests_fire_every_alert(tmp_path: Path) -> None:
    _, rule, _ = monitoring_objects(render_prod())
    result = unit_test_rules(tmp_path, rule["spec"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout
    # Each alert is shown firing and shown silent (healthy series, or still pending).
    cases = [
        c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]
    ]
    for r in alerting_rules(rule):
        mine = [c for c in cases if c["alertname"] == r["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"no test where {r['alert']} fires"
        assert any(not c["exp_alerts"] for c in mine), f"no test where {r['alert']} is silent"


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    rules = dashboard_as_rules(json.loads(DASHBOARD.read_text()))
    result = run_promtool("check", "rules", write_rules(tmp_path, rules, "dashboard.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


# --- negative tests: each check rejects what it is there for -----------------------------------


def test_the_metric_extraction_sees_through_promql() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket"
        '{job="zhucun", route!~"/health/.*"}[5m]))) > 0.5 and on (namespace, pod) '
        'up{job="zhucun"} unless absent(zhucun_relay_stalled offset 5m)'
    )
    assert metric_names(expr) == {
        "http_request_duration_seconds_bucket",
        "up",
        "zhucun_relay_stalled",
    }


Breakage = Callable[[list[Doc]], None]


def _rule(docs: list[Doc], alert: str) -> Doc:
    _, rule, _ = monitoring_objects(docs)
    return next(r for r in alerting_rules(rule) if r["alert"] == alert)


def _podmonitor(docs: list[Doc]) -> Doc:
    return monitoring_objects(docs)[0]


def _policy(docs: list[Doc], name: str) -> Doc:
    found = K.named(docs, "NetworkPolicy", name)
    assert found is not None
    return found


BREAKAGES: list[tuple[str, Breakage, Callable[[list[Doc]], list[str]], str]] = [
    (
        "metric-typo",
        lambda d: _rule(d, "ZhucunRelayStalled").update(
            expr='max by (namespace, service, relay) (zhucun_relay_stall{job="zhucun"}) > 0'
        ),
        rule_problems,
        "unknown metric zhucun_relay_stall",
    ),
    (
        "label-the-metric-lacks",
        lambda d: _rule(d, "ZhucunProjectionLagHigh").update(
            expr='sum by (namespace, relay) (zhucun_projection_lag_events{job="zhucun"}) > 1000'
        ),
        rule_problems,
        "by (relay)",
    ),
    (
        "unknown-outcome",
        lambda d: _rule(d, "ZhucunDeadLettersGrowing").update(
            expr='sum(increase(zhucun_projection_events_total{outcome="dead_letter"}[15m])) > 0'
        ),
        rule_problems,
        "is none of",
    ),
    (
        "no-severity",
        lambda d: _rule(d, "ZhucunTargetDown")["labels"].pop("severity"),
        rule_problems,
        "severity",
    ),
    (
        "runbook-nowhere",
        lambda d: _rule(d, "ZhucunPodNotReady")["annotations"].update(
            runbook_url="https://zhucun.example.org/docs/operations.md#no-such-section"
        ),
        rule_problems,
        "no section of docs/operations.md",
    ),
    (
        "required-alert-missing",
        lambda d: monitoring_objects(d)[1]["spec"]["groups"][0]["rules"].pop(0),
        rule_problems,
        "no alert ZhucunRelayStalled",
    ),
    (
        "wrong-port",
        lambda d: _podmonitor(d)["spec"]["podMetricsEndpoints"][0].update(port="metrics"),
        scrape_problems,
        "no container port named 'metrics'",
    ),
    (
        "selects-the-jobs",
        lambda d: _podmonitor(d)["spec"]["selector"]["matchLabels"].pop(
            "app.kubernetes.io/component"
        ),
        scrape_problems,
        "serves no metrics",
    ),
    (
        "selects-nothing",
        lambda d: _podmonitor(d)["spec"]["selector"]["matchLabels"].update(
            {"app.kubernetes.io/part-of": "other"}
        ),
        scrape_problems,
        "the PodMonitor selects []",
    ),
    (
        "monitoring-shut-out",
        lambda d: _policy(d, "dispatch")["spec"]["ingress"][0]["from"].pop(1),
        scrape_problems,
        "no NetworkPolicy admits monitoring",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "check", "expected"),
    [pytest.param(b, c, e, id=name) for name, b, c, e in BREAKAGES],
)
def test_a_broken_monitoring_object_is_rejected(
    breakage: Breakage, check: Callable[[list[Doc]], list[str]], expected: str
) -> None:
    docs = render_prod()
    assert check(docs) == []
    breakage(docs)
    problems = check(docs)
    assert any(expected in problem for problem in problems), problems


def test_a_broken_dashboard_is_rejected() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panel = next(p for p in dashboard_panels(dashboard) if p["type"] != "row")
    panel["datasource"] = {"type": "prometheus", "uid": "prometheus-prod"}
    panel["targets"][0]["expr"] = "rate(zhucun_relay_publishd_events_total[$__rate_interval])"
    problems = dashboard_problems(dashboard)
    assert any("datasource is not" in p for p in problems), problems
    assert any("unknown metric zhucun_relay_publishd_events_total" in p for p in problems)
    dashboard["templating"]["list"] = [
        v for v in dashboard["templating"]["list"] if v["name"] != "datasource"
    ]
    assert any("no Prometheus datasource variable" in p for p in dashboard_problems(dashboard))


def test_promtool_rejects_an_alert_that_never_fires(tmp_path: Path) -> None:
    """The unit tests have teeth: a threshold out of reach, or the health routes counted."""
    _, rule, _ = monitoring_objects(render_prod())
    spec = copy.deepcopy(rule["spec"])
    lag = next(
        r for g in spec["groups"] for r in g["rules"] if r.get("alert") == "ZhucunRelayLagHigh"
    )
    lag["expr"] = lag["expr"].replace("> 1000", "> 100000")
    errors = next(
        r for g in spec["groups"] for r in g["rules"] if r.get("alert") == "ZhucunHighErrorRate"
    )
    errors["expr"] = errors["expr"].replace(', route!~"/health/.*|/metrics"', "")
    result = unit_test_rules(tmp_path, spec)
    assert result.returncode != 0
    assert "ZhucunRelayLagHigh" in result.stdout + result.stderr
    assert "ZhucunHighErrorRate" in result.stdout + result.stderr


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    spec = {"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "sum by (job) (up"}]}]}
    result = run_promtool("check", "rules", write_rules(tmp_path, spec))
    assert result.returncode != 0
