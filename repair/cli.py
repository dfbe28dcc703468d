"""`order-repair`: list, show and replay dead-lettered records, and a service's local dead-letter spool.

Settings come from the environment like the services' (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, the
`<TOPIC>_TOPIC` / `<TOPIC>_DLQ_TOPIC` variables). Exit codes: 0 done; 1 a record failed (replay) or was not
found (show); 2 the command line is wrong or the topic or database cannot be read.

The module holds the command line only (about 360 lines: typer declares each command's options in its own
signature, from the shared option types below); what the commands do lives in repair.dead_letters,
repair.spool and outbox.parking.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka import KafkaException
from sqlalchemy import Engine, MetaData, Table, make_url
from sqlalchemy.exc import SQLAlchemyError

from events.settings import EventSettings
from messaging.avro_codec import PoisonRecord, RegistryUnavailable
from observability.logs import configure_logging, order_context
from observability.settings import ObservabilitySettings
from outbox.parking import discard_parked, list_parked, retry_parked
from outbox.table import outbox_table
from persistence.engine import make_engine
from repair.dead_letters import FAILED, REPLAYED, DeadLetter, ReplayReport, Selection, replay
from repair.environment import Environment, KafkaEnvironment, source_topic
from repair.spool import Spool, replay_spool

app = typer.Typer(
    name="order-repair",
    help="Inspect and replay dead-lettered records of the order-processing topics.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: paragraphs rewrapped, [brackets] kept
)
dlq_app = typer.Typer(help="Records in a dead-letter topic (<topic>.dlq).", no_args_is_help=True, rich_markup_mode=None)
spool_app = typer.Typer(
    help="Dead-letter copies a service kept in its own database (table dead_letter_spool) because the dead-letter "
    "topic refused them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(dlq_app, name="dlq")
app.add_typer(spool_app, name="spool")
outbox_app = typer.Typer(
    help="Outbox rows parked because they can never be published as they are.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(outbox_app, name="outbox")

log = logging.getLogger("repair")


class LogSettings(ObservabilitySettings):
    """LOG_LEVEL (default info) and LOG_FORMAT, as the services read them; the tool logs to stderr."""

    log_level: str = "info"


# Characters of an error message a list line shows.
MESSAGE_CHARS = 80
# Bytes of an undecodable value `dlq show` prints in hex.
HEX_PREFIX_BYTES = 64

TopicOption = Annotated[
    str | None,
    typer.Option("--topic", help="Dead-letter topic to read (default: ORDER_EVENTS_DLQ_TOPIC, order-events.dlq)."),
]
ErrorTypeOption = Annotated[
    str | None, typer.Option("--error-type", help="Only records dead-lettered for this error type.")
]
KeyOption = Annotated[str | None, typer.Option("--key", help="Only records with this key (e.g. an orderId).")]
PartitionOption = Annotated[int | None, typer.Option("--partition", min=0, help="Only this partition.")]
FromOption = Annotated[int | None, typer.Option("--from-offset", min=0, help="Only offsets from this one.")]
ToOption = Annotated[int | None, typer.Option("--to-offset", min=0, help="Only offsets up to this one (inclusive).")]
LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="At most this many records.")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per record instead of a table.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Say what would be done; produce and delete nothing.")]
DatabaseOption = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="DATABASE_URL",
        help="The service's database, e.g. sqlite:///var/fulfillment-service.db or postgresql://user@host/db.",
    ),
]


@app.callback()
def main(ctx: typer.Context) -> None:
    """Inspect and replay dead-lettered records. Reads no consumer group's offsets and commits none."""
    if ctx.obj is None:
        ctx.obj = KafkaEnvironment(EventSettings())


def _environment(ctx: typer.Context) -> Environment:
    environment: Environment = ctx.obj
    return environment


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"order-repair: {message}", err=True)
    return typer.Exit(code)


def _read(environment: Environment, topic: str, selection: Selection) -> list[DeadLetter]:
    try:
        copies = environment.read(topic, selection.offsets())
    except (TimeoutError, KafkaException) as exc:
        raise _fail(f"cannot read {topic}: {exc}") from exc
    return selection.select(copies)


def _shorten(text: str | None, chars: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= chars else flat[: chars - 1] + "…"


def _table(copies: Sequence[DeadLetter], spooled: bool) -> list[str]:
    """One line per copy under a header: where it is, key, error type, original coordinates, original size,
    whether truncated, and the error message (for spooled copies: why the topic refused them) shortened."""
    where = ("ID", 6) if spooled else ("PART", 4)
    lines = [
        f"{where[0]:>{where[1]}} {'OFFSET' if not spooled else 'DEAD-LETTER TOPIC':<{8 if not spooled else 24}}  "
        f"{'KEY':<36}  {'ERROR':<24}  {'ORIGINAL':<30}  {'SIZE':>9}  {'TRUNC':<5}  "
        f"{'REASON' if spooled else 'MESSAGE'}"
    ]
    for c in copies:
        first = f"{c.spool_id:>6} {c.topic:<24}" if spooled else f"{c.partition:>4} {c.offset:<8}"
        note = c.spool_reason if spooled else c.error_message
        lines.append(
            f"{first}  {_shorten(c.key_text or '-', 36):<36}  {c.error_type or '?':<24}  {c.original:<30}  "
            f"{c.original_size if c.original_size is not None else '?':>9}  {'yes' if c.truncated else 'no':<5}  "
            f"{_shorten(note, MESSAGE_CHARS)}"
        )
    return lines


def _print_copies(copies: Sequence[DeadLetter], as_json: bool, spooled: bool) -> None:
    if as_json:
        for copy in copies:
            typer.echo(json.dumps(copy.to_json()))
        return
    for line in _table(copies, spooled):
        typer.echo(line)
    typer.echo(f"{len(copies)} record(s)")


def _print_report(report: ReplayReport) -> None:
    """One line per outcome on stdout, then the summary; what was done (replayed, failed) is also logged, one
    line each naming the order (the record's key) for the operator's audit trail."""
    for outcome in report.outcomes:
        key = _shorten(outcome.copy.key_text or "-", 40)
        typer.echo(f"{outcome.action:<12}  {outcome.copy.where}  key={key}  {outcome.detail}")
        if outcome.action in (REPLAYED, FAILED) and outcome.copy.key_text:
            with order_context(outcome.copy.key_text):
                level = logging.INFO if outcome.action == REPLAYED else logging.WARNING
                log.log(level, "dead-lettered record %s", outcome.action, extra={"where": outcome.copy.where})
    typer.echo(report.summary())


# -- dlq ---------------------------------------------------------------------------------------------------


def _dlq_topic(environment: Environment, topic: str | None) -> str:
    """The dead-letter topic a command reads: the one given, else order-events' dead-letter topic."""
    return topic or environment.settings.order_events_dlq_topic


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    topic: TopicOption = None,
    error_type: ErrorTypeOption = None,
    key: KeyOption = None,
    partition: PartitionOption = None,
    from_offset: FromOption = None,
    to_offset: ToOption = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """List dead-lettered records, one line each.

    Each line: partition, offset, key, error type, original topic, partition and offset, original size,
    whether the copy is truncated, and the error message shortened.
    """
    environment = _environment(ctx)
    topic = _dlq_topic(environment, topic)
    selection = Selection(error_type, key, partition, from_offset, to_offset, limit)
    _print_copies(_read(environment, topic, selection), as_json, spooled=False)


@dlq_app.command("show")
def dlq_show(
    ctx: typer.Context,
    partition: Annotated[int, typer.Option("--partition", min=0, help="The record's partition.")],
    offset: Annotated[int, typer.Option("--offset", min=0, help="The record's offset.")],
    topic: TopicOption = None,
) -> None:
    """Show one dead-lettered record as JSON.

    Its headers, and its value decoded as its original topic's event (with the registry); a value that does not
    decode is shown as its size and first bytes in hex, with the reason.
    """
    environment = _environment(ctx)
    topic = _dlq_topic(environment, topic)
    found = _read(environment, topic, Selection(partition=partition, first_offset=offset, last_offset=offset))
    if not found:
        raise _fail(f"no record at {topic}[{partition}]@{offset}", code=1)
    copy = found[0]
    shown: dict[str, Any] = {
        "topic": copy.topic,
        "partition": copy.partition,
        "offset": copy.offset,
        "timestamp": copy.timestamp_ms,
        "key": copy.key_text,
        "headers": {name: value.decode("utf-8", "replace") for name, value in copy.headers},
    }
    try:
        shown["event"] = environment.decoder().decode(copy.original_topic or "", copy.key, copy.value)
    except (PoisonRecord, RegistryUnavailable, LookupError) as exc:
        reason = f"{exc.kind}: {exc.message}" if isinstance(exc, PoisonRecord) else f"{type(exc).__name__}: {exc}"
        if copy.truncated:
            reason = f"the copy is truncated ({len(copy.value or b'')} of {copy.original_size} bytes); {reason}"
        value = copy.value or b""
        shown["event"] = None
        shown["undecodable"] = {
            "reason": reason,
            "valueBytes": len(value),
            "valueHexPrefix": value[:HEX_PREFIX_BYTES].hex(),
        }
    typer.echo(json.dumps(shown, indent=2))


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    topic: TopicOption = None,
    error_type: ErrorTypeOption = None,
    key: KeyOption = None,
    partition: PartitionOption = None,
    from_offset: FromOption = None,
    to_offset: ToOption = None,
    limit: LimitOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Replay dead-lettered records to their original topic.

    Produces each selected record's key and value, unchanged, to its original topic (header
    __connect.errors.topic) and waits for the broker to confirm it. Never replayed: truncated copies, records
    from another topic than the one that dead-letters here, and records that still do not decode. Exit code 1
    when any record failed.
    """
    environment = _environment(ctx)
    topic = _dlq_topic(environment, topic)
    selection = Selection(error_type, key, partition, from_offset, to_offset, limit)
    copies = _read(environment, topic, selection)
    report = replay(
        copies,
        source_topic(environment.settings, topic),
        environment.decoder(),
        None if dry_run else environment.sender(),
    )
    _print_report(report)
    if report.failed:
        raise typer.Exit(1)


# -- spool -------------------------------------------------------------------------------------------------


def _spooled(spool: Spool, database_url: str, selection: Selection) -> list[DeadLetter]:
    try:
        return selection.select(spool.copies())
    except SQLAlchemyError as exc:
        raise _fail(f"cannot read the spool of {database_url}: {exc}") from exc


@spool_app.command("list")
def spool_list(
    ctx: typer.Context,
    database_url: DatabaseOption,
    error_type: ErrorTypeOption = None,
    key: KeyOption = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the copies a service spooled, one line each.

    Each line: row id, the dead-letter topic it is for, key, error type, original coordinates and size,
    whether truncated, and why the topic refused it.
    """
    spool = _environment(ctx).spool(database_url)
    _print_copies(_spooled(spool, database_url, Selection(error_type, key, limit=limit)), as_json, spooled=True)


@spool_app.command("replay")
def spool_replay(
    ctx: typer.Context,
    database_url: DatabaseOption,
    error_type: ErrorTypeOption = None,
    key: KeyOption = None,
    limit: LimitOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Send spooled copies on to their dead-letter topic.

    Publishes each spooled copy (key, value, dead-letter headers) to its dead-letter topic and deletes its row
    once the broker confirmed it; rows of copies that failed stay. Exit code 1 when any copy failed.
    """
    environment = _environment(ctx)
    spool = environment.spool(database_url)
    copies = _spooled(spool, database_url, Selection(error_type, key, limit=limit))
    report = replay_spool(copies, spool, None if dry_run else environment.sender())
    _print_report(report)
    if report.failed:
        raise typer.Exit(1)


def _outbox(database_url: str) -> tuple[Engine, Table]:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        # Opening it would create an empty database file where the operator mistyped a path.
        raise _fail(f"no database file at {url.database}")
    return make_engine(database_url), outbox_table(MetaData())


@outbox_app.command("list")
def outbox_list(database_url: DatabaseOption, limit: LimitOption = None, as_json: JsonOption = False) -> None:
    """List the parked outbox rows of a service's database, oldest first.

    Each line: row id, topic, key, event type, failed attempts, the rows of the same key it holds back, and the
    failure that parked it.
    """
    engine, table = _outbox(database_url)
    try:
        rows = list_parked(engine, table, limit=limit or 1000)
    except SQLAlchemyError as exc:
        raise _fail(f"cannot read the outbox of {database_url}: {exc}") from exc
    for row in rows:
        if as_json:
            typer.echo(json.dumps({**dataclasses.asdict(row), "payload": json.loads(row.payload)}))
        else:
            typer.echo(
                f"{row.id}\t{row.topic}\t{row.key}\t{row.event_type}\tattempts={row.attempts}"
                f"\tbehind={row.rows_behind}\t{_shorten(row.failure_reason, 120)}"
            )
    if not as_json:
        typer.echo(f"{len(rows)} parked")


@outbox_app.command("retry")
def outbox_retry(database_url: DatabaseOption, row_id: Annotated[int, typer.Option("--id")]) -> None:
    """Unpark a row once its cause is fixed: the relay publishes it, then the rows of its key behind it.
    Exit code 1 when no parked row has that id."""
    engine, table = _outbox(database_url)
    if not retry_parked(engine, table, row_id):
        typer.echo(f"no parked row {row_id}")
        raise typer.Exit(1)
    log.info("outbox row %d unparked", row_id)
    typer.echo(f"row {row_id} unparked")


@outbox_app.command("discard")
def outbox_discard(database_url: DatabaseOption, row_id: Annotated[int, typer.Option("--id")]) -> None:
    """Delete a parked row for good (its event is never published; the rows behind it go on). Prints the row as
    JSON for the record. Exit code 1 when no parked row has that id."""
    engine, table = _outbox(database_url)
    row = discard_parked(engine, table, row_id)
    if row is None:
        typer.echo(f"no parked row {row_id}")
        raise typer.Exit(1)
    with order_context(row.key):
        log.info("outbox row %d discarded", row_id, extra={"eventType": row.event_type})
    typer.echo(json.dumps(dataclasses.asdict(row)))


def run() -> None:
    """The `order-repair` console script: logs to stderr at LOG_LEVEL in LOG_FORMAT (observability.logs), its
    output on stdout."""
    settings = LogSettings()
    configure_logging(settings.log_level, settings.log_format, service="order-repair")
    app(prog_name="order-repair")
