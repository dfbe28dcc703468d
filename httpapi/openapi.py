"""Each service serves its committed contract, and the code is checked against that same contract.

Why not let FastAPI describe the API: its generated document says the same things differently (`anyOf` with
`null` instead of type arrays, titles on every schema, Decimal as a string pattern, component names of its
own, error bodies under `application/json` beside `application/problem+json`), and it cannot say some
things at all (the comma-separated `waitFor` array, a hand-parsed request body). Publishing it would give
clients a second, subtly different contract. So `serve_contract` makes `/openapi.json` (and Swagger UI at
`/docs`, ReDoc at `/redoc`) answer with `schemas/openapi/<service>.yaml` itself, the document clients
generate code from. The services read it from `contract_models.documents`, which `make codegen` writes
from schemas/ (and `make codegen-check` keeps equal), so a deployment needs no schemas/ tree.

What keeps that honest is `tests/contract/test_served_contract.py`, built on `operations_of_spec` and
`operations_of_app` below. Both reduce an API to {(path, method): Operation} and the test requires equality:

* routes: every (path, method) of the spec has a route and every API route is in the spec; documentation
  routes (`/openapi.json`, `/docs`, ..., `/asyncapi.yaml`) and routes hidden with `include_in_schema=False`
  are not API.
* parameters (name, in, required, schema with its constraints and default), taken from the document FastAPI
  derives from the route signatures, so a changed `Query(le=...)` or a dropped parameter shows.
* request bodies: required flag, media types and schema; a body the route reads itself is declared with
  `openapi_extra` naming a spec component, and that component's generated model must match the spec.
* responses: status codes, media types and the JSON Schema of the declared model per status, where a
  response's media types are those it declares in `content`, else its route's response class's.

Schemas are compared after `normalize_schema`, which removes representation only:

* `$ref`s are inlined, so component names (`Money`, `Order-Output`, `$defs`) do not matter;
* annotations go: title, description, examples, `$comment`;
* `type: [string, 'null']` and `anyOf: [{type: string}, {type: 'null'}]` become the same thing, and so do
  `enum` lists in another order and `required` lists in another order;
* pydantic's second branch for Decimal (a numeric string, which the services never send nor accept in
  strict mode) is dropped;
* a `null` default is dropped, and so is `null` among the types of an *optional* property or parameter:
  the model generator renders every optional property as `T | None = None`, so the models cannot tell
  "may be absent" from "may be null". Whether a service accepts or sends such a null is checked at run
  time instead (schemathesis' negative_data_rejection and response_schema_conformance).

Parameter serialization (`style`, `explode`) is not compared: FastAPI has no notation for it. The
behaviour is checked at run time: schemathesis sends `waitFor` comma-separated, as the spec says.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import TypeAdapter
from starlette.responses import Response

from contract_models import documents

ASYNCAPI_PATH = "/asyncapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Schema = Any
Resolver = Callable[[str], Schema]

_ANNOTATIONS = frozenset({"title", "description", "examples", "example", "$comment", "deprecated"})
# pydantic's JSON Schema for a Decimal accepts a numeric string beside the number.
_PYDANTIC_DECIMAL_STRING = {"type": "string", "pattern": r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$"}


def load_document(path: Path) -> dict[str, Any]:
    """A YAML or JSON document as plain JSON data (YAML-only types would not survive /openapi.json)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text())))


def serve_contract(app: FastAPI, service: str, asyncapi: bool = False) -> None:
    """Serve schemas/openapi/<service>.yaml as the app's OpenAPI document; with asyncapi, also the AsyncAPI
    document at GET /asyncapi.yaml."""
    document = json.loads(documents.OPENAPI[service])
    app.openapi = lambda: document  # type: ignore[method-assign]
    if asyncapi:
        content = documents.ASYNCAPI_YAML.encode()

        @app.get(ASYNCAPI_PATH, include_in_schema=False)
        async def asyncapi_document() -> Response:
            return Response(content, media_type="application/yaml")


def documentation_paths(app: FastAPI) -> set[str]:
    """Routes that describe the API rather than being part of it."""
    urls = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url, ASYNCAPI_PATH}
    return {url for url in urls if url}


# --- normalisation --------------------------------------------------------------------------------------


def ref_resolver(document: dict[str, Any]) -> Resolver:
    """Resolves local JSON pointers (`#/components/schemas/X`, `#/$defs/X`) in document."""

    def resolve(ref: str) -> Schema:
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported: {ref}")
        node: Any = document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    return resolve


def normalize_schema(schema: Schema, resolve: Resolver, optional: bool = False) -> Schema:
    """The schema without representation details (see the module docstring); optional: may be absent."""
    normal = _normalize(schema, resolve, depth=0)
    return _without_null(normal) if optional else normal


def _normalize(schema: Schema, resolve: Resolver, depth: int) -> Schema:
    if depth > 64:
        raise ValueError("schema nests too deeply (a recursive $ref?)")
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        return _normalize({**resolve(schema["$ref"]), **siblings}, resolve, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS or key == "$defs" or key == "definitions":
            continue
        if key == "default" and value is None:
            continue
        if key in ("properties", "patternProperties", "dependentSchemas"):
            out[key] = {name: _normalize(sub, resolve, depth + 1) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "contains", "propertyNames") and isinstance(value, dict):
            out[key] = _normalize(value, resolve, depth + 1)
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            out[key] = [_normalize(sub, resolve, depth + 1) for sub in value]
        elif key in ("required", "enum"):
            out[key] = sorted(value, key=json.dumps)
        elif key == "type" and isinstance(value, list):
            out[key] = sorted(value) if len(value) > 1 else value[0]
        else:
            out[key] = value
    if "anyOf" in out:
        out = _merge_any_of(out)
    if "properties" in out:
        required = set(out.get("required", ()))
        out["properties"] = {
            name: sub if name in required else _without_null(sub) for name, sub in out["properties"].items()
        }
    return out


def _merge_any_of(schema: dict[str, Any]) -> dict[str, Any]:
    """anyOf of branches that differ only in type -> one schema with a type list."""
    branches = list(schema["anyOf"])
    if any(b.get("type") in ("number", "integer") for b in branches):
        branches = [b for b in branches if b != _PYDANTIC_DECIMAL_STRING]
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    simple = all(isinstance(b.get("type"), str) for b in branches)
    detailed = [b for b in branches if set(b) - {"type"}]
    if simple and len(detailed) <= 1 and not set(rest) & set(detailed[0] if detailed else {}):
        types = sorted({b["type"] for b in branches})
        merged = {**rest, **(detailed[0] if detailed else {})}
        merged["type"] = types if len(types) > 1 else types[0]
        return merged
    return {**rest, "anyOf": branches}


def _without_null(schema: Schema) -> Schema:
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        kept = [t for t in kind if t != "null"]
        return {**schema, "type": kept if len(kept) > 1 else kept[0]}
    if "anyOf" in schema:
        kept = [b for b in schema["anyOf"] if b != {"type": "null"}]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**rest, **kept[0]}
        return {**schema, "anyOf": kept}
    return schema


# --- operations ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """What a client relies on in one operation, normalised."""

    parameters: dict[tuple[str, str], dict[str, Any]]  # (in, name) -> {required, schema}
    request_body: dict[str, Any] | None  # {required, content: {media type: schema}}
    responses: dict[str, dict[str, Schema]]  # status -> {media type: schema or None}


def _parameters(parameters: Iterable[dict[str, Any]], resolve: Resolver) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for parameter in parameters:
        if "$ref" in parameter:
            parameter = resolve(parameter["$ref"])
        required = bool(parameter.get("required", False))
        name = parameter["name"].lower() if parameter["in"] == "header" else parameter["name"]
        out[(parameter["in"], name)] = {
            "required": required,
            "schema": normalize_schema(parameter.get("schema", {}), resolve, optional=not required),
        }
    return out


def operations_of_spec(spec: dict[str, Any]) -> dict[tuple[str, str], Operation]:
    """The operations an OpenAPI document promises."""
    resolve = ref_resolver(spec)
    operations = {}
    for path, item in spec.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method not in item:
                continue
            operation = item[method]
            parameters = _parameters([*item.get("parameters", []), *operation.get("parameters", [])], resolve)
            body = operation.get("requestBody")
            if body is not None and "$ref" in body:
                body = resolve(body["$ref"])
            responses = {}
            for status, response in operation.get("responses", {}).items():
                if "$ref" in response:
                    response = resolve(response["$ref"])
                responses[str(status)] = {
                    media: normalize_schema(content["schema"], resolve) if "schema" in content else None
                    for media, content in response.get("content", {}).items()
                }
            operations[(path, method)] = Operation(parameters, _request_body(body, resolve), responses)
    return operations


def _request_body(body: dict[str, Any] | None, resolve: Resolver) -> dict[str, Any] | None:
    if body is None:
        return None
    content = {media: normalize_schema(c.get("schema", {}), resolve) for media, c in body.get("content", {}).items()}
    return {"required": bool(body.get("required", False)), "content": content}


def model_schema(model: Any) -> Schema:
    """A model's JSON Schema as it validates input (what a document of that model may contain)."""
    schema = TypeAdapter(model).json_schema(mode="validation")
    return normalize_schema(schema, ref_resolver(schema))


def api_routes(app: FastAPI) -> list[tuple[str, str, Any]]:
    """(path, method, route) of every API route, included routers flattened, documentation left out.

    A route is FastAPI's view of an APIRoute as mounted (prefixes and defaults of its routers applied)."""
    docs = documentation_paths(app)
    routes = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or context.path_format in docs:
            continue
        for method in sorted(context.methods or ()):
            routes.append((context.path_format, method.lower(), context))
    return routes


def operations_of_app(app: FastAPI, models: ModuleType) -> dict[tuple[str, str], Operation]:
    """The operations the app's routes implement, as FastAPI derives them from the code.

    models is the service's generated package module: a body a route declares by component name with
    `openapi_extra` is the model of that name there.
    """
    derived = get_openapi(title=app.title, version=app.version, openapi_version="3.1.0", routes=app.routes)
    resolve_derived = ref_resolver(derived)

    def resolve(ref: str) -> Schema:
        try:
            return resolve_derived(ref)
        except KeyError:
            # A component FastAPI never saw (a body named in openapi_extra): the generated model of that name.
            model = getattr(models, ref.rsplit("/", 1)[-1], None)
            if model is None:
                raise
            return model_schema(model)

    operations = {}
    for path, method, route in api_routes(app):
        if not route.include_in_schema:
            continue
        described = derived["paths"][path][method]
        parameters = _parameters(described.get("parameters", []), resolve)
        body = _request_body(described.get("requestBody"), resolve)
        operations[(path, method)] = Operation(parameters, body, _route_responses(route))
    return operations


def _route_responses(route: Any) -> dict[str, dict[str, Schema]]:
    response_class = route.response_class
    if isinstance(response_class, DefaultPlaceholder):
        response_class = response_class.value
    default_status = str(route.status_code or 200)
    declared: dict[str, dict[str, Any]] = {str(status): dict(doc) for status, doc in route.responses.items()}
    declared.setdefault(default_status, {})
    if route.response_model is not None:
        declared[default_status].setdefault("model", route.response_model)
    responses = {}
    for status, doc in declared.items():
        model = doc.get("model")
        schema = model_schema(model) if model is not None else None
        media_types = list(doc.get("content", {})) or [response_class.media_type]
        responses[status] = {media: schema for media in media_types}
    return responses
