"""Idempotency-Key: what a key is bound to, and the record the store keeps of it."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contracts.order_rules import ValidOrder, address_document


def request_fingerprint(order: ValidOrder) -> str:
    """What an Idempotency-Key is bound to: the order's values, not their spelling (10.00 and 10, a trimmed
    and an untrimmed name, a totalAmount sent or left out all describe the same order), the shipping address
    among them. An order without an address has the fingerprint it had before addresses existed. Hex SHA-256."""
    canonical: list[Any] = [
        order.customer_id,
        order.customer_name,
        [[line.product_id, line.product_name, line.quantity, str(line.price)] for line in order.lines],
    ]
    if order.shipping_address is not None:
        canonical.append(address_document(order.shipping_address))
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class IdempotencyRecord:
    """An Idempotency-Key in use: the fingerprint of the request that first used it (request_fingerprint),
    the order it created, and when (UTC)."""

    key: str
    request_hash: str
    order_id: uuid.UUID
    created_at: datetime

    def expired(self, now: datetime, ttl: timedelta) -> bool:
        """True once the key is older than ttl at now: it no longer replays anything."""
        return self.created_at < now - ttl
