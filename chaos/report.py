"""The results table of a chaos run, as Markdown (printed and written) and JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from chaos.scenario import ScenarioResult

COLUMNS = [
    "Scenario",
    "Accepted",
    "Lost",
    "Duplicated",
    "Create non-2xx",
    "Max pickup delay",
    "Stuck while ok",
    "Drain time",
    "Result",
]

LEGEND = """\
- **Accepted**: POSTs answered 2xx (each with its own Idempotency-Key; failed attempts retried with the same key).
- **Lost**: accepted but not Fulfilled/Failed at the drain deadline, or never on `order-events`.
- **Duplicated**: orders with more than one successful provider call (ledger `requests` > 1) or more than
  one tracking number on `fulfillment-events`.
- **Create non-2xx**: POST attempts not answered 2xx (connection errors and timeouts included) over the whole
  run, and how many distinct orders they were for; each was retried with its Idempotency-Key. Only expected
  where the fault is the Order Service itself.
- **Max pickup delay**: OrderCreated timestamp to the picked-up (Pending) FulfillmentStatusChanged timestamp,
  both read from the topics.
- **Stuck while ok**: seconds during which an accepted order was still unfinished 65 s after acceptance (the
  Order Service's stale-order time plus 5 s) while both services' health said `ok` (sampled every second).
- **Drain time** (time to heal): end of the last fault window (faulted part back) until the last order accepted
  by then was terminal; `>deadline` when orders were still open at the drain deadline.
"""


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def row(result: ScenarioResult) -> list[str]:
    """A scenario's row of the results table (COLUMNS)."""
    recon = result.reconciliation
    drain = recon.get("drainSeconds")
    drain_text = ">deadline" if recon and not recon.get("drained") else _seconds(drain)
    return [
        result.scenario,
        str(recon.get("accepted", result.load.get("accepted", 0))),
        str(recon.get("lost", "n/a")),
        str(recon.get("duplicated", "n/a")),
        f"{result.create_non_2xx} ({result.create_non_2xx_orders} orders)" if result.create_non_2xx else "0",
        _seconds(recon.get("maxPickupDelaySeconds")),
        _seconds(result.stuck_while_ok_s),
        drain_text,
        "PASS" if result.passed else "FAIL",
    ]


def markdown(results: list[ScenarioResult], title: str) -> str:
    """The results table with its legend, the failed checks and the faults, as Markdown."""
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(r)) + " |" for r in results]
    lines += ["", LEGEND]
    failed = [r for r in results if not r.passed]
    if failed:
        lines += ["## Failed checks", ""]
        for result in failed:
            for check in result.failed_checks():
                lines.append(f"- `{result.scenario}`: {check.name}" + (f" ({check.detail})" if check.detail else ""))
            lines.append(f"  - logs and data: `{result.workdir}`, stack: `{result.stackdir}`")
        lines.append("")
    lines += ["## Faults", ""]
    for result in results:
        for fault in result.faults:
            length = (fault.ended_at or fault.started_at) - fault.started_at
            evidence = "; ".join(fault.evidence[:3])
            lines.append(
                f"- `{result.scenario}`: {fault.name}, {length:.1f} s" + (f" ({evidence})" if evidence else "")
            )
    return "\n".join(lines) + "\n"


def to_json(results: list[ScenarioResult], profile: str) -> dict[str, Any]:
    """The table and every scenario's full result as JSON."""
    return {
        "profile": profile,
        "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "passed": all(r.passed for r in results),
        "table": [dict(zip(COLUMNS, row(r), strict=True)) for r in results],
        "scenarios": [r.to_json() for r in results],
    }


def write(results: list[ScenarioResult], profile: str, out_dir: Path) -> tuple[Path, Path]:
    """Write <stamp>-<profile>.md and .json into out_dir; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    md_path = out_dir / f"{stamp}-{profile}.md"
    json_path = out_dir / f"{stamp}-{profile}.json"
    md_path.write_text(markdown(results, f"Chaos run ({profile}), {stamp}"))
    json_path.write_text(json.dumps(to_json(results, profile), indent=2, default=str) + "\n")
    return md_path, json_path
