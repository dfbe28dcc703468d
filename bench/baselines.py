"""Ceilings to compare the services with, measured in the same run on the same machine.

* Framework ceiling: a bare FastAPI app served by uvicorn with the Order Service's server settings;
  POST /api/orders parses the JSON body and answers 201 with it. Whatever the Order Service costs on
  top of this is ours (validation, SQLite, the outbox).
* Messaging ceiling: raw confluent-kafka produce -> consume round trips on the same broker, at a fixed
  rate, with the producer and consumer configured as the services configure theirs. Pickup latency
  can never beat this.

``python -m bench.baselines`` serves the bare app (HOST/PORT from the environment, like the services);
``python -m bench.baselines kafka --bootstrap ... --rate ... --duration ... --result out.json`` runs the
round trips in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from confluent_kafka import Consumer, TopicPartition
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from harness.waiting import poll
from messaging.clients import make_consumer, make_producer
from messaging.settings import KafkaSettings, kafka_settings
from messaging.topics import TopicSpec, ensure_topics

# -- framework ceiling -------------------------------------------------------------------------------


def create_bare_app() -> FastAPI:
    """A FastAPI app whose POST /api/orders only parses the body and answers 201 with it."""
    app = FastAPI(title="bare baseline")

    @app.post("/api/orders", status_code=201)
    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"orderId": str(uuid.uuid4()), "status": "Pending", **body}, status_code=201)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve() -> None:
    """Same uvicorn settings as order_service/__main__.py (loop, http parser, logging, no access log)."""
    uvicorn.run(
        create_bare_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "5050")),
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


# -- messaging ceiling ---------------------------------------------------------------------------------

_STAMP = struct.Struct(">qd")  # sequence number, intended send time (epoch s)
_ROUND_TRIP_RETENTION_MS = 3_600_000  # a round-trip topic is read within the run: an hour is plenty


def kafka_round_trip(
    bootstrap_servers: str | KafkaSettings,
    rate: float,
    duration: float,
    topic: str | None = None,
    payload_bytes: int = 300,
) -> dict[str, Any]:
    """Produce at `rate`/s for `duration` s and consume on the same broker; latency = consumed - intended.

    Producer and consumer come from messaging.clients (acks=all, idempotence, linger 5 ms, lz4;
    fetch.wait.max.ms 50), so only the services' own work separates this from pickup.
    """
    topic = topic or f"bench-roundtrip-{uuid.uuid4().hex[:8]}"
    settings = kafka_settings(bootstrap_servers)
    ensure_topics(settings, [TopicSpec(topic, partitions=1, retention_ms=_ROUND_TRIP_RETENTION_MS)], timeout=15)
    producer = make_producer(settings, "bench-baseline-producer", log_level=4)  # no notice at close
    consumer: Consumer = make_consumer(settings, f"bench-baseline-{uuid.uuid4().hex[:8]}", "bench-baseline-consumer")
    consumer.assign([TopicPartition(topic, 0, 0)])
    padding = b"x" * max(0, payload_bytes - _STAMP.size)
    n = max(1, int(rate * duration))
    latencies = [float("nan")] * n
    received = [0]
    warmup = 20
    warm_seen: set[int] = set()
    stop = threading.Event()

    def consume() -> None:
        # poll() hands over each record as soon as it is fetched; consume(n, timeout) would wait for a
        # full batch of n or the timeout, which is the consumer's choice, not the broker's latency.
        while not stop.is_set():
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                now = time.time()
                seq, intended = _STAMP.unpack_from(message.value())
                if seq >= 0:
                    latencies[seq] = now - intended
                    received[0] += 1
                else:
                    warm_seen.add(seq)

    reader = threading.Thread(target=consume, name="baseline-consumer", daemon=True)
    reader.start()
    # Warm-up: connections up, metadata known, consumer fetching, before anything is measured.
    for i in range(warmup):
        producer.produce(topic, value=_STAMP.pack(-1 - i, time.time()) + padding)
    producer.flush(10)
    poll(lambda: len(warm_seen) >= warmup, 20, interval=0.05)

    started = time.time()
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(topic, value=_STAMP.pack(i, started + i / rate) + padding)
        producer.poll(0)
    producer.flush(30)
    poll(lambda: received[0] >= n, 30, interval=0.05)  # what has not arrived by then counts as lost
    stop.set()
    reader.join(5)
    consumer.close()
    return {
        "topic": topic,
        "rate": rate,
        "duration": duration,
        "sent": n,
        "received": received[0],
        "latencies": latencies,
    }


def main(argv: list[str] | None = None) -> int:
    """Serve the bare app, or run the Kafka round trips (``kafka ...``); the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] == "serve":
        serve()
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    commands = parser.add_subparsers(dest="command", required=True)
    kafka = commands.add_parser("kafka", help="produce -> consume round trips at a fixed rate")
    kafka.add_argument("--bootstrap", required=True)
    kafka.add_argument("--rate", type=float, required=True)
    kafka.add_argument("--duration", type=float, required=True)
    kafka.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    result = kafka_round_trip(args.bootstrap, args.rate, args.duration)
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
