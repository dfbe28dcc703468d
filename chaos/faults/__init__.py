"""The chaos scenarios, one fault per module; their names are what ``--scenario`` accepts."""

from __future__ import annotations

from chaos.faults import (
    breaker_half_open_disk_full,
    broker_down,
    broker_paused,
    disk_full_orders,
    dlq_missing,
    dlq_oversize,
    fulfillment_kill,
    incompatible_schema,
    long_poll_flood,
    order_service_kill,
    poison_records,
    provider_outage,
    rebalance_kill,
    registry_data_loss,
    registry_down,
    silent_connections,
    topic_recreated,
    unpublishable_row,
)
from chaos.scenario import Scenario

SCENARIOS: dict[str, Scenario] = {
    module.SCENARIO.name: module.SCENARIO
    for module in (
        broker_down,
        order_service_kill,
        fulfillment_kill,
        registry_down,
        provider_outage,
        poison_records,
        rebalance_kill,
        broker_paused,
        dlq_oversize,
        dlq_missing,
        unpublishable_row,
        incompatible_schema,
        registry_data_loss,
        topic_recreated,
        silent_connections,
        long_poll_flood,
        disk_full_orders,
        breaker_half_open_disk_full,
    )
}
