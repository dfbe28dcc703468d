"""The health endpoint of the Fulfillment Service (contract: schemas/openapi/fulfillment-service.yaml,
operation fulfillmentHealth)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from contract_models.fulfillment_api import Health
from fulfillment_service.resilience import CircuitBreaker
from httpapi.health import dependency_report, overall_status
from httpapi.json_body import DecimalJSONResponse
from httpapi.pipeline_health import outbox_report, schema_report
from messaging.avro_codec import RegistrationCheck
from messaging.consumer.runtime import ConsumerRuntime
from messaging.dead_letter import DeadLetterCounts
from messaging.group_progress import GroupProgress, ProgressReport
from messaging.health import CachedProbe, refused
from outbox.parking import OutboxHealth


def health_router(
    engine: Engine,
    probes: Mapping[str, CachedProbe],
    breaker: CircuitBreaker,
    intake: ConsumerRuntime,
    progress: GroupProgress,
    outbox: Callable[[], OutboxHealth] | None = None,
    schema_checks: Callable[[], list[RegistrationCheck]] = list,
) -> APIRouter:
    """GET /api/fulfillment/health: the database (engine) and each probe by name, the breaker's state, the
    intake consumer's in-flight orders and its dead letters (published since start, held in the local spool),
    and the intake group's lag and progress read from the broker (progress: at most a second old, independent
    of the consumer thread). 503 when the database is down or Kafka or the registry refuses this service's
    credentials or certificate (the dependency's detail names the setting to check); degraded while the
    breaker is not closed, a probe fails, or the group is stalled (a partition with records waiting whose
    committed offset has not moved for CONSUMER_STALL_SECONDS); reasons says why.

    The status events this service writes: its outbox (outbox(): blocking, asked only while the database
    works: backlog, oldest unpublished age, parked rows) and the registry's last word on the event schema
    (schema_checks()). Degraded as well while events are parked, the oldest unpublished one is older than
    STALLED_OUTBOX_SECONDS, or the registry refuses the schema (status events cannot be published then, so
    orders ship but their status stays behind)."""
    router = APIRouter()

    @router.get(
        "/api/fulfillment/health",
        response_model=None,
        operation_id="fulfillmentHealth",
        responses={200: {"model": Health}, 503: {"model": Health}},
    )
    async def health() -> DecimalJSONResponse:
        deps = await run_in_threadpool(dependency_report, engine, dict(probes))
        dead_letters = intake.dead_letters
        if deps["database"]["status"] == "ok":
            counts = await run_in_threadpool(dead_letters.counts)
        else:  # the spool is in the database: not asked while it fails
            counts = DeadLetterCounts(dead_letters.published, None)
        report = await run_in_threadpool(progress.report)
        assigned = sorted(partition for _topic, partition in intake.assignment)
        reasons = [_dependency_reason(name, dep) for name, dep in deps.items() if dep["status"] != "ok"]
        schema = schema_report(schema_checks())
        pipeline: dict[str, Any] = {"outboxBacklog": None, "eventSchema": schema}
        pipeline_reasons = []
        if outbox is not None and deps["database"]["status"] == "ok":
            outbox_state = outbox_report(await run_in_threadpool(outbox))
            pipeline.update(outbox_state.body)
            pipeline_reasons.append(outbox_state.reason)
        if schema["status"] == "refused":
            pipeline_reasons.append(f"the registry refuses the event schema: {schema['detail']}")
        stuck = [reason for reason in pipeline_reasons if reason]
        reasons += stuck
        if breaker.state != "closed":
            reasons.append(f"the shipping provider's circuit breaker is {breaker.state.value}")
        if report.reason:
            reasons.append(report.reason)
        status = overall_status(deps, degraded=breaker.state != "closed" or bool(report.stalled) or bool(stuck))
        if refused(probes):
            status = "down"
        body = {
            "status": status,
            "dependencies": deps,
            "breaker": breaker.state.value,
            "consumerLag": _assigned_lag(report, assigned),
            "inFlight": intake.in_flight,
            "deadLetters": counts.to_json(),
            "consumer": _consumer(report, assigned),
            **pipeline,
            "reasons": reasons,
        }
        return DecimalJSONResponse(body, status_code=503 if status == "down" else 200)

    return router


def _dependency_reason(name: str, dep: dict[str, Any]) -> str:
    detail = dep.get("detail")
    return f"{name} is {dep['status']}" + (f": {detail}" if detail else "")


def _assigned_lag(report: ProgressReport, assigned: list[int]) -> int | None:
    """This instance's share of the lag: None without partitions or figures."""
    if not assigned or report.lag is None:
        return None
    return sum(report.lag.get(partition, 0) for partition in assigned)


def _consumer(report: ProgressReport, assigned: list[int]) -> dict[str, Any]:
    """The ConsumerProgress body of the contract."""
    return {
        "topic": report.topic,
        "group": report.group,
        "lag": None if report.lag is None else {str(p): n for p, n in report.lag.items()},
        "lagTotal": report.total,
        "assignedPartitions": assigned,
        "lastProgressAgeSeconds": report.last_progress_age_s,
        "stallSeconds": report.stall_seconds,
        "stalled": bool(report.stalled),
        "stalledPartitions": report.stalled,
        "readAgeSeconds": report.read_age_s,
        "error": report.error,
    }
