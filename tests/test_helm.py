"""The Helm chart: lints clean, renders valid Kubernetes objects, and refuses unsafe values.

Rendering uses helm-python-sdk (Helm's Go SDK through ctypes): no helm binary and no
cluster. Two value sets are rendered: the chart's defaults (one replica on SQLite) and
tests/data/helm-values-postgres.yaml (three replicas on PostgreSQL with every optional
resource enabled).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from relay.settings import SINK_TYPES, Settings
from tests.deploy_support import (
    CHART,
    DASHBOARD_FILE,
    RULES_FILE,
    Manifest,
    kinds,
    only,
    render,
    require_module,
    require_tool,
    values_file,
)

VALUE_SETS = ["defaults", "postgres"]
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


def values_for(name: str) -> dict[str, Any] | None:
    return None if name == "defaults" else values_file(f"helm-values-{name}.yaml")


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[list[Manifest], str]]:
    return {name: render(values_for(name)) for name in VALUE_SETS}


def container(manifests: list[Manifest]) -> dict[str, Any]:
    (relay,) = only(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(relay)


def pod_spec(manifests: list[Manifest]) -> dict[str, Any]:
    return dict(only(manifests, "Deployment")["spec"]["template"]["spec"])


def relay_yaml(manifests: list[Manifest]) -> dict[str, Any]:
    config_maps = [m.body for m in manifests if m.template == "configmap.yaml"]
    assert len(config_maps) == 1
    loaded: dict[str, Any] = yaml.safe_load(config_maps[0]["data"]["relay.yaml"])
    return loaded


# --- lint and schema -----------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_reports_no_error_and_no_warning(name: str) -> None:
    helm = require_module("helm_python")
    report = helm.lint(str(CHART), values_for(name), strict=True, kube_version="v1.37.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []


def test_two_replicas_on_sqlite_are_refused_by_lint_and_render() -> None:
    helm = require_module("helm_python")
    values = values_file("helm-values-sqlite-replicas.yaml")
    report = helm.lint(str(CHART), values, strict=True)
    assert report["errors"], report
    with pytest.raises(helm.HelmError) as refused:
        render(values)
    assert "replicaCount" in str(refused.value) or "store" in str(refused.value)


def test_two_replicas_on_sqlite_are_refused_by_the_schema() -> None:
    helm = require_module("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(chart.merge_values(values_for("postgres")))
        chart.validate_schema(chart.merge_values(None))
        with pytest.raises(helm.HelmValuesError) as refused:
            chart.validate_schema(chart.merge_values({"replicaCount": 2}))
    assert "config.store.url" in str(refused.value) or "url" in str(refused.value)


def test_two_replicas_on_sqlite_are_refused_by_the_template_without_the_schema(
    tmp_path: Path,
) -> None:
    """`helm template --skip-schema-validation` still meets the template's `fail`."""
    helm = require_module("helm_python")
    chart_copy = tmp_path / "zaia-relay"
    shutil.copytree(CHART, chart_copy)
    (chart_copy / "values.schema.json").unlink()
    with helm.Chart.load(str(chart_copy)) as chart:
        with pytest.raises(helm.HelmRenderError) as refused:
            chart.render({"replicaCount": 2}, name="zaia-relay", namespace="monitoring")
        chart.render({"replicaCount": 1}, name="zaia-relay", namespace="monitoring")
    assert "SQLite allows one replica only" in str(refused.value)


def test_one_or_many_replicas_on_postgresql_are_accepted() -> None:
    for replicas in (1, 2, 5):
        values = values_for("postgres")
        assert values is not None
        values["replicaCount"] = replicas
        manifests, _ = render(values)
        assert only(manifests, "Deployment")["spec"]["replicas"] == replicas


def test_the_schema_is_valid_draft_7_and_accepts_the_value_files() -> None:
    jsonschema = require_module("jsonschema")
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)


def test_the_schema_knows_exactly_the_relay_config_sections() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    sections = set(schema["properties"]["config"]["properties"])
    assert sections == set(Settings.model_fields)


def test_the_schema_knows_exactly_the_sink_types() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    sink = schema["properties"]["config"]["properties"]["sinks"]["additionalProperties"]
    assert sink["properties"]["type"]["enum"] == list(SINK_TYPES)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"config": {"store": {"url": "sqlite:///data/state.db"}}},
            "must be under /var/lib/zaia-relay/",
        ),
        (
            {"secret": {"env": {"SLACK_WEBHOOK_URL": "slack-url"}}},
            "secret.env.SLACK_WEBHOOK_URL names the key",
        ),
    ],
)
def test_values_that_cannot_work_are_refused_with_a_reason(
    values: dict[str, Any], message: str
) -> None:
    helm = require_module("helm_python")
    with pytest.raises(helm.HelmError) as refused:
        render(values)
    assert message in str(refused.value)


def test_a_typo_in_values_is_refused() -> None:
    helm = require_module("helm_python")
    with pytest.raises(helm.HelmError):
        render({"replicacount": 1})
    with pytest.raises(helm.HelmError):
        render({"config": {"sink": {}}})
    # The chart owns the listen address: it must match the container port and probes.
    with pytest.raises(helm.HelmError):
        render({"config": {"server": {"listen": "0.0.0.0:9999"}}})


# --- what the defaults render --------------------------------------------------------


def test_defaults_render_one_sqlite_replica_with_its_volume(
    rendered: dict[str, tuple[list[Manifest], str]],
) -> None:
    manifests, _ = rendered["defaults"]
    assert kinds(manifests) == [
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "Pod",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    deployment = only(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pvc = only(manifests, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in pod_spec(manifests)["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    mounts = {m["name"]: m for m in container(manifests)["volumeMounts"]}
    assert mounts["data"]["mountPath"] == "/var/lib/zaia-relay"
    assert relay_yaml(manifests)["store"]["url"].startswith("sqlite:///var/lib/zaia-relay/")


def test_postgres_values_render_replicas_with_rolling_updates_and_every_option(
    rendered: dict[str, tuple[list[Manifest], str]],
) -> None:
    manifests, _ = rendered["postgres"]
    assert kinds(manifests) == [
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "Ingress",
        "NetworkPolicy",
        "Pod",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    deployment = only(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    # No SQLite: no state volume, and the existing Secret is referenced, not created.
    assert "data" not in {v["name"] for v in pod_spec(manifests)["volumes"]}
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container(manifests)["env"]
        if "valueFrom" in e
    }
    assert refs == {"zaia-relay-credentials"}
    assert container(manifests)["image"] == (
        "registry.example.com/platform/zaia-relay@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )


@pytest.mark.parametrize("name", VALUE_SETS)
def test_security_context_is_restrictive(
    name: str, rendered: dict[str, tuple[list[Manifest], str]]
) -> None:
    manifests, _ = rendered[name]
    pod = pod_spec(manifests)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(manifests)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_probes_volumes_and_resources(
    name: str, rendered: dict[str, tuple[list[Manifest], str]]
) -> None:
    manifests, _ = rendered[name]
    relay = container(manifests)
    assert relay["args"] == ["run", "--config", "/etc/zaia-relay/relay.yaml"]
    assert relay["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert relay["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert relay["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert relay_yaml(manifests)["server"]["listen"] == "0.0.0.0:8080"
    mounts = {m["name"]: m for m in relay["volumeMounts"]}
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/zaia-relay", "readOnly": True}
    assert mounts["tmp"]["mountPath"] == "/tmp"
    volumes = {v["name"]: v for v in pod_spec(manifests)["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert relay["resources"]["requests"]["memory"]
    assert relay["resources"]["limits"]["memory"]
    # Kubernetes waits longer than the relay's own drain before killing it.
    grace_s = pod_spec(manifests)["terminationGracePeriodSeconds"]
    assert grace_s > 20


def test_the_listen_address_follows_the_container_port() -> None:
    manifests, _ = render({"containerPort": 9100})
    assert relay_yaml(manifests)["server"]["listen"] == "0.0.0.0:9100"
    assert container(manifests)["ports"][0]["containerPort"] == 9100


def test_a_config_change_rolls_the_pods_and_other_changes_do_not() -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        manifests, _ = render(values)
        annotations = only(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    base = checksum(None)
    assert len(base) == 64
    assert checksum({"config": {"log": {"level": "debug"}}}) != base
    assert checksum({"resources": {"requests": {"cpu": "1"}}}) == base


def test_config_reload_sighup_updates_the_config_map_in_place_without_a_rollout() -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    manifests, notes = render({"configReload": "sighup"})
    template = only(manifests, "Deployment")["spec"]["template"]
    assert "checksum/config" not in template["metadata"]["annotations"]
    # Environment variables from the Secret are read at start only: they still roll.
    assert "checksum/secret" in template["metadata"]["annotations"]
    (mount,) = [m for m in container(manifests)["volumeMounts"] if m["name"] == "config"]
    assert "subPath" not in mount, "a subPath mount never sees a ConfigMap update"
    assert mount["mountPath"] == "/etc/zaia-relay"
    assert "kill -HUP 1" in notes
    changed, _ = render({"configReload": "sighup", "config": {"log": {"level": "debug"}}})
    assert only(changed, "Deployment")["spec"]["template"] == template
    assert relay_yaml(changed)["log"]["level"] == "debug"
    for manifest in manifests:
        if manifest.kind not in CRD_KINDS:
            kubernetes_validate.validate(manifest.body, kubernetes_versions()[-1], strict=True)
    helm = require_module("helm_python")
    with pytest.raises(helm.HelmError):
        render({"configReload": "hup"})


def test_secrets_stay_out_of_the_config_map_and_the_pod_spec() -> None:
    secret = "zk_live_do-not-leak-0123456789"
    manifests, _ = render({"secret": {"stringData": {"zaia-api-key": secret, "admin-token": ""}}})
    for manifest in manifests:
        if manifest.kind != "Secret":
            assert secret not in json.dumps(manifest.body), manifest.template
    assert only(manifests, "Secret")["stringData"]["zaia-api-key"] == secret
    env = {e["name"]: e for e in container(manifests)["env"]}
    assert env["ZAIA_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": only(manifests, "Secret")["metadata"]["name"],
        "key": "zaia-api-key",
    }
    assert relay_yaml(manifests)["sources"][0]["api_key"] == "${ZAIA_API_KEY}"


def test_notes_warn_about_a_missing_api_key(
    rendered: dict[str, tuple[list[Manifest], str]],
) -> None:
    _, notes = rendered["defaults"]
    assert "secret.stringData.zaia-api-key is empty" in notes
    _, notes = render({"secret": {"stringData": {"zaia-api-key": "k", "admin-token": ""}}})
    assert "WARNING" not in notes


# --- the rendered configuration is valid for the relay ------------------------------


def _dummy(name: str) -> str:
    """A value of the right shape for a secret the chart injects as an environment variable."""
    if "WEBHOOK_SECRET" in name:
        return "whsec_" + base64.b64encode(b"dummy signing key, 32 bytes long").decode()
    if name.endswith("_URL"):
        return "https://hooks.example.com/dummy"
    return f"dummy-{name.lower()}"


def injected_env(manifests: list[Manifest]) -> dict[str, str]:
    """The environment the chart gives the relay, with dummy values for empty secrets."""
    secrets = [m.body for m in manifests if m.kind == "Secret"]
    string_data = secrets[0].get("stringData", {}) if secrets else {}
    env: dict[str, str] = {}
    for entry in container(manifests).get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            key = entry["valueFrom"]["secretKeyRef"]["key"]
            env[entry["name"]] = string_data.get(key) or _dummy(entry["name"])
    return env


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_rendered_relay_yaml_passes_check_config(
    name: str, rendered: dict[str, tuple[list[Manifest], str]], tmp_path: Path
) -> None:
    manifests, _ = rendered[name]
    (config_map,) = [m.body for m in manifests if m.template == "configmap.yaml"]
    path = tmp_path / "relay.yaml"
    path.write_text(config_map["data"]["relay.yaml"])
    # Only what the chart injects: nothing RELAY_* from the test's own environment.
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "ZAIA_"))}
    result = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", "-c", str(path)],
        env={**environ, **injected_env(manifests)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config OK")


# --- Kubernetes validity -------------------------------------------------------------


def kubernetes_versions() -> list[str]:
    """The oldest version Chart.yaml allows (1.25) and the newest the validator knows."""
    kubernetes_validate = require_module("kubernetes_validate")
    return ["1.25.0", kubernetes_validate.utils.latest_version()]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_passes_kubernetes_validate_strict(
    name: str, rendered: dict[str, tuple[list[Manifest], str]]
) -> None:
    """CRD kinds (ServiceMonitor, PrometheusRule) have no schema in kubernetes-validate,
    which ships the core API only: they are skipped here, and only they. Their content is
    checked elsewhere: the rules with promtool, the ServiceMonitor's wiring below."""
    kubernetes_validate = require_module("kubernetes_validate")
    manifests, _ = rendered[name]
    failures: list[str] = []
    unknown: set[str] = set()
    for version in kubernetes_versions():
        for manifest in manifests:
            try:
                kubernetes_validate.validate(manifest.body, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                unknown.add(manifest.kind)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                failures.append(f"{version} {manifest.template}: {path}: {exc.message}")
    assert failures == []
    assert unknown <= CRD_KINDS


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_kubernetes_validate_command_passes_the_rendered_files(
    name: str, rendered: dict[str, tuple[list[Manifest], str]], tmp_path: Path
) -> None:
    """The same check through the command line, as a CI job or an operator would run it."""
    command = require_tool("kubernetes-validate")
    manifests, _ = rendered[name]
    files = []
    for index, manifest in enumerate(manifests):
        path = tmp_path / f"{index:02d}-{manifest.template.replace('/', '-')}"
        path.write_text(yaml.safe_dump(manifest.body))
        files.append(str(path))
    result = subprocess.run(
        [command, "--strict", "--kubernetes-version", kubernetes_versions()[-1], *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.startswith(("ERROR", "FATAL"))]
    passed = [line for line in lines if line.startswith("INFO") and " passed " in line]
    assert len(passed) == len([m for m in manifests if m.kind not in CRD_KINDS])
    warned = [line for line in lines if line.startswith("WARN")]
    assert all(any(kind in line for kind in CRD_KINDS) for line in warned), warned


def test_kubernetes_validate_strict_does_reject_unknown_fields(
    rendered: dict[str, tuple[list[Manifest], str]],
) -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    manifests, _ = rendered["defaults"]
    deployment = copy.deepcopy(only(manifests, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readonlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_versions()[-1], strict=True)


def test_service_monitor_scrapes_the_service_metrics_port(
    rendered: dict[str, tuple[list[Manifest], str]],
) -> None:
    manifests, _ = rendered["postgres"]
    monitor = only(manifests, "ServiceMonitor")
    service = only(manifests, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    # The ServiceMonitor lives with Prometheus; it selects the Service in the release's namespace.
    assert monitor["metadata"]["namespace"] == "prometheus"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["monitoring"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_network_policy_admits_scrapes_and_lets_out_dns_https_and_the_database(
    rendered: dict[str, tuple[list[Manifest], str]],
) -> None:
    manifests, _ = rendered["postgres"]
    policy = only(manifests, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP"), (5432, "TCP")} <= egress_ports


# --- rules and dashboard shipped in the chart ----------------------------------------


def test_the_chart_ships_the_same_rules_and_dashboard_as_config() -> None:
    for plain, shipped in (
        (RULES_FILE, CHART / "files" / "prometheus-rules.yaml"),
        (DASHBOARD_FILE, CHART / "files" / "grafana-dashboard.json"),
    ):
        assert shipped.read_text() == plain.read_text(), f"cp {plain} {shipped}"


def rule_spec(values: dict[str, Any], *, release: str = "zaia-relay") -> dict[str, Any]:
    manifests, _ = render({"prometheusRule": {"enabled": True, **values}}, release=release)
    return dict(only(manifests, "PrometheusRule")["spec"])


def test_the_prometheus_rule_is_the_plain_rules_file() -> None:
    assert rule_spec({}) == yaml.safe_load(RULES_FILE.read_text())


def test_the_prometheus_rule_selects_the_release_job_adds_labels_and_drops_alerts() -> None:
    spec = rule_spec(
        {"alertLabels": {"team": "platform", "severity": "page"}, "disabled": ["ZaiaRelayDown"]},
        release="alerts",
    )
    rules = [rule for group in spec["groups"] for rule in group["rules"]]
    assert "ZaiaRelayDown" not in {rule["alert"] for rule in rules}
    # Extra labels are added; a rule's own labels win.
    assert all(rule["labels"]["team"] == "platform" for rule in rules)
    assert {rule["labels"]["severity"] for rule in rules} <= {"critical", "warning"}
    spec = rule_spec({}, release="alerts")
    down = next(r for g in spec["groups"] for r in g["rules"] if r["alert"] == "ZaiaRelayDown")
    assert 'up{job="alerts-zaia-relay"}' in down["expr"]
    spec = rule_spec({"job": "relay-pods"})
    down = next(r for g in spec["groups"] for r in g["rules"] if r["alert"] == "ZaiaRelayDown")
    assert 'up{job="relay-pods"}' in down["expr"]


def test_the_grafana_dashboard_config_map_holds_the_dashboard(
    rendered: dict[str, tuple[list[Manifest], str]],
) -> None:
    manifests, _ = rendered["postgres"]
    (board,) = [m.body for m in manifests if m.template == "grafana-dashboard.yaml"]
    assert board["metadata"]["namespace"] == "grafana"
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["zaia-relay.json"]) == json.loads(DASHBOARD_FILE.read_text())


def test_the_schema_takes_one_alertmanager_or_an_ha_cluster() -> None:
    helm = require_module("helm_python")

    def sinks(am: dict[str, Any]) -> dict[str, Any]:
        return {"config": {"sinks": {"am": {"type": "alertmanager", **am}}}}

    pair = ["http://am-0:9093", "http://am-1:9093"]
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(chart.merge_values(sinks({"url": pair[0]})))
        chart.validate_schema(chart.merge_values(sinks({"urls": pair})))
        for wrong in ({"url": pair[0], "urls": pair}, {}, {"urls": []}, {"urls": pair * 2}):
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(chart.merge_values(sinks(wrong)))
