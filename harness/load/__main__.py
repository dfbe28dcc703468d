"""`python -m harness.load`: the load generator on its own, or as the child process LoadProcess starts.

``--url --rate --duration ...`` describe the load; the harness passes ``--spec`` (a LoadSpec as JSON) and
``--result`` (where the pickled LoadResult goes). A one-line JSON summary is printed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import sys
from pathlib import Path

from harness.load.generator import run_in_this_process
from harness.load.records import LoadSpec
from harness.percentiles import latency_summary


def main(argv: list[str] | None = None) -> int:
    """Run one load as the arguments describe; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m harness.load", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", help="LoadSpec as JSON (what the harness passes)")
    parser.add_argument("--url", default="http://127.0.0.1:5001")
    parser.add_argument("--mode", choices=["open", "closed"], default="open")
    parser.add_argument("--rate", type=float, default=100.0, help="arrivals per second; 0 = burst of --count")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--count", type=int)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--items", type=int, default=1)
    parser.add_argument("--result", type=Path, help="write the pickled LoadResult here")
    args = parser.parse_args(argv)
    if args.spec:
        spec = LoadSpec(**json.loads(args.spec))
    else:
        spec = LoadSpec(
            url=args.url,
            mode=args.mode,
            rate=args.rate or None,
            duration=args.duration,
            count=args.count,
            connections=args.connections,
            items=args.items,
        )
    result = run_in_this_process(spec)
    if args.result:
        tmp = args.result.with_suffix(".tmp")
        with tmp.open("wb") as handle:
            pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, args.result)
    with contextlib.suppress(BrokenPipeError):
        summary = {
            "sent": result.sent,
            "ok": result.ok,
            "statuses": result.status_counts(),
            "elapsed_s": round(result.elapsed, 3),
            "throughput_per_s": round(result.ok / result.elapsed, 1) if result.elapsed else None,
            "latency_ms": latency_summary(result.ok_latencies()),
            "generator_cpu_percent": round(result.cpu_percent(), 1),
        }
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
