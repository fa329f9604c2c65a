"""The chart's optional Ingress, its `helm test` Pod and the ServiceMonitor's options.

Rendered offline with helm-python-sdk like tests/test_helm.py, checked with
kubernetes-validate (strict) and values.schema.json; the test Pod's script runs here
against a loopback HTTP server, as it runs in the relay's image against the Service.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from aiohttp import web

from tests.deploy_support import CHART, Manifest, only, render, require_module, values_file

TLS_INGRESS: dict[str, Any] = {
    "enabled": True,
    "className": "nginx",
    "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
    "hosts": [
        {
            "host": "relay.example.com",
            "paths": [
                {"path": "/slack/interactions", "pathType": "Exact"},
                {"path": "/", "pathType": "Prefix"},
            ],
        }
    ],
    "tls": [{"secretName": "relay-tls", "hosts": ["relay.example.com"]}],
}


def validate_strict(manifest: dict[str, Any]) -> None:
    """kubernetes-validate on the oldest version Chart.yaml allows and the newest it knows."""
    kubernetes_validate = require_module("kubernetes_validate")
    for version in ("1.25.0", kubernetes_validate.utils.latest_version()):
        kubernetes_validate.validate(manifest, version, strict=True)


def test_no_ingress_by_default() -> None:
    manifests, notes = render()
    assert "Ingress" not in {m.kind for m in manifests}
    assert "Through the Ingress" not in notes


def test_the_ingress_routes_its_paths_to_the_service_http_port_over_tls() -> None:
    manifests, notes = render({"ingress": TLS_INGRESS})
    ingress = only(manifests, "Ingress")
    service = only(manifests, "Service")
    validate_strict(ingress)
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "relay-tls", "hosts": ["relay.example.com"]}]
    (rule,) = spec["rules"]
    assert rule["host"] == "relay.example.com"
    backend = {"service": {"name": service["metadata"]["name"], "port": {"name": "http"}}}
    assert rule["http"]["paths"] == [
        {"path": "/slack/interactions", "pathType": "Exact", "backend": backend},
        {"path": "/", "pathType": "Prefix", "backend": backend},
    ]
    assert "http" in {p["name"] for p in service["spec"]["ports"]}
    # NOTES say where it answers and what it exposes.
    assert "https://relay.example.com/slack/interactions" in notes
    assert "allowed_hosts" in notes


def test_an_ingress_without_class_host_or_tls_is_valid_and_plain_http() -> None:
    manifests, notes = render(
        {"ingress": {"enabled": True, "hosts": [{"paths": [{"path": "/slack/interactions"}]}]}}
    )
    ingress = only(manifests, "Ingress")
    validate_strict(ingress)
    assert "ingressClassName" not in ingress["spec"]
    assert "tls" not in ingress["spec"]
    (rule,) = ingress["spec"]["rules"]
    assert "host" not in rule
    assert rule["http"]["paths"][0]["pathType"] == "Prefix"
    assert "http://<any host>/slack/interactions" in notes


@pytest.mark.parametrize(
    "ingress",
    [
        {
            "enabled": True,
            "hosts": [{"host": "r.example.com", "paths": [{"path": "/", "pathType": "Regex"}]}],
        },
        {"enabled": True, "hosts": [{"host": "r.example.com", "paths": [{"path": "slack"}]}]},
        {"enabled": True, "hosts": [{"host": "r.example.com", "paths": []}]},
        {"enabled": True, "hosts": [{"host": "R_ELAY", "paths": [{"path": "/"}]}]},
        {"enabled": True, "hosts": []},
        {"enabled": True, "tls": [{"hosts": ["r.example.com"]}]},
        {"enabled": True, "tls": [{"secretName": "t", "host": "r.example.com"}]},
        {"enabled": True, "class": "nginx"},
    ],
)
def test_the_schema_refuses_ingress_values_that_cannot_work(ingress: dict[str, Any]) -> None:
    helm = require_module("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(chart.merge_values({"ingress": TLS_INGRESS}))
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(chart.merge_values({"ingress": ingress}))


# --- helm test ------------------------------------------------------------------------


def readyz_pod(manifests: list[Manifest]) -> dict[str, Any]:
    (pod,) = [m.body for m in manifests if m.template == "tests/test-readyz.yaml"]
    return pod


def test_the_helm_test_pod_asks_the_service_readyz_with_the_relay_security() -> None:
    manifests, notes = render()
    pod = readyz_pod(manifests)
    validate_strict(pod)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    # `helm test --logs` needs the Pod after the run: replaced by the next run only.
    assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    deployment = only(manifests, "Deployment")["spec"]["template"]["spec"]
    (relay,) = deployment["containers"]
    (check,) = spec["containers"]
    # The relay's own image (python is in it) and the same security contexts.
    assert check["image"] == relay["image"]
    assert check["command"][:2] == ["python", "-c"]
    assert spec["securityContext"] == deployment["securityContext"]
    assert check["securityContext"] == relay["securityContext"]
    assert check["securityContext"]["readOnlyRootFilesystem"] is True
    assert check["securityContext"]["runAsNonRoot"] is True
    service = only(manifests, "Service")
    url = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/readyz"
    assert check["command"][-1] == url
    assert "helm test zaia-relay -n monitoring" in notes


def test_the_helm_test_pod_is_selected_by_nothing_but_admitted_by_the_network_policy() -> None:
    values = values_file("helm-values-postgres.yaml")
    manifests, _ = render(values)
    labels = readyz_pod(manifests)["metadata"]["labels"]
    for kind, selector in (
        ("Service", lambda m: m["spec"]["selector"]),
        ("PodDisruptionBudget", lambda m: m["spec"]["selector"]["matchLabels"]),
        ("NetworkPolicy", lambda m: m["spec"]["podSelector"]["matchLabels"]),
        ("Deployment", lambda m: m["spec"]["selector"]["matchLabels"]),
    ):
        assert not selector(only(manifests, kind)).items() <= labels.items(), kind
    (ingress,) = only(manifests, "NetworkPolicy")["spec"]["ingress"]
    peers = [p["podSelector"]["matchLabels"] for p in ingress["from"] if "podSelector" in p]
    assert any(peer.items() <= labels.items() for peer in peers)


def test_the_helm_test_pod_can_be_left_out() -> None:
    manifests, notes = render({"tests": {"enabled": False}})
    assert [m for m in manifests if m.template.startswith("tests/")] == []
    assert "helm test" not in notes


async def test_the_helm_test_script_passes_on_200_and_fails_on_503() -> None:
    """The Pod's command, run with this interpreter against a loopback /readyz."""
    manifests, _ = render()
    command = readyz_pod(manifests)["spec"]["containers"][0]["command"]
    answers = {"status": 200}

    async def readyz(request: web.Request) -> web.Response:
        status = answers["status"]
        return web.json_response({"ready": status == 200, "reason": "source_stale"}, status=status)

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/readyz"

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, *command[1:-1], url],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )

        ready = await asyncio.to_thread(run)
        answers["status"] = 503
        unready = await asyncio.to_thread(run)
    finally:
        await runner.cleanup()
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert "200" in ready.stdout
    assert unready.returncode == 1, unready.stdout + unready.stderr
    # The answer's reason reaches `helm test --logs`.
    assert "source_stale" in unready.stdout


# --- ServiceMonitor options -------------------------------------------------------------


def test_the_service_monitor_takes_the_options_users_expect() -> None:
    manifests, _ = render(values_file("helm-values-postgres.yaml"))
    monitor = only(manifests, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "prometheus"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["metadata"]["annotations"] == {"example.com/owner": "platform"}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "http",
        "path": "/metrics",
        "scheme": "https",
        "interval": "15s",
        "scrapeTimeout": "5s",
        "honorLabels": True,
        "tlsConfig": {
            "serverName": "zaia-relay.monitoring.svc",
            "ca": {"secret": {"name": "relay-metrics-ca", "key": "ca.crt"}},
        },
        "relabelings": [
            {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}
        ],
        "metricRelabelings": [
            {
                "sourceLabels": ["__name__"],
                "regex": "zaia_relay_api_request_duration_seconds_bucket",
                "action": "drop",
            }
        ],
    }


def test_the_service_monitor_defaults_stay_in_the_release_namespace() -> None:
    manifests, _ = render({"serviceMonitor": {"enabled": True}})
    monitor = only(manifests, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert "annotations" not in monitor["metadata"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "http",
        "path": "/metrics",
        "interval": "30s",
        "scrapeTimeout": "10s",
    }


@pytest.mark.parametrize(
    "monitor",
    [
        {"interval": "30 seconds"},
        {"scrapeTimeout": 10},
        {"scheme": "ftp"},
        {"honorLabels": "yes"},
        {"tlsConfig": "insecure"},
        {"namespaces": ["prometheus"]},
    ],
)
def test_the_schema_refuses_bad_service_monitor_values(monitor: dict[str, Any]) -> None:
    helm = require_module("helm_python")
    good = values_file("helm-values-postgres.yaml")["serviceMonitor"]
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(chart.merge_values({"serviceMonitor": good}))
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(chart.merge_values({"serviceMonitor": monitor}))
