"""On the real registry: OrderCreated's subject moved from `<topic>-value` (TopicNameStrategy) to
`<topic>-orderprocessing.events.OrderCreated` (TopicRecordNameStrategy). The first write carries the old
subject's versions over, in order, before the current schema; the old subject stays for released producers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract_models.events import ORDER_CREATED_SCHEMA
from events.codecs import event_codec_for
from events.topology import COMPATIBILITY, ORDER_EVENTS
from messaging.registry import registry_client
from tests.sample_events import order_created

pytestmark = pytest.mark.integration

HISTORY = Path(__file__).resolve().parents[2] / "schemas" / "avro" / "history"
SCHEMA_JSON = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def _versions(http: httpx.Client, subject: str) -> list[dict[str, Any]]:
    numbers = http.get(f"/subjects/{subject}/versions")
    if numbers.status_code == 404:
        return []
    numbers.raise_for_status()
    return [http.get(f"/subjects/{subject}/versions/{n}").json() for n in numbers.json()]


def test_the_first_write_carries_the_old_subjects_history_over(stack: Any) -> None:
    topic = f"migrate-{uuid.uuid4().hex[:8]}"
    old, new = ORDER_EVENTS.history_subject(topic), ORDER_EVENTS.subject(topic)
    assert (old, new) == (f"{topic}-value", f"{topic}-orderprocessing.events.OrderCreated")
    released = (HISTORY / "OrderCreated.v1.avsc").read_text()
    with httpx.Client(base_url=stack.registry_url, headers=SCHEMA_JSON, timeout=10) as http:
        # What a released v1 producer left: the released schema under the old subject, at the level of then.
        http.put(f"/config/{old}", json={"compatibility": "BACKWARD_TRANSITIVE"}).raise_for_status()
        http.post(f"/subjects/{old}/versions", json={"schema": released}).raise_for_status()
        old_before = _versions(http, old)

        event_codec_for(registry_client(stack.registry_url), ORDER_EVENTS, topic).encode(order_created())
        carried = _versions(http, new)
        # Another replica (or a restart) writing again carries nothing over twice.
        event_codec_for(registry_client(stack.registry_url), ORDER_EVENTS, topic).encode(order_created())
        assert _versions(http, new) == carried

        texts = [json.loads(v["schema"]) for v in carried]
        assert texts[: len(old_before)] == [json.loads(v["schema"]) for v in old_before]
        assert [v["id"] for v in carried[: len(old_before)]] == [v["id"] for v in old_before]  # same ids
        assert texts[-1] == json.loads(ORDER_CREATED_SCHEMA)
        assert _versions(http, old) == old_before  # the old subject is kept as it was
        level = http.get(f"/config/{new}").json()
        assert (level.get("compatibilityLevel") or level.get("compatibility")) == COMPATIBILITY  # FULL_TRANSITIVE


def test_a_topic_without_history_starts_its_subject_with_the_current_schema(stack: Any) -> None:
    topic = f"fresh-{uuid.uuid4().hex[:8]}"
    event_codec_for(registry_client(stack.registry_url), ORDER_EVENTS, topic).encode(order_created())
    with httpx.Client(base_url=stack.registry_url, headers=SCHEMA_JSON, timeout=10) as http:
        assert [json.loads(v["schema"]) for v in _versions(http, ORDER_EVENTS.subject(topic))] == [
            json.loads(ORDER_CREATED_SCHEMA)
        ]
        assert _versions(http, f"{topic}-value") == []
