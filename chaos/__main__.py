"""`python -m chaos [--smoke] [--scenario NAME ...] [--rate 200] [--out chaos/results] [--keep]`

Runs the chaos scenarios one after another, each on a fresh stack, prints the results table and
writes it as Markdown and JSON. Exits 1 when any scenario failed a check.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import tempfile
from pathlib import Path

from chaos import report
from chaos.faults import SCENARIOS
from chaos.profile import FULL, SMOKE, with_rate
from chaos.scenario import run_scenario
from chaos.stacks import StackPool

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and write the tables; exit status 1 if any scenario failed a check."""
    parser = argparse.ArgumentParser(prog="python -m chaos", description="Fault injection under load, reconciled.")
    parser.add_argument("--smoke", action="store_true", help="short faults at a low rate (what `make test` runs)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--rate", type=float, help="orders per second (default: 200, smoke 40)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the tables are written")
    parser.add_argument("--keep", action="store_true", help="keep every scenario's directory (logs, data)")
    args = parser.parse_args(argv)
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "infra"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    # SIGTERM unwinds like Ctrl-C, so every scenario's teardown still stops the processes it started.
    signal.signal(signal.SIGTERM, _interrupt)
    profile = with_rate(SMOKE if args.smoke else FULL, args.rate)
    names = args.scenario or list(SCENARIOS)
    results = []
    # Smoke runs start the next stack while the current scenario drains; full runs keep every
    # measurement free of a JVM starting beside it.
    stack_base = Path(tempfile.mkdtemp(prefix="chaos-stacks-"))
    stacks = StackPool(stack_base) if args.smoke else None
    try:
        for index, name in enumerate(names):
            prepare_next = index + 1 < len(names)
            results.append(
                run_scenario(SCENARIOS[name], profile, keep=args.keep, stacks=stacks, prepare_next=prepare_next)
            )
    finally:
        if stacks is not None:
            stacks.close()
        with contextlib.suppress(OSError):
            stack_base.rmdir()  # only when empty: failed scenarios keep their stacks there
    print()
    print(report.markdown(results, f"Chaos run ({profile.name}, {profile.rate:g} orders/s)"))
    md_path, json_path = report.write(results, profile.name, args.out)
    print(f"written: {md_path}\n         {json_path}")
    return 0 if all(r.passed for r in results) else 1


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
