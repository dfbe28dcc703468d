"""A minimal OTLP/HTTP trace receiver for tests: what a service exports with `OTEL_TRACES_EXPORTER=otlp`.

    with OtlpReceiver() as receiver:          # listens on 127.0.0.1, a free port
        env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.traces_url}
        ...
        spans = receiver.wait_for(lambda spans: ..., timeout=30)

It answers `POST /v1/traces` as the OTLP specification ("OTLP/HTTP") says a collector does: the body is a
binary protobuf `ExportTraceServiceRequest` (opentelemetry-proto), optionally gzip-compressed
(`Content-Encoding: gzip`), and the answer is 200 with an empty `ExportTraceServiceResponse`. JSON-encoded
OTLP is answered 415. Every span received is kept as a ReceivedSpan, with its service's name.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from harness.waiting import poll

# OTLP's Span.SpanKind numbers, by the names the OpenTelemetry API uses (SERVER, CONSUMER, ...).
_KINDS = {value: name.removeprefix("SPAN_KIND_") for name, value in Span.SpanKind.items()}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as exported: ids in lower-case hex (trace 32 digits, span 16; parent_span_id None for a root),
    name, kind (`INTERNAL`, `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER`), service (its resource's service.name),
    attributes (their values as Python str/int/float/bool) and whether its status is an error."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)
    error: bool = False


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (port 0: a free one), serving from start() (or `with`) to stop()."""

    def __init__(self, port: int = 0) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-protobuf":
                    self.send_error(415)
                    return
                if self.headers.get("Content-Encoding", "").strip().lower() == "gzip":
                    body = gzip.decompress(body)
                receiver._receive(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no line per export on stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def traces_url(self) -> str:
        """The URL to export spans to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1/traces"

    def start(self) -> None:
        """Start answering exports (on a thread of its own)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, in the order they arrived."""
        with self._lock:
            return list(self._spans)

    def wait_for(self, condition: Callable[[list[ReceivedSpan]], Any], timeout: float) -> Any:
        """condition(spans())'s first truthy value, polled until timeout seconds have passed; AssertionError
        naming the spans received then."""
        found = poll(lambda: condition(self.spans()), timeout)
        if not found:
            names = sorted({f"{s.service}: {s.name}" for s in self.spans()})
            raise AssertionError(f"timed out after {timeout}s waiting for spans; received {names}")
        return found

    def _receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex() or None,
                            span.name,
                            _KINDS.get(span.kind, "UNSPECIFIED"),
                            service,
                            _attributes(span.attributes),
                            span.status.code == span.status.STATUS_CODE_ERROR,
                        )
                    )
        with self._lock:
            self._spans.extend(received)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind is not None else None
