"""RFC 9457 problem details for every error either service returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from contracts.violation import field_path
from httpapi.json_body import dumps

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    errors: list[dict[str, str]] | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An application/problem+json response (RFC 9457) with status, title and the optional members.

    ``type`` is always ``about:blank`` (RFC 9457 section 4.2.1: the title then is the status's own phrase);
    errors is this project's extension, one ``{"field", "message"}`` per offending field.
    """
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return Response(dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def validation_errors(errors: Sequence[dict[str, Any]], skip: int = 0) -> list[dict[str, str]]:
    """Pydantic errors as [{field, message}], one per offending field."""
    result = []
    for error in errors:
        loc = list(error.get("loc", ()))
        message = "unknown field" if error.get("type") == "extra_forbidden" else error.get("msg", "invalid")
        # Pydantic adds the model name for root models; it is noise to a client.
        loc = [part for part in loc if part != "root"]
        result.append({"field": field_path(loc, skip), "message": message})
    return result


def install_problem_handlers(app: FastAPI) -> None:
    """Every framework error (404 route, 405, parameter validation) becomes problem+json."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return problem_response(exc.status, exc.title, exc.detail, exc.errors, request.url.path, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for error in exc.errors():
            loc = list(error.get("loc", ()))
            # ('query', 'limit') -> 'limit'; ('path', 'orderId') -> 'orderId'; a parameter is one field, so
            # ('query', 'waitFor', 0) -> 'waitFor' too.
            if len(loc) > 1:
                loc = loc[1:] if loc[0] == "body" else loc[1:2]
            errors.append(validation_errors([{**error, "loc": loc}])[0])
        return problem_response(
            422, "Invalid request", "The request does not match the API contract.", errors, request.url.path
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the methods of the first route on the path; a client needs them all.
            headers["Allow"] = allowed_methods(request)
        return problem_response(
            exc.status_code,
            _TITLES.get(exc.status_code, "Error"),
            detail,
            None,
            request.url.path,
            headers=headers or None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return problem_response(500, "Internal Server Error", "An unexpected error occurred.", None, request.url.path)


def allowed_methods(request: Request) -> str:
    """The Allow header for the request's path: the methods of every route that matches it."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        path_regex = getattr(route, "path_regex", None)
        if path_regex is not None and route.methods and path_regex.match(request.scope["path"]):
            methods |= set(route.methods)
    return ", ".join(sorted(methods))


_TITLES = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Invalid request",
    503: "Service Unavailable",
}
