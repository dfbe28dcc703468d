"""`python -m bench`: run the benchmark scenarios and write report.json, report.md and PNG plots."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from bench.profile import FULL, QUICK, Profile
from bench.report import write_report
from bench.run import Bench
from bench.scenarios import ALL_SCENARIOS, DEFAULT_SCENARIOS
from bench.topology import DEFAULT_RATE, parse_topologies

ROOT = Path(__file__).resolve().parent.parent
SETUP = (
    "One Kafka broker and Schema Registry for the whole run; every scenario gets fresh services on free ports "
    "with their own topics, consumer groups and databases. Mock provider 100-500 ms, 10 % failures. "
    "Everything (services, broker, registry, load generator) shares this machine."
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see bench/README.md)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument(
        "--scenario",
        action="append",
        help=f"scenario(s) to run, repeatable or comma-separated: {', '.join(ALL_SCENARIOS)}, or 'all' "
        f"(default: {', '.join(DEFAULT_SCENARIOS)}; 'long' only when named)",
    )
    parser.add_argument("--quick", action="store_true", help="shortened scenarios (10 s steady) for a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results directory")
    parser.add_argument("--profile", action="store_true", help="py-spy both services during every load phase")
    parser.add_argument(
        "--profile-mode",
        choices=["gil", "wall"],
        default="gil",
        help="gil: where the Python CPU goes; wall: every thread, waits included",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep Kafka data and databases after the run")
    parser.add_argument("--steady-seconds", type=float, help="override the steady scenarios' duration")
    parser.add_argument("--long-orders", type=int, help=f"orders in the long scenario (default {FULL.long_orders:,})")
    parser.add_argument(
        "--long-rate",
        type=float,
        help="open-loop rate of the long scenario (default 0: closed loop, as fast as accepted)",
    )
    parser.add_argument(
        "--topology",
        action="append",
        help="NxMxP[,NxMxP] (repeatable): a steady run on N order-service workers x M fulfillment workers x P "
        "partitions of both topics, on PostgreSQL, each; alone it runs no scenario unless --scenario names some",
    )
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help=f"orders/s of the --topology runs (default {DEFAULT_RATE:g})"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def scenario_names(requested: list[str] | None) -> list[str]:
    """The scenarios to run, in order, from --scenario values (comma-separated, repeatable, 'all').

    Exits with a message for an unknown name.
    """
    if not requested:
        return list(DEFAULT_SCENARIOS)
    names: list[str] = []
    for item in requested:
        for name in filter(None, (part.strip() for part in item.split(","))):
            expanded = list(ALL_SCENARIOS) if name == "all" else [name]
            for one in expanded:
                if one not in ALL_SCENARIOS:
                    raise SystemExit(f"unknown scenario {one!r}; known: {', '.join(ALL_SCENARIOS)}")
                if one not in names:
                    names.append(one)
    return names


def machine_meta(profile: Profile, names: list[str]) -> dict[str, Any]:
    """The run's circumstances for the report: machine, load at start, commit, settings."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        commit += " (uncommitted changes)" if dirty.strip() else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "startedAt": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "profile": profile.name,
        "scenarios": names,
        "cpus": os.cpu_count(),
        "memoryGb": round(psutil.virtual_memory().total / 2**30, 1),
        "loadAverageAtStart": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "setup": SETUP,
        "settings": dict(profile.__dict__),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its report; exit status 1 if a scenario failed to run."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx2 is the copy of httpx inside confluent-kafka's registry client: one line per registry call.
    for noisy in ("httpx", "httpx2", "infra", "kafka.client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        topologies = parse_topologies(args.topology or [])
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    names = [] if topologies and not args.scenario else scenario_names(args.scenario)
    profile = QUICK if args.quick else FULL
    if args.steady_seconds:
        profile = replace(profile, steady_s=args.steady_seconds)
    if args.long_orders:
        profile = replace(profile, long_orders=args.long_orders)
    if args.long_rate is not None:
        profile = replace(profile, long_rate=args.long_rate)
    run_dir = args.out.resolve() / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = machine_meta(profile, names)
    meta["profileMode"] = args.profile_mode if args.profile else None
    meta["topologies"] = [topology.label for topology in topologies]
    with Bench(
        run_dir, profile, profile_services=args.profile, profile_mode=args.profile_mode, keep_data=args.keep_data
    ) as bench:
        results = bench.run(names, topologies, args.rate)
    results["meta"] = meta
    results["meta"]["finishedAt"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    paths = write_report(results, run_dir)
    latest = args.out.resolve() / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(run_dir.name)
    except OSError:
        pass
    print(paths["markdown"].read_text())
    print("results:")
    for label, path in paths.items():
        print(f"  {label:<24} {path}")
    runs = {**results["scenarios"], **{f"topology {k}": v for k, v in results.get("topologies", {}).items()}}
    failed = [n for n, s in runs.items() if isinstance(s, dict) and s.get("error")]
    if failed:
        print(f"scenarios that failed to run: {', '.join(failed)} (see their logs under {run_dir})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
