"""`python -m codegen` writes contract_models/ and schemas/asyncapi/asyncapi.yaml, and keeps the Order Service spec's
`CountryCode` enum equal to ISO 3166-1 (codegen/country_codes.py); `--check` fails on drift."""

from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from codegen import asyncapi, country_codes
from codegen.avro_models import HEADER, render
from events.topology import TOPICS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "contract_models"
AVRO_DIR = ROOT / "schemas" / "avro"
OPENAPI = {
    "order_api.py": ROOT / "schemas" / "openapi" / "order-service.yaml",
    "fulfillment_api.py": ROOT / "schemas" / "openapi" / "fulfillment-service.yaml",
}
# Every event of the topology, by the prefix of its generated constants: {module name: its .avsc file}.
EVENTS = {event.module_name: event.schema_file for topic in TOPICS for event in topic.events}
ASYNCAPI = ROOT / "schemas" / "asyncapi" / "asyncapi.yaml"


def _openapi_models(spec: Path, out: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "datamodel_code_generator",
            "--input",
            str(spec),
            "--input-file-type",
            "openapi",
            "--output",
            str(out),
            "--output-model-type",
            "pydantic_v2.BaseModel",
            "--target-python-version",
            "3.11",
            "--use-standard-collections",
            "--use-union-operator",
            "--use-annotated",
            "--field-constraints",
            "--use-decimal-for-multiple-of",
            "--use-decimal-in-field-forms",
            "--use-schema-description",
            "--use-field-description",
            "--disable-timestamp",
            "--enum-field-as-literal",
            "none",
            "--custom-file-header",
            HEADER.format(source=spec.relative_to(ROOT)).rstrip("\n"),
            "--formatters",
            "ruff-format",
        ],
        check=True,
        cwd=ROOT,
    )


def generate(target: Path, asyncapi_file: Path = ASYNCAPI) -> None:
    """Write the whole generated package into target and the AsyncAPI document to asyncapi_file."""
    target.mkdir(parents=True, exist_ok=True)
    for name, spec in OPENAPI.items():
        _openapi_models(spec, target / name)
    schemas = {name: json.loads((AVRO_DIR / file).read_text()) for name, file in EVENTS.items()}
    (target / "events.py").write_text(render(schemas, "schemas/avro/*.avsc"))
    asyncapi_file.parent.mkdir(parents=True, exist_ok=True)
    asyncapi_file.write_text(asyncapi.render({schema["name"]: schema for schema in schemas.values()}))
    (target / "documents.py").write_text(_documents(asyncapi_file.read_text()))
    (target / "__init__.py").write_text(
        HEADER.format(source="schemas/") + '"""Models generated from the Avro and OpenAPI contracts in schemas/."""\n'
    )


def _documents(asyncapi_text: str) -> str:
    """A module holding the published documents, so a service serves them without the schemas/ tree."""
    openapi = {
        spec.stem: json.dumps(yaml.safe_load(spec.read_text()), separators=(",", ":")) for spec in OPENAPI.values()
    }
    lines = [
        HEADER.format(source="schemas/openapi/*.yaml and schemas/asyncapi/asyncapi.yaml").rstrip("\n"),
        '"""The contract documents the services serve: OpenAPI as JSON text, AsyncAPI as YAML text."""',
        "",
        "OPENAPI = {",
        *(f"    {name!r}: {text!r}," for name, text in sorted(openapi.items())),
        "}",
        f"ASYNCAPI_YAML = {asyncapi_text!r}",
        "",
    ]
    return "\n".join(lines)


def _snapshot(directory: Path, asyncapi_file: Path) -> dict[str, str]:
    files = {p.name: p.read_text() for p in sorted(directory.glob("*.py"))}
    files[ASYNCAPI.relative_to(ROOT).as_posix()] = asyncapi_file.read_text() if asyncapi_file.exists() else ""
    return files


def _spec_texts(synced: bool) -> dict[str, str]:
    """The OpenAPI documents kept by codegen, as committed or (synced) with their generated parts rewritten."""
    spec = OPENAPI["order_api.py"]
    text = spec.read_text()
    return {spec.relative_to(ROOT).as_posix(): country_codes.with_assigned_codes(text) if synced else text}


def sync_specs() -> None:
    """Rewrite the generated parts of the OpenAPI documents (the CountryCode enum) in place."""
    for name, text in _spec_texts(synced=True).items():
        path = ROOT / name
        if path.read_text() != text:
            path.write_text(text)


def check() -> int:
    """Return 1 (and print a diff) when the committed output differs from what the schemas give."""
    # Inside the repository: the formatter datamodel-codegen runs reads the line length from the pyproject.toml
    # above its output, so output generated elsewhere would wrap differently from `make codegen`'s.
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".codegen-check-") as tmp:
        fresh = Path(tmp) / PACKAGE
        generate(fresh, Path(tmp) / "asyncapi.yaml")
        expected = _snapshot(fresh, Path(tmp) / "asyncapi.yaml") | _spec_texts(synced=True)
        actual = _snapshot(ROOT / PACKAGE, ASYNCAPI) | _spec_texts(synced=False)
    if expected == actual:
        print(f"{PACKAGE}/ and {ASYNCAPI.relative_to(ROOT)} are up to date with schemas/")
        return 0
    for name in sorted(set(expected) | set(actual)):
        if expected.get(name) != actual.get(name):
            diff = difflib.unified_diff(
                actual.get(name, "").splitlines(),
                expected.get(name, "").splitlines(),
                f"committed/{name}",
                f"generated/{name}",
                lineterm="",
                n=1,
            )
            print("\n".join(list(diff)[:60]))
    stale = f"{PACKAGE}/, {ASYNCAPI.relative_to(ROOT)} or the OpenAPI country codes"
    print(f"\n{stale} is out of date with schemas/: run `make codegen` and commit the result", file=sys.stderr)
    return 1


def main() -> int:
    """``make codegen`` writes the generated package and AsyncAPI document; ``--check`` exits 1 when they drifted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the committed output has drifted")
    args = parser.parse_args()
    if args.check:
        return check()
    sync_specs()
    generate(ROOT / PACKAGE)
    print(f"wrote {PACKAGE}/ and {ASYNCAPI.relative_to(ROOT)}; CountryCode in {OPENAPI['order_api.py'].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
