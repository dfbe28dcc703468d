"""Breaking changes between a released OpenAPI 3.1 document and the current one.

    python -m tools.openapi_diff [--released DIR] [--current DIR]

Compares every schemas/openapi/<name>.yaml with schemas/openapi/released/<name>.yaml and exits with 1 when a
client of the released version could break. (Existing tools did not fit: oasdiff is Go, and the npm
`openapi-diff` reads OpenAPI 3.0 only and ignores parameters, required flags and enums.)

Breaking, as a client sees it:

* a path or a method removed, or a documented 2xx response or its media type removed;
* requests: a new required parameter or body field (or an optional one made required, or a body made
  required), and anything that narrows what is accepted: a type or enum value removed, a minimum/maximum,
  length, item count or property count tightened, a multipleOf that old values no longer meet, a pattern or
  format added or changed, additionalProperties closed, a media type removed;
* responses: a field removed or no longer required, or a field's type changed; an enum value added, unless
  the document's version raises its minor (or major) version over the released one: a client of the released
  version may meet a value it does not know, so adding one is a deliberate minor release, reported as such.

Not breaking: additions (paths, methods, optional parameters and fields, response fields, enum values in
requests), widening of request constraints, descriptions and examples. A parameter or field removed from a
request is not breaking either: servers ignore what they do not know.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OPENAPI_DIR = ROOT / "schemas" / "openapi"
RELEASED_DIR = OPENAPI_DIR / "released"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Keywords whose larger value accepts less, and whose smaller value accepts less.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


@dataclass(frozen=True)
class Breaking:
    """One change that can break a client of the released document. released_as_minor: a change a minor
    release may make (a response enum value added) and the document's version is such a release; reported, not
    failed."""

    where: str
    what: str
    released_as_minor: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


class _Document:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def resolve(self, node: Any, depth: int = 0) -> Any:
        """node with a leading $ref chain followed (siblings of $ref win, as in OpenAPI 3.1)."""
        while isinstance(node, dict) and "$ref" in node:
            if depth > 32:
                raise ValueError(f"$ref chain too long at {node['$ref']}")
            target: Any = self.data
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            depth += 1
        return node


def diff(released: dict[str, Any], current: dict[str, Any]) -> list[Breaking]:
    """Every breaking change from released to current."""
    old, new = _Document(released), _Document(current)
    found: list[Breaking] = []
    for path, old_item in released.get("paths", {}).items():
        new_item = current.get("paths", {}).get(path)
        if new_item is None:
            found.append(Breaking(path, "path removed"))
            continue
        for method in METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            if method not in new_item:
                found.append(Breaking(where, "method removed"))
                continue
            found += _operation(where, old, new, old_item, new_item, method)
    if _minor_release(released, current):
        found = [
            Breaking(b.where, b.what, released_as_minor=True) if b.what.startswith(_ENUM_ADDED) else b for b in found
        ]
    return found


_ENUM_ADDED = "response enum values added"


def _version(document: dict[str, Any]) -> tuple[int, ...]:
    parts = str(document.get("info", {}).get("version", "")).split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in parts[:2])


def _minor_release(released: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether current's info.version raises released's major or minor version (semantic versioning)."""
    return _version(current) > _version(released)


def _operation(
    where: str, old: _Document, new: _Document, old_item: dict[str, Any], new_item: dict[str, Any], method: str
) -> list[Breaking]:
    found: list[Breaking] = []
    old_params = _parameters(old, old_item, method)
    for key, param in _parameters(new, new_item, method).items():
        label = f"{where} {key[0]} parameter {param['name']}"
        before = old_params.get(key)
        if param.get("required") and (before is None or not before.get("required")):
            found.append(Breaking(label, "new required parameter" if before is None else "parameter made required"))
        if before is not None:
            found += _request_schema(label, old, new, before.get("schema", {}), param.get("schema", {}))
    found += _request_body(where, old, new, old_item[method].get("requestBody"), new_item[method].get("requestBody"))
    old_responses = old_item[method].get("responses", {})
    new_responses = new_item[method].get("responses", {})
    for status, old_response in old_responses.items():
        label = f"{where} response {status}"
        if status not in new_responses:
            if str(status).startswith("2"):
                found.append(Breaking(label, "response removed"))
            continue
        old_content = old.resolve(old_response).get("content", {})
        new_content = new.resolve(new_responses[status]).get("content", {})
        for media_type, old_media in old_content.items():
            if media_type not in new_content:
                found.append(Breaking(f"{label} {media_type}", "media type removed"))
            elif "schema" in old_media:
                found += _response_schema(
                    f"{label} {media_type}", old, new, old_media["schema"], new_content[media_type].get("schema", {})
                )
    return found


def _parameters(document: _Document, item: dict[str, Any], method: str) -> dict[tuple[str, str], dict[str, Any]]:
    params = {}
    for raw in [*item.get("parameters", []), *item[method].get("parameters", [])]:
        param = document.resolve(raw)
        name = param["name"].lower() if param["in"] == "header" else param["name"]
        params[(param["in"], name)] = param
    return params


def _request_body(
    where: str, old: _Document, new: _Document, old_body: dict[str, Any] | None, new_body: dict[str, Any] | None
) -> list[Breaking]:
    label = f"{where} request body"
    old_body = old.resolve(old_body) if old_body else None
    new_body = new.resolve(new_body) if new_body else None
    if new_body is None:
        return []
    if old_body is None:
        return [Breaking(label, "new required request body")] if new_body.get("required") else []
    found = []
    if new_body.get("required") and not old_body.get("required"):
        found.append(Breaking(label, "request body made required"))
    new_content = new_body.get("content", {})
    for media_type, old_media in old_body.get("content", {}).items():
        if media_type not in new_content:
            found.append(Breaking(f"{label} {media_type}", "media type removed"))
        else:
            found += _request_schema(
                f"{label} {media_type}",
                old,
                new,
                old_media.get("schema", {}),
                new_content[media_type].get("schema", {}),
            )
    return found


def _types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    types = {kind} if isinstance(kind, str) else set(kind)
    if "integer" in types and "number" in types:
        types.discard("integer")
    return types


def _request_schema(
    where: str, old: _Document, new: _Document, before: Any, after: Any, depth: int = 0
) -> list[Breaking]:
    """Changes that make a request valid under before invalid under after."""
    before, after = old.resolve(before), new.resolve(after)
    if not isinstance(before, dict) or not isinstance(after, dict) or depth > 32:
        return []
    found = []
    old_types, new_types = _types(before), _types(after)
    if new_types is not None:
        widened_to_number = old_types == {"integer"} and new_types >= {"number"}
        if old_types is None:
            found.append(Breaking(where, f"type restricted to {sorted(new_types)}"))
        elif not old_types <= new_types and not widened_to_number:
            found.append(Breaking(where, f"type changed from {sorted(old_types)} to {sorted(new_types)}"))
    if "enum" in after:
        removed = [v for v in before.get("enum", []) if v not in after["enum"]] if "enum" in before else None
        if removed is None:
            found.append(Breaking(where, f"restricted to enum {after['enum']}"))
        elif removed:
            found.append(Breaking(where, f"enum values removed: {removed}"))
    if "const" in after and before.get("const", object()) != after["const"]:
        found.append(Breaking(where, f"restricted to const {after['const']!r}"))
    for keyword in _LOWER_BOUNDS:
        if keyword in after and (keyword not in before or _number(after[keyword]) > _number(before[keyword])):
            found.append(Breaking(where, f"{keyword} tightened from {before.get(keyword, 'none')} to {after[keyword]}"))
    for keyword in _UPPER_BOUNDS:
        if keyword in after and (keyword not in before or _number(after[keyword]) < _number(before[keyword])):
            found.append(Breaking(where, f"{keyword} tightened from {before.get(keyword, 'none')} to {after[keyword]}"))
    if "multipleOf" in after and (
        "multipleOf" not in before or _number(before["multipleOf"]) % _number(after["multipleOf"]) != 0
    ):
        found.append(
            Breaking(where, f"multipleOf changed from {before.get('multipleOf', 'none')} to {after['multipleOf']}")
        )
    for keyword in ("pattern", "format"):
        if keyword in after and before.get(keyword) != after[keyword]:
            found.append(
                Breaking(where, f"{keyword} changed from {before.get(keyword, 'none')!r} to {after[keyword]!r}")
            )
    if after.get("additionalProperties") is False and before.get("additionalProperties") is not False:
        found.append(Breaking(where, "additional properties no longer allowed"))
    old_required, new_required = set(before.get("required", [])), set(after.get("required", []))
    old_properties, new_properties = before.get("properties", {}), after.get("properties", {})
    for name in sorted(new_required - old_required):
        found.append(
            Breaking(f"{where}.{name}", "new required field" if name not in old_properties else "field made required")
        )
    for name, schema in new_properties.items():
        if name in old_properties:
            found += _request_schema(f"{where}.{name}", old, new, old_properties[name], schema, depth + 1)
    for keyword, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(before.get(keyword), dict) and isinstance(after.get(keyword), dict):
            found += _request_schema(f"{where}{suffix}", old, new, before[keyword], after[keyword], depth + 1)
    return found


def _response_schema(
    where: str, old: _Document, new: _Document, before: Any, after: Any, depth: int = 0
) -> list[Breaking]:
    """Changes that take away something a client of before may rely on."""
    before, after = old.resolve(before), new.resolve(after)
    if not isinstance(before, dict) or not isinstance(after, dict) or depth > 32:
        return []
    found = []
    old_types, new_types = _types(before), _types(after)
    if old_types is not None and old_types != new_types:
        found.append(Breaking(where, f"type changed from {sorted(old_types)} to {sorted(new_types or ['any'])}"))
    if "enum" in before and "enum" in after:
        added = [v for v in after["enum"] if v not in before["enum"]]
        if added:
            found.append(Breaking(where, f"{_ENUM_ADDED}: {added} (clients of the released version may not know them)"))
    for keyword in ("oneOf", "anyOf"):
        if isinstance(before.get(keyword), list) and isinstance(after.get(keyword), list):
            for index, (b, a) in enumerate(zip(before[keyword], after[keyword], strict=False)):
                found += _response_schema(f"{where}<{keyword}[{index}]>", old, new, b, a, depth + 1)
    old_properties, new_properties = before.get("properties", {}), after.get("properties", {})
    new_required = set(after.get("required", []))
    for name, schema in old_properties.items():
        if name not in new_properties:
            found.append(Breaking(f"{where}.{name}", "response field removed"))
            continue
        if name in before.get("required", []) and name not in new_required:
            found.append(Breaking(f"{where}.{name}", "response field no longer required (may be absent)"))
        found += _response_schema(f"{where}.{name}", old, new, schema, new_properties[name], depth + 1)
    for keyword, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(before.get(keyword), dict) and isinstance(after.get(keyword), dict):
            found += _response_schema(f"{where}{suffix}", old, new, before[keyword], after[keyword], depth + 1)
    return found


def _number(value: Any) -> Decimal:
    return Decimal(str(value))


def load(path: Path) -> dict[str, Any]:
    """An OpenAPI YAML file as JSON data: the round trip turns YAML's integer keys (response codes) into strings.

    Raises OSError, yaml.YAMLError, or TypeError for a YAML value JSON cannot hold (a date, say).
    """
    return json.loads(json.dumps(yaml.safe_load(path.read_text())))


def compare_all(
    released_dir: Path = RELEASED_DIR, current_dir: Path = OPENAPI_DIR
) -> Iterator[tuple[str, list[Breaking]]]:
    """(spec name, breaking changes) for every released spec."""
    for released in sorted(released_dir.glob("*.yaml")):
        current = current_dir / released.name
        if not current.exists():
            yield released.name, [Breaking(released.name, "released API removed")]
            continue
        yield released.name, diff(load(released), load(current))


def main(argv: list[str] | None = None) -> int:
    """The command line; exit status 0 when no released spec is broken, 1 on a breaking change or no released spec."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--released", type=Path, default=RELEASED_DIR, help="directory of released specs")
    parser.add_argument("--current", type=Path, default=OPENAPI_DIR, help="directory of current specs")
    args = parser.parse_args(argv)
    results = list(compare_all(args.released, args.current))
    if not results:
        print(f"no released specs in {args.released}", file=sys.stderr)
        return 1
    broken = False
    for name, found in results:
        changes = [c for c in found if not c.released_as_minor]
        for change in found:
            if change.released_as_minor:
                print(f"{name}: MINOR RELEASE {change}")
        if changes:
            broken = True
            print(f"{name}: {len(changes)} breaking change(s) against {args.released / name}:", file=sys.stderr)
            for change in changes:
                print(f"  BREAKING {change}", file=sys.stderr)
        else:
            print(f"{name}: no breaking changes against the released version")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
