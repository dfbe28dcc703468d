"""Distributed tracing of one service process: its OpenTelemetry TracerProvider and where spans are exported.

    configure_tracing("order-service")     # once, at process start-up (the services' __main__)

A TracerProvider is always installed, so every request and record has a real W3C trace context (ids that are
propagated to Kafka headers and that logs can name) even when nothing is exported. Export follows the standard
`OTEL_*` environment variables (OpenTelemetry specification, "Environment Variable Specification"), with one
deliberate difference: without `OTEL_TRACES_EXPORTER` nothing is exported (the specification's default is
`otlp`) unless an OTLP endpoint is named.

* `OTEL_TRACES_EXPORTER`: `otlp` (OTLP/HTTP protobuf, opentelemetry-exporter-otlp-proto-http), `console`
  (one JSON document per span on stdout, for trying things out), `none`; a comma-separated list. Unset: `otlp`
  when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else `none`. Unknown
  names are logged and skipped.
* The OTLP exporter reads its own `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` (default http://localhost:4318, path
  /v1/traces), `..._HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`; the BatchSpanProcessor reads `OTEL_BSP_*`
  (queue size, batch size, schedule delay: 5 s by default). Only the HTTP protocol is built in: an
  `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` other than `http/protobuf` is logged and HTTP is used.
* `OTEL_TRACES_SAMPLER` / `..._ARG`: read by the SDK (default `parentbased_always_on`: a request or record
  that arrives sampled stays sampled).
* `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the process; the service's own name otherwise.
* `OTEL_SDK_DISABLED=true`: the SDK makes no spans (the provider hands out no-op tracers); incoming trace
  contexts are still passed on unchanged, new ones are not started.
* `OTEL_PROPAGATORS`: what the HTTP edge reads from a request. Unset, the services read W3C Trace Context only
  (observability.trace_context.PROPAGATOR, bounded), not the specification's default `tracecontext,baggage`:
  they use no baggage, and parsing it would only cost time and log lines per request. Set, its names are
  loaded as the API loads them (entry points `opentelemetry_propagator`; `tracecontext` is the bounded W3C
  propagator, `none` reads nothing); an unknown name is logged and skipped. Kafka records carry W3C Trace
  Context whatever it says (observability.trace_context).

Without an exporter no span is recorded at all (observability.id_only_tracer): spans still have real ids, the
ones the SDK would have made, at a quarter of the cost of recording them; no processor, queue or thread runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from observability.id_only_tracer import IdOnlyTracerProvider
from observability.trace_context import PROPAGATOR

log = logging.getLogger(__name__)

_OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The span exporters environ asks for, in order and without `none`: OTEL_TRACES_EXPORTER's names
    (lower-cased, comma-separated), or ["otlp"] when it is unset and an OTLP endpoint variable is set, else []."""
    configured = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not configured:
        return ["otlp"] if any(environ.get(name, "").strip() for name in _OTLP_ENDPOINTS) else []
    names = [name.strip().lower() for name in configured.split(",")]
    return [name for name in dict.fromkeys(names) if name and name != "none"]


def span_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters exporter_names(environ) names, built from environ's OTEL_* settings (the OTLP exporter
    reads them itself from the process environment); unknown names are logged and left out."""
    exporters: list[SpanExporter] = []
    for name in exporter_names(environ):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            protocol = next((environ[v] for v in _PROTOCOLS if environ.get(v, "").strip()), "http/protobuf")
            if protocol.strip() != "http/protobuf":
                log.warning("OTLP protocol %r is not available here; spans are sent as http/protobuf", protocol)
            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            log.warning("unknown trace exporter %r in OTEL_TRACES_EXPORTER; ignored", name)
    return exporters


def tracer_provider(service_name: str, environ: Mapping[str, str] | None = None) -> trace.TracerProvider:
    """The TracerProvider of the service service_name, sampling as OTEL_TRACES_SAMPLER says. environ: the process
    environment by default.

    With exporters (exporter_names): the SDK's, with resource `service.name` (unless OTEL_SERVICE_NAME names it)
    and a BatchSpanProcessor per exporter; it shuts down (flushing its spans) at interpreter exit. Without: an
    IdOnlyTracerProvider (observability.id_only_tracer), whose spans have real ids and record nothing. With
    OTEL_SDK_DISABLED=true: the SDK's, which then makes no spans at all.
    """
    environ = os.environ if environ is None else environ
    exporters = span_exporters(environ)
    disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    if not exporters and not disabled:
        return IdOnlyTracerProvider()
    attributes = {} if environ.get("OTEL_SERVICE_NAME", "").strip() else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def http_propagator(environ: Mapping[str, str]) -> TextMapPropagator:
    """The propagator the HTTP edge reads requests with: PROPAGATOR (W3C Trace Context, bounded) unless
    environ's OTEL_PROPAGATORS names others, then those (see the module docstring)."""
    configured = environ.get("OTEL_PROPAGATORS", "").strip()
    if not configured:
        return PROPAGATOR
    chosen: list[TextMapPropagator] = []
    for name in dict.fromkeys(part.strip().lower() for part in configured.split(",")):
        if name == "none":
            return _NoPropagation()
        if name == "tracecontext":
            chosen.append(PROPAGATOR)
            continue
        found = list(entry_points(group="opentelemetry_propagator", name=name))
        if not found:
            log.warning("unknown propagator %r in OTEL_PROPAGATORS; ignored", name)
            continue
        chosen.append(found[0].load()())
    return chosen[0] if len(chosen) == 1 else CompositePropagator(chosen)


class _NoPropagation(TextMapPropagator):
    """OTEL_PROPAGATORS=none: reads and writes nothing (the API's empty composite would hand back no context)."""

    def extract(self, carrier: Any, context: Context | None = None, getter: Any = None) -> Context:
        return context if context is not None else Context()

    def inject(self, carrier: Any, context: Context | None = None, setter: Any = None) -> None:
        return None

    @property
    def fields(self) -> set[str]:
        return set()


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> trace.TracerProvider:
    """Install tracer_provider(service_name, environ) as the process's global TracerProvider, which every
    `trace.get_tracer` of the code then uses, and http_propagator(environ) as its global propagator (what the
    HTTP edge extracts with); returns the provider. Call once per process, before serving: the OpenTelemetry
    API keeps the first global provider and ignores (with a warning) any later one."""
    environ = os.environ if environ is None else environ
    propagate.set_global_textmap(http_propagator(environ))
    provider = tracer_provider(service_name, environ)
    trace.set_tracer_provider(provider)
    return provider
