"""deploy/k8s/base agrees with the code it deploys.

Nothing here talks to a cluster: every manifest is read as data and checked against the settings classes, the
OpenAPI documents and the image, so a misspelt variable, a probe on a missing route or a Service aiming at no
port fails here instead of in a rollout (the way tests/unit/test_compose.py checks docker-compose.yml).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url

from fulfillment_service.settings import FulfillmentServiceSettings
from httpapi import liveness_probe
from order_service.settings import OrderServiceSettings
from tests.unit.test_compose import dockerfile_args, field_env_names

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"

# Deployment name -> (settings class, package its command runs, OpenAPI document)
APP_SERVICES: dict[str, tuple[type[BaseSettings], str, str]] = {
    "order-service": (OrderServiceSettings, "order_service", "order-service.yaml"),
    "fulfillment-service": (FulfillmentServiceSettings, "fulfillment_service", "fulfillment-service.yaml"),
}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
SECRET_STAND_IN = "postgresql://app:secret@postgres:5432/orders"  # what a Secret would hold, for loading settings


# --- reading the manifests -----------------------------------------------------------------------


@functools.cache
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())


@functools.cache
def documents() -> list[dict[str, Any]]:
    """Every object of every manifest in the base (multi-document files included)."""
    objects = []
    for path in sorted(BASE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects += [document for document in yaml.safe_load_all(path.read_text()) if document]
    return objects


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {document["metadata"]["name"]: document for document in documents() if document["kind"] == kind}


def container(name: str) -> dict[str, Any]:
    containers = objects("Deployment")[name]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{name}: one container per pod"
    return containers[0]


def container_port(name: str, port: int | str) -> int:
    """The containerPort a probe or Service port (a number or a port's name) reaches."""
    if isinstance(port, int):
        return port
    named = {entry["name"]: entry["containerPort"] for entry in container(name)["ports"] if "name" in entry}
    assert port in named, f"{name} has no container port named {port}"
    return named[port]


def environment(name: str) -> dict[str, str]:
    """Every variable the container gets, as the kubelet sets it: envFrom ConfigMaps first, env over them.
    A Secret's value is SECRET_STAND_IN (the manifests never hold secrets)."""
    env: dict[str, str] = {}
    for source in container(name).get("envFrom", []):
        assert "configMapRef" in source, f"{name}: envFrom reads only ConfigMaps here ({source})"
        config_map = objects("ConfigMap").get(source["configMapRef"]["name"])
        assert config_map is not None, f"{name} reads ConfigMap {source['configMapRef']['name']}, which is not here"
        env.update({key: str(value) for key, value in config_map.get("data", {}).items()})
    for variable in container(name).get("env", []):
        env[variable["name"]] = SECRET_STAND_IN if "valueFrom" in variable else str(variable["value"])
    return env


def secret_variables(name: str) -> set[str]:
    return {v["name"] for v in container(name).get("env", []) if "secretKeyRef" in v.get("valueFrom", {})}


def settings_from_manifests(name: str, monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """The service's settings exactly as the pod builds them: from its environment alone."""
    settings_class = APP_SERVICES[name][0]
    for key in list(os.environ):
        if key.upper() in field_env_names(settings_class):
            monkeypatch.delenv(key)
    for key, value in environment(name).items():
        monkeypatch.setenv(key, value)
    return settings_class()


@functools.cache
def openapi(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "schemas" / "openapi" / APP_SERVICES[name][2]).read_text())


def quantity(value: str | int) -> float:
    """A Kubernetes quantity in base units: CPU cores (`250m`, `1`) or bytes (`256Mi`, `1Gi`)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9, "": 1}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and match.group(2) in units, f"not a quantity: {value!r}"
    return float(match.group(1)) * units[match.group(2)]


# --- the files -----------------------------------------------------------------------------------


def test_every_manifest_parses_as_kubernetes_objects():
    assert documents(), "no manifests"
    for document in documents():
        assert {"apiVersion", "kind", "metadata"} <= set(document), f"not a Kubernetes object: {document}"
        assert document["metadata"].get("name"), f"a {document['kind']} without a name"


def test_kustomization_lists_every_file():
    files = {path.name for path in BASE.glob("*.y*ml")} - {"kustomization.yaml"}
    listed = kustomization()["resources"]
    assert len(listed) == len(set(listed)), "a resource listed twice"
    assert set(listed) == files, f"unlisted: {sorted(files - set(listed))}; missing: {sorted(set(listed) - files)}"


def test_both_services_have_a_deployment_service_and_budget():
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert set(objects(kind)) == set(APP_SERVICES), f"{kind}s: {sorted(objects(kind))}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_the_base():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    kinds = [document["kind"] for document in yaml.safe_load_all(rendered.stdout) if document]
    assert sorted(kinds) == sorted(document["kind"] for document in documents())


# --- the containers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_container_runs_the_service_from_the_image(name):
    command = container(name)["command"] + container(name).get("args", [])
    assert command[:2] == ["python", "-m"], f"{name}: {command}"
    assert command[2] == APP_SERVICES[name][1] and len(command) == 3, f"{name} runs {command}"
    assert (ROOT / command[2] / "__main__.py").is_file()
    images = {image["name"] for image in kustomization().get("images", [])}
    assert container(name)["image"].split(":")[0] in images, "the kustomization sets no tag for the image"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_environment_variable_is_a_setting(name):
    # pydantic-settings ignores unknown variables, so a misspelt name would silently use the default.
    settings_class = APP_SERVICES[name][0]
    unknown = set(environment(name)) - field_env_names(settings_class)
    assert not unknown, f"{name} sets variables {settings_class.__name__} does not read: {sorted(unknown)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_database_urls_come_from_a_secret(name):
    # Passwords live in the Secret; a URL left at its default is a SQLite file in a pod's writable layer.
    urls = {field.upper() for field in APP_SERVICES[name][0].model_fields if field.endswith("database_url")}
    assert urls <= secret_variables(name), f"{name}: {sorted(urls - secret_variables(name))} not from a Secret"
    assert {"KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL"} <= set(environment(name))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_settings_load_from_the_manifests(name, monkeypatch):
    settings = settings_from_manifests(name, monkeypatch)
    assert settings.host == "0.0.0.0", "bound to loopback, the service is unreachable from its Service"
    assert settings.port in [entry["containerPort"] for entry in container(name)["ports"]]
    assert make_url(settings.database_url).get_backend_name() == "postgresql"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_probes_use_routes_of_the_openapi_document(name, monkeypatch):
    port = settings_from_manifests(name, monkeypatch).port
    for kind in PROBES:
        probe = container(name).get(kind)
        assert probe is not None, f"{name} has no {kind}"
        if "httpGet" in probe:
            path = probe["httpGet"]["path"]
            assert "get" in openapi(name)["paths"].get(path, {}), f"{name}: {kind} on {path}, no such GET route"
            assert container_port(name, probe["httpGet"]["port"]) == port, f"{name}: {kind} probes another port"
        else:
            command = probe["exec"]["command"]
            assert command[:3] == ["python", "-m", "httpapi.liveness_probe"], f"{name}: {kind} runs {command}"
            assert command[3:] == [name]
            assert importlib.util.find_spec("httpapi.liveness_probe") is not None
            assert "get" in openapi(name)["paths"][liveness_probe.SERVICES[name].path]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_liveness_does_not_follow_dependencies(name):
    # A liveness route that answers 503 while the database or Kafka is away would restart every replica at once
    # during an outage that a restart does not cure.
    probe = container(name)["livenessProbe"]
    if "httpGet" in probe:
        responses = openapi(name)["paths"][probe["httpGet"]["path"]]["get"]["responses"]
        assert set(responses) == {"200"}, f"{name}: liveness on a route that can answer {sorted(responses)}"
    else:
        assert liveness_probe.SERVICES[name].any_status, f"{name}: exec liveness must accept any HTTP answer"
    readiness = container(name)["readinessProbe"]
    assert readiness.get("httpGet", {}).get("path") != probe.get("httpGet", {}).get("path", "-")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_resources_are_requested_and_limited(name):
    resources = container(name)["resources"]
    for resource in ("cpu", "memory"):
        request, limit = resources["requests"][resource], resources["limits"][resource]
        assert quantity(request) <= quantity(limit), f"{name}: {resource} request {request} over limit {limit}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_pods_run_as_the_image_user_and_not_root(name):
    pod = objects("Deployment")[name]["spec"]["template"]["spec"]
    image_user = int(dockerfile_args("USER")[-1].split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_user != 0
    context = container(name)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod.get("automountServiceAccountToken") is False, "the services never call the Kubernetes API"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_termination_grace_covers_the_graceful_shutdown(name, monkeypatch):
    settings = settings_from_manifests(name, monkeypatch)
    # order_service/__main__.py: 10 s; fulfillment_service/__main__.py: SHUTDOWN_GRACE_SECONDS + 5 s.
    needed = getattr(settings, "shutdown_grace_seconds", 5) + 5
    grace = objects("Deployment")[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > needed, f"{name} is killed after {grace} s, mid-drain ({needed} s)"


# --- Services, budgets, scale --------------------------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_reaches_the_pods_on_the_service_port(name, monkeypatch):
    port = settings_from_manifests(name, monkeypatch).port
    service = objects("Service")[name]["spec"]
    pod_labels = objects("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items(), f"{name}: the Service selects no pod"
    assert [container_port(name, entry["targetPort"]) for entry in service["ports"]] == [port]
    assert [entry["port"] for entry in service["ports"]] == [port], "clients use the port the README names"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_deployment_selector_matches_its_pods(name):
    deployment = objects("Deployment")[name]["spec"]
    assert deployment["selector"]["matchLabels"].items() <= deployment["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_disruption_budget_selects_the_pods_and_lets_a_drain_proceed(name):
    budget = objects("PodDisruptionBudget")[name]["spec"]
    deployment = objects("Deployment")[name]["spec"]
    assert budget["selector"]["matchLabels"].items() <= deployment["template"]["metadata"]["labels"].items()
    replicas = deployment["replicas"]
    assert replicas >= 2, f"{name}: one replica and a budget, a node drain either waits forever or stops intake"
    if "minAvailable" in budget:
        assert 1 <= budget["minAvailable"] < replicas
    else:
        assert 1 <= budget["maxUnavailable"] < replicas


def test_fulfillment_replicas_fit_the_partitions(monkeypatch):
    # Members of one consumer group beyond the topic's partitions get none and idle.
    settings = settings_from_manifests("fulfillment-service", monkeypatch)
    replicas = objects("Deployment")["fulfillment-service"]["spec"]["replicas"]
    assert replicas <= settings.order_events_partitions
