"""The runtime lock, the image and the console scripts agree with the code they package.

requirements-runtime.lock must hold exactly what the services import (every module they import resolves to a
package in it, every runtime dependency in pyproject.toml is imported, no development tool is in it), pinned as
requirements.lock pins it; the Dockerfile installs only it, hash-checked; each console script runs the function
its `python -m` form runs. Nothing here installs or builds: the files are read as data, and module ownership is
read from the metadata of the development environment running the tests.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import importlib.util
import os
import re
import tomllib
from pathlib import Path

import pytest

from httpapi import liveness_probe
from tests.unit.test_compose import dockerfile_args, import_closure

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = "requirements-runtime.lock"
DEV_LOCK = "requirements.lock"
# What the image runs (the Dockerfile's command and its documented alternatives).
IMAGE_PACKAGES = ("order_service", "fulfillment_service", "repair")
# Packages the services load by name at run time, never in an import statement.
LOADED_BY_NAME = {
    "psycopg": "SQLAlchemy's postgresql+psycopg dialect (persistence/engine.py) imports it for PostgreSQL URLs",
    "uvloop": "uvicorn's default loop ('auto') runs on it when it is installed",
}
# Tools a running service never needs; none may reach the image.
DEV_TOOLS = ("pytest", "schemathesis", "hypothesis", "ruff", "datamodel-code-generator", "matplotlib", "mirakuru")


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares it (`PyYAML` and `pyyaml`, `typing_extensions` and `-` alike)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement_name(requirement: str) -> str:
    """The distribution name of a PEP 508 requirement (`psycopg[binary]==3.3.9; ...` -> psycopg)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"not a requirement: {requirement!r}"
    return normalized(match.group(1))


def extras_requirements() -> list[str]:
    """Every requirement of every extra of pyproject.toml."""
    return [r for extra in pyproject()["project"]["optional-dependencies"].values() for r in extra]


def requirement_pin(requirement: str) -> str:
    match = re.search(r"==\s*([^\s;,\]]+)", requirement)
    assert match, f"{requirement!r} is not pinned with =="
    return match.group(1)


@functools.cache
def lock_entries(name: str) -> dict[str, tuple[str, list[str]]]:
    """normalized name -> (pinned version, its --hash values) of a `uv pip compile` output file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
            assert match, f"{name}: not an exact pin: {line!r}"
            current = normalized(match.group(1))
            entries[current] = (match.group(2), [])
        for digest in re.findall(r"--hash=(\S+)", line):
            assert current is not None
            entries[current][1].append(digest)
    return entries


def imported_modules(packages: tuple[str, ...]) -> set[str]:
    """Every absolute module name outside this repository and the standard library that packages, and the local
    packages they import in turn, import: the code the image must be able to run (test_compose.import_closure)."""
    return import_closure(packages)[1]


@functools.cache
def file_owners() -> dict[str, str]:
    """Installed module file (absolute path, as sys.path spells it) -> normalized name of its distribution."""
    owners = {}
    for dist in importlib.metadata.distributions():
        name = normalized(dist.metadata["Name"])
        for file in dist.files or []:
            if file.suffix in (".py", ".so", ".pyd"):
                owners[os.path.normpath(dist.locate_file(file))] = name
    return owners


def owner_of(module: str) -> str | None:
    """The distribution whose files hold module; None for a namespace package (opentelemetry: the submodules
    imported from it each name their own) and for a name that is not a module (`fastapi.FastAPI`)."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:  # x.y where x is a module, not a package
        spec = None
    if spec is None:
        assert "." in module, f"{module} is not installed"
        return None
    if spec.origin in (None, "namespace"):
        return None
    owner = file_owners().get(os.path.normpath(spec.origin))
    assert owner is not None, f"no installed distribution holds {module} ({spec.origin})"
    return owner


@functools.cache
def imported_distributions() -> dict[str, set[str]]:
    """normalized distribution name -> the modules of it the image's code imports."""
    owners: dict[str, set[str]] = {}
    for module in imported_modules(IMAGE_PACKAGES):
        owner = owner_of(module)
        if owner is not None:
            owners.setdefault(owner, set()).add(module)
    return owners


# --- the runtime lock ----------------------------------------------------------------------------


def test_every_module_the_services_import_is_in_the_runtime_lock():
    missing = {dist: sorted(modules) for dist, modules in imported_distributions().items()}
    missing = {dist: modules for dist, modules in missing.items() if dist not in lock_entries(RUNTIME_LOCK)}
    assert not missing, f"the image would fail to import these (distribution: modules): {missing}"
    for name in LOADED_BY_NAME:
        assert normalized(name) in lock_entries(RUNTIME_LOCK), f"{name}: {LOADED_BY_NAME[name]}"


def test_every_runtime_dependency_is_imported_by_the_services():
    # The runtime set is [project].dependencies; one nothing imports only makes the image bigger.
    declared = {requirement_name(r) for r in pyproject()["project"]["dependencies"]}
    used = set(imported_distributions()) | {normalized(name) for name in LOADED_BY_NAME}
    unused = declared - used
    assert not unused, f"runtime dependencies the services never import: {sorted(unused)}; move them to an extra"
    undeclared = set(imported_distributions()) - declared
    direct_only = {dist: sorted(imported_distributions()[dist]) for dist in undeclared}
    assert not direct_only, f"the services import packages they only get through another dependency: {direct_only}"


def test_no_development_tool_is_in_the_runtime_lock():
    runtime = set(lock_entries(RUNTIME_LOCK))
    for tool in DEV_TOOLS:
        assert normalized(tool) not in runtime, f"{tool} is a development tool, yet in {RUNTIME_LOCK}"
    dev_only = {requirement_name(r) for r in extras_requirements()}
    assert not dev_only & runtime, f"extras' packages in {RUNTIME_LOCK}: {sorted(dev_only & runtime)}"


def test_runtime_lock_is_hash_pinned_and_pins_what_pyproject_pins():
    entries = lock_entries(RUNTIME_LOCK)
    unhashed = [name for name, (_, hashes) in entries.items() if not hashes]
    assert not unhashed, f"pip --require-hashes refuses the whole lock for these: {unhashed}"
    for requirement in pyproject()["project"]["dependencies"]:
        name = requirement_name(requirement)
        assert name in entries, f"{name} is a runtime dependency missing from {RUNTIME_LOCK}: run `make locks`"
        assert entries[name][0] == requirement_pin(requirement), f"{name}: pyproject.toml and {RUNTIME_LOCK} differ"


def test_both_locks_pin_every_shared_package_alike():
    dev, runtime = lock_entries(DEV_LOCK), lock_entries(RUNTIME_LOCK)
    assert set(runtime) <= set(dev), f"{DEV_LOCK} lacks {sorted(set(runtime) - set(dev))}: run `make locks`"
    differ = {name: (dev[name][0], version) for name, (version, _) in runtime.items() if dev[name][0] != version}
    assert not differ, f"development and image would run different versions (dev, runtime): {differ}"
    for requirement in extras_requirements():
        name = requirement_name(requirement)
        assert dev.get(name, ("",))[0] == requirement_pin(requirement), f"{name}: pyproject.toml and {DEV_LOCK} differ"


def test_locks_cover_the_supported_python_versions():
    assert pyproject()["project"]["requires-python"] == ">=3.11,<3.14"
    for lock in (RUNTIME_LOCK, DEV_LOCK):
        header = (ROOT / lock).read_text().splitlines()[:3]
        assert any("make locks" in line for line in header), f"{lock} was not written by `make locks`"
    assert "--universal" in (ROOT / "Makefile").read_text(), "one lock for 3.11 to 3.13 needs a universal resolution"


# --- the Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_installs_only_the_runtime_lock_with_hashes():
    copied = [args.split()[0] for args in dockerfile_args("COPY")]
    assert RUNTIME_LOCK in copied, f"the Dockerfile does not copy {RUNTIME_LOCK}"
    assert DEV_LOCK not in copied, f"the image installs the development lock {DEV_LOCK}"
    installs = [args for args in dockerfile_args("RUN") if "pip install" in args]
    assert installs, "the Dockerfile installs no dependencies"
    for args in installs:
        assert f"-r {RUNTIME_LOCK}" in args, f"installs something else than {RUNTIME_LOCK}: {args}"
        assert "--require-hashes" in args, "a dependency whose file changed on the index would be installed"
        assert "--only-binary :all:" in args, "a source build needs compilers the slim image must not carry"


def test_dockerfile_base_is_slim_and_healthcheck_probes_liveness():
    base = dockerfile_args("FROM")[-1].split()[0]
    assert base.startswith("python:3.11") and base.endswith("-slim"), f"base image {base}"
    healthchecks = dockerfile_args("HEALTHCHECK")
    assert len(healthchecks) == 1, "one HEALTHCHECK"
    command = healthchecks[0].split("CMD", 1)[1].strip()
    assert command == '["python", "-m", "httpapi.liveness_probe"]', command
    spec = importlib.util.find_spec("httpapi.liveness_probe")
    assert spec is not None and spec.origin is not None


# --- console scripts -----------------------------------------------------------------------------


def makefile_modules() -> set[str]:
    """Every module of this project the Makefile runs as `$(PY) -m <module>` (not pytest's or the standard
    library's, such as compileall)."""
    modules = set(re.findall(r"\$\(PY\) -m ([A-Za-z_][\w.]*)", (ROOT / "Makefile").read_text()))
    return {module for module in modules if (ROOT / module.split(".")[0] / "__init__.py").is_file()}


def main_source(module: str) -> Path:
    """The file `python -m module` runs."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    if spec.submodule_search_locations is not None:
        return Path(spec.origin).parent / "__main__.py"
    return Path(spec.origin)


def function_run_by(module: str) -> object:
    """The function `python -m module` calls: the call at the top level or under `if __name__ == "__main__":`
    (`run()`, `main()`, `sys.exit(main())`), resolved through that file's own definitions and imports. Read,
    not imported, since importing a `__main__.py` without a guard runs the command."""
    source = main_source(module)
    tree = ast.parse(source.read_text())
    statements = list(tree.body)
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            statements += node.body
    calls = [node.value for node in statements if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)]
    names = []
    for call in calls:
        if isinstance(call.func, ast.Attribute) and ast.unparse(call.func) == "sys.exit" and call.args:
            call = call.args[0]
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
            names.append(call.func.id)
    assert len(names) == 1, f"{source}: cannot tell which function it runs ({names})"
    name = names[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return getattr(importlib.import_module(node.module), alias.name)
        if isinstance(node, ast.FunctionDef) and node.name == name:
            defining = f"{module}.__main__" if source.name == "__main__.py" else module
            return getattr(importlib.import_module(defining), name)
    raise AssertionError(f"{source}: {name} is neither defined nor imported there")


def scripts() -> dict[str, str]:
    return pyproject()["project"]["scripts"]


def script_target(reference: str) -> object:
    module, _, attribute = reference.partition(":")
    target: object = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


@pytest.mark.parametrize("name", sorted(scripts()))
def test_console_script_resolves_to_a_callable(name):
    target = script_target(scripts()[name])
    assert callable(target), f"{name} = {scripts()[name]} is not callable"
    top = scripts()[name].split(".")[0].split(":")[0]
    includes = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    assert f"{top}*" in includes, f"{name} runs {top}, which an install of the project leaves out"


@pytest.mark.parametrize("module", sorted(makefile_modules() | set(IMAGE_PACKAGES)))
def test_every_python_m_command_has_the_same_console_script(module):
    # The console-script wrapper calls the function and exits with what it returns, as `sys.exit(main())` does.
    function = function_run_by(module)
    same = [name for name, reference in scripts().items() if script_target(reference) is function]
    assert len(same) == 1, f"`python -m {module}` runs {function}; console scripts running it: {same}"


@pytest.mark.parametrize(
    ("script", "module"), [("order-service", "order_service"), ("fulfillment-service", "fulfillment_service")]
)
def test_service_scripts_are_named_as_the_services(script, module):
    assert script_target(scripts()[script]) is function_run_by(module)
    assert liveness_probe.service_of([f"/usr/local/bin/{script}"]) == script
    assert liveness_probe.service_of(["python", "-m", module]) == script
