"""docker-compose.yml and the Dockerfile agree with the code they package.

Nothing here runs Docker: the files are read as data and checked against the settings classes,
entry points and routes they refer to, so a typo fails here instead of in a container.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url

from fulfillment_service.settings import FulfillmentServiceSettings
from order_service.settings import OrderServiceSettings

ROOT = Path(__file__).resolve().parents[2]

# service name -> (settings class, package run with `python -m`, port it must listen on)
APP_SERVICES: dict[str, tuple[type[BaseSettings], str, int]] = {
    "order-service": (OrderServiceSettings, "order_service", 5001),
    "fulfillment-service": (FulfillmentServiceSettings, "fulfillment_service", 5002),
}
CONNECTION_SETTINGS = {"KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "DATABASE_URL"}


# --- reading the files ---------------------------------------------------------------------------


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def environment(name: str) -> dict[str, str]:
    """A service's environment as the container sees it (compose accepts a mapping or KEY=VALUE list)."""
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in env.items()}


def published_ports(name: str) -> dict[int, int]:
    """Container port -> host port, from short ("[ip:]host:container[/proto]") or long syntax."""
    ports: dict[int, int] = {}
    for entry in service(name).get("ports", []):
        if isinstance(entry, dict):
            ports[int(entry["target"])] = int(entry["published"])
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) >= 2:
            ports[int(parts[-1])] = int(parts[-2])
    return ports


def command_module(argv: list[str]) -> str:
    """The module a `python -m <module>` command line runs."""
    assert argv[0].startswith("python") and "-m" in argv, f"not a `python -m` command: {argv}"
    return argv[argv.index("-m") + 1]


@functools.cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def dockerfile_args(keyword: str) -> list[str]:
    return [args for kw, args in dockerfile() if kw == keyword]


def dockerignored(name: str) -> bool:
    """Whether .dockerignore leaves the top-level path `name` out of the build context."""
    path = ROOT / ".dockerignore"
    ignored = False
    for raw in path.read_text().splitlines() if path.exists() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        if "/" not in pattern and fnmatch.fnmatchcase(name, pattern):
            ignored = not negated
    return ignored


def import_closure(packages: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """What packages import, in turn, function-level imports included: (the local packages reached, packages
    included; every other absolute module name imported, the standard library's left out). A `from x import y`
    yields x and x.y, which is a module or, as often, not (`from fastapi import FastAPI`)."""
    local = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    wanted, seen, modules = set(packages), set(), set()
    while wanted - seen:
        package = (wanted - seen).pop()
        seen.add(package)
        for source in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in local:
                        wanted.add(top)
                    elif top not in sys.stdlib_module_names:
                        modules.add(name)
    return seen, modules


def field_env_names(settings_class: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in settings_class.model_fields}


def settings_from_compose(name: str, monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """The service's settings exactly as the container builds them: from its environment alone."""
    settings_class = APP_SERVICES[name][0]
    for key in list(os.environ):
        if key.upper() in field_env_names(settings_class):
            monkeypatch.delenv(key)
    for key, value in environment(name).items():
        monkeypatch.setenv(key, value)
    return settings_class()


def advertised_listeners() -> dict[str, str]:
    """Listener name -> advertised host:port of the kafka service."""
    value = environment("kafka")["KAFKA_ADVERTISED_LISTENERS"]
    return dict(entry.split("://", 1) for entry in value.split(","))


# --- the compose file ----------------------------------------------------------------------------


def test_compose_defines_the_whole_system():
    assert {"kafka", "schema-registry", "order-service", "fulfillment-service"} <= set(compose()["services"])
    assert "version" not in compose(), "the compose spec has no version key; compose warns about it"


@pytest.mark.parametrize(
    ("name", "port"), [("order-service", 5001), ("fulfillment-service", 5002), ("schema-registry", 8081)]
)
def test_port_is_published(name, port):
    assert published_ports(name).get(port) == port, f"{name} does not publish port {port} on the host"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_environment_variable_is_a_setting(name):
    # pydantic-settings ignores unknown variables, so a misspelt name would silently use the default.
    settings_class = APP_SERVICES[name][0]
    unknown = set(environment(name)) - field_env_names(settings_class)
    assert not unknown, f"{name} sets variables {settings_class.__name__} does not read: {sorted(unknown)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_connection_settings_are_set(name):
    # The defaults point at 127.0.0.1 and var/, which inside a container reach nothing / lose data.
    missing = CONNECTION_SETTINGS - set(environment(name))
    assert not missing, f"{name} leaves {sorted(missing)} at their defaults"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_settings_load_from_compose_environment(name, monkeypatch):
    port = APP_SERVICES[name][2]
    settings = settings_from_compose(name, monkeypatch)
    assert settings.port == port, f"{name} would listen on {settings.port}, not {port}"
    assert settings.host == "0.0.0.0", "bound to loopback, the service is unreachable through the published port"
    assert published_ports(name).get(settings.port) is not None, f"{name} listens on a port it does not publish"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_sqlite_files_live_on_a_named_volume(name, monkeypatch):
    settings = settings_from_compose(name, monkeypatch)
    mounts = {}
    for volume in service(name).get("volumes", []):
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
        mounts[target] = source
    urls = {field: getattr(settings, field) for field in type(settings).model_fields if field.endswith("database_url")}
    for field, url in urls.items():
        database = make_url(url).database
        if not url.startswith("sqlite") or database in (None, "", ":memory:"):
            continue
        assert database.startswith("/"), f"{name}: {field.upper()} is relative to the working directory"
        targets = [target for target in mounts if database.startswith(target.rstrip("/") + "/")]
        assert targets, f"{name}: {database} is not on a volume, so it is lost when the container is recreated"
        assert mounts[targets[0]] in (compose().get("volumes") or {}), f"{name}: {targets[0]} is not a named volume"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_services_reach_kafka_and_the_registry(name, monkeypatch):
    settings = settings_from_compose(name, monkeypatch)
    advertised = set(advertised_listeners().values())
    for server in settings.kafka_bootstrap_servers.split(","):
        assert server in advertised, f"{name}: {server} is not an address the broker advertises"

    registry = urlsplit(settings.schema_registry_url)
    assert registry.hostname == "schema-registry"
    registry_port = environment("schema-registry")["QUARKUS_HTTP_PORT"]
    assert str(registry.port) == registry_port, f"{name}: the registry listens on {registry_port}"
    assert registry.path == "/apis/ccompat/v7", "the serializers speak the Confluent API, served under this path"


def test_registry_stores_schemas_in_the_broker():
    env = environment("schema-registry")
    assert env["APICURIO_STORAGE_KIND"] == "kafkasql"
    assert env["APICURIO_KAFKASQL_BOOTSTRAP_SERVERS"] in set(advertised_listeners().values())


def test_kafka_host_port_advertises_the_host_address():
    # Clients connect to whatever the broker advertises, so the listener behind a published port
    # must advertise that published port, or host clients are sent to an unreachable address.
    env = environment("kafka")
    bound = {entry.split("://", 1)[0]: entry.rsplit(":", 1)[1] for entry in env["KAFKA_LISTENERS"].split(",")}
    advertised = advertised_listeners()
    for container_port, host_port in published_ports("kafka").items():
        names = [listener for listener, port in bound.items() if port == str(container_port)]
        assert names, f"no listener on container port {container_port}"
        advertised_port = advertised.get(names[0], "").rsplit(":", 1)[-1]
        assert advertised_port == str(host_port), f"listener {names[0]} is published on {host_port}"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "the services create their topics explicitly"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_healthcheck_probes_an_existing_route(name, monkeypatch):
    package, port = APP_SERVICES[name][1], settings_from_compose(name, monkeypatch).port
    probe = " ".join(service(name)["healthcheck"]["test"])
    url = urlsplit(probe[probe.index("http://") :].split("'")[0].split('"')[0].split()[0])
    assert url.port == port, f"{name}'s healthcheck probes port {url.port}, the service listens on {port}"
    routes = {
        node.value
        for source in (ROOT / package).rglob("*.py")
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("/")
    }
    assert url.path in routes, f"{name} has no route {url.path}; the container would never become healthy"


def test_healthy_dependencies_have_healthchecks():
    # `condition: service_healthy` on a service without a healthcheck makes `compose up` fail.
    for name, spec in compose()["services"].items():
        depends_on = spec.get("depends_on") or {}
        if isinstance(depends_on, list):  # short form: no conditions
            depends_on = {dependency: {} for dependency in depends_on}
        for dependency, condition in depends_on.items():
            assert dependency in compose()["services"], f"{name} depends on unknown service {dependency}"
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in service(dependency), f"{name} waits for {dependency}, which has no healthcheck"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_command_runs_the_service_entry_point(name):
    argv = service(name).get("command")
    argv = argv.split() if isinstance(argv, str) else argv
    module = command_module(argv)
    assert module == APP_SERVICES[name][1], f"{name} runs {module}"
    assert (ROOT / module / "__main__.py").is_file()
    assert "build" in service(name), f"{name} must run the image built from this repository"


def test_images_pin_versions():
    for name, spec in compose()["services"].items():
        if "image" in spec:
            repository, _, tag = spec["image"].rpartition(":")
            assert repository and "/" not in tag and tag not in ("", "latest"), f"{name}: unpinned {spec['image']}"
    for base in dockerfile_args("FROM"):
        image = base.split()[0]
        assert ":" in image and not image.endswith(":latest"), f"Dockerfile: unpinned base image {image}"


# --- Prometheus and Grafana ----------------------------------------------------------------------

OBSERVABILITY = ("prometheus", "grafana")
SCRAPE_CONFIG = "deploy/prometheus/prometheus.yml"


def bind_mounts(name: str) -> dict[str, str]:
    """Container path -> repository path of each bind mount ("./path:/target[:ro]") of a service."""
    mounts = {}
    for volume in service(name).get("volumes", []):
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = source.removeprefix("./")
    return mounts


def container_file(name: str, path: str) -> Path:
    """The committed file a container of service name sees at path (through a bind mount); AssertionError if none."""
    for target, source in bind_mounts(name).items():
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return ROOT / source / path.removeprefix(target).lstrip("/")
    raise AssertionError(f"{name}: nothing is mounted at {path}")


def test_compose_runs_prometheus_and_grafana():
    assert set(OBSERVABILITY) <= set(compose()["services"])
    assert service("prometheus")["image"].startswith("prom/prometheus:")
    assert service("grafana")["image"].startswith("grafana/grafana:")


@pytest.mark.parametrize(("name", "port"), [("prometheus", 9090), ("grafana", 3000)])
def test_observability_ports_are_published_on_loopback_only(name, port):
    assert published_ports(name).get(port) == port, f"{name} does not publish port {port}"
    for entry in service(name)["ports"]:
        assert str(entry).startswith("127.0.0.1:"), f"{name} publishes {entry} beyond this machine"


@pytest.mark.parametrize("name", OBSERVABILITY)
def test_mounted_files_are_committed(name):
    mounts = bind_mounts(name)
    assert mounts, f"{name} mounts nothing from this repository"
    for target, source in mounts.items():
        assert (ROOT / source).exists(), f"{name} mounts {source} at {target}, which is not in the repository"


def test_prometheus_reads_the_committed_scrape_config():
    flags = dict(flag.removeprefix("--").split("=", 1) for flag in service("prometheus")["command"])
    assert container_file("prometheus", flags["config.file"]) == ROOT / SCRAPE_CONFIG


def test_prometheus_scrapes_both_services_where_they_listen(monkeypatch):
    config = yaml.safe_load((ROOT / SCRAPE_CONFIG).read_text())
    targets = {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert set(targets) == set(APP_SERVICES), "one job per service, named as its compose service"
    for name, job_targets in targets.items():
        port = settings_from_compose(name, monkeypatch).port
        assert job_targets == [f"{name}:{port}"], f"{name} listens on {name}:{port}"


def test_grafana_reads_prometheus_and_the_committed_dashboards():
    datasources = container_file("grafana", "/etc/grafana/provisioning/datasources")
    sources = [s for path in datasources.glob("*.yml") for s in yaml.safe_load(path.read_text())["datasources"]]
    url = urlsplit(next(s["url"] for s in sources if s["type"] == "prometheus"))
    assert url.hostname == "prometheus" and url.port in published_ports("prometheus"), f"no Prometheus at {url}"

    providers = container_file("grafana", "/etc/grafana/provisioning/dashboards")
    paths = [p["options"]["path"] for f in providers.glob("*.yml") for p in yaml.safe_load(f.read_text())["providers"]]
    assert paths, "no dashboard provider"
    for path in paths:
        dashboards = container_file("grafana", path)
        assert list(dashboards.glob("*.json")), f"the provider reads {path}, which holds no dashboard"
    home = environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert container_file("grafana", home).is_file()


def test_grafana_lets_anonymous_users_view_only():
    env = environment("grafana")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


# --- the Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_default_command_runs_an_entry_point():
    commands = dockerfile_args("ENTRYPOINT") + dockerfile_args("CMD")
    assert commands, "the Dockerfile declares no CMD or ENTRYPOINT"
    # Exec (JSON) form, so python is PID 1 and gets SIGTERM for a graceful shutdown.
    module = command_module(json.loads(commands[-1]))
    assert (ROOT / module / "__main__.py").is_file(), f"Dockerfile runs {module}, which has no __main__.py"


def test_dockerfile_runs_as_non_root():
    users = dockerfile_args("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the services would run as root"


def test_image_contains_every_package_the_services_import():
    copied = {args.split()[0].rstrip("/") for args in dockerfile_args("COPY") if not args.startswith("--")}
    for source in copied:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert not dockerignored(source), f".dockerignore keeps {source} out of the build context"

    reached, _ = import_closure(tuple(package for _, package, _ in APP_SERVICES.values()))
    missing = reached - copied
    assert not missing, f"the services import {sorted(missing)}, which the image does not contain"
