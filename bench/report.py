"""Turns a run's results into report.json (machines), report.md (people) and one PNG per scenario.

The targets are evaluated here, against the figures of this run only, and printed as met / missed.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from bench.scenarios import observability_cost
from bench.topology import markdown_section

# Order of the processes in tables and plots.
PROCESSES = ("order-service", "fulfillment-service", "kafka", "registry", "loadgen", "harness")


# -- ratios and targets ------------------------------------------------------------------------------------


def _get(data: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(data, dict):
            data = data.get(key)  # type: ignore[call-overload]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
        if data is None:
            return None
    return data


def _ratio(value: Any, base: Any) -> float | None:
    if not isinstance(value, (int, float)) or not isinstance(base, (int, float)) or base <= 0:
        return None
    return round(value / base, 2)


def add_ratios(results: dict[str, Any]) -> None:
    """Each steady scenario's figures as multiples of the ceilings measured at the same rate."""
    baselines = results.get("baselines") or {}
    for scenario in (results.get("scenarios") or {}).values():
        if scenario.get("kind") not in ("steady", "capacity"):
            continue
        rate = _get(scenario, "spec", "rate")
        http = _get(baselines, "http", "capacity" if scenario["kind"] == "capacity" else f"{rate:g}")
        kafka = _get(baselines, "kafka", f"{rate:g}") if rate else None
        ratios: dict[str, Any] = {}
        for q in ("p50", "p95", "p99"):
            ratios[f"createVsBare{q.upper()}"] = _ratio(
                _get(scenario, "load", "latencyMs", q), _get(http, "latencyMs", q)
            )
            ratios[f"pickupVsKafka{q.upper()}"] = _ratio(
                _get(scenario, "events", "pickupMs", q), _get(kafka, "latencyMs", q)
            )
        ratios["throughputVsBare"] = _ratio(
            _get(scenario, "load", "achievedPerSecond"), _get(http, "achievedPerSecond")
        )
        ratios["cpuPerOrderVsBare"] = _ratio(
            _get(scenario, "processes", "order-service", "cpuMsPerOrder"), _get(http, "serverCpuMsPerRequest")
        )
        scenario["ratios"] = {k: v for k, v in ratios.items() if v is not None}


def _target(name: str, target: str, value: str, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"target": name, "goal": target, "measured": value, "met": met, "note": note}


def _fmt(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}{unit}"
    return f"{value}{unit}"


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each met (True), missed (False) or not measured in this run (None)."""
    scenarios = results.get("scenarios") or {}
    baselines = results.get("baselines") or {}
    quick = results.get("meta", {}).get("profile") == "quick"
    note = "quick run: shortened, indicative only" if quick else ""
    out = []

    s1000 = scenarios.get("steady-1000") or {}
    if "load" in s1000:
        arrivals = _get(s1000, "load", "arrivals") or 0
        ok = _get(s1000, "load", "ok") or 0
        achieved = _get(s1000, "load", "achievedPerSecond") or 0
        terminal = _get(s1000, "events", "terminal") or 0
        bounded = _get(s1000, "lag", "verdict", "bounded")
        sustained = (
            arrivals > 0
            and ok == arrivals
            and achieved >= 980
            and terminal >= ok
            and bool(_get(s1000, "events", "drained"))
        )
        value = (
            f"{achieved:,.0f}/s accepted ({ok:,} of {arrivals:,}), {terminal:,} terminal, "
            f"lag {_get(s1000, 'lag', 'verdict', 'reason')}"
        )
        out.append(
            _target("sustained 1,000 orders/s end to end", "bounded lag", value, sustained and bool(bounded), note)
        )
        p95 = _get(s1000, "load", "latencyMs", "p95")
        out.append(
            _target("create P95 at 1,000/s", "≤ 50 ms", _fmt(p95, " ms", 1), p95 is not None and p95 <= 50, note)
        )
        pickup95 = _get(s1000, "events", "pickupMs", "p95")
        out.append(_target("pickup P95 at 1,000/s", "≤ 250 ms", _fmt(pickup95, " ms", 1), _le(pickup95, 250), note))
        kafka95 = _get(baselines, "kafka", "1000", "latencyMs", "p95")
        ratio = _ratio(pickup95, kafka95)
        out.append(
            _target(
                "pickup P95 vs raw produce→consume P95 at 1,000/s",
                "≤ 3x",
                f"{_fmt(ratio, 'x', 1)} ({_fmt(pickup95, ' ms', 1)} vs {_fmt(kafka95, ' ms', 1)})",
                _le(ratio, 3.0),
                note,
            )
        )
    else:
        out.append(_target("sustained 1,000 orders/s end to end", "bounded lag", "not run", None))

    capacity = scenarios.get("capacity") or {}
    ours = _get(capacity, "load", "achievedPerSecond")
    bare = _get(baselines, "http", "capacity", "achievedPerSecond")
    share = _ratio(ours, bare)
    out.append(
        _target(
            "create throughput vs bare FastAPI",
            "≥ 50 %",
            f"{_fmt(share * 100 if share is not None else None, ' %')} ({_fmt(ours, '/s')} vs {_fmt(bare, '/s')})"
            if ours is not None
            else "not run",
            share >= 0.5 if share is not None else None,
            note,
        )
    )

    burst = scenarios.get("burst") or {}
    if "load" in burst:
        arrivals = _get(burst, "load", "arrivals") or 0
        ok = _get(burst, "load", "ok") or 0
        p95 = _get(burst, "load", "latencyMs", "p95")
        within = _get(burst, "events", "pickedWithin5s")
        picked = _get(burst, "events", "pickedUp") or 0
        # Orders never picked up count against the 5 s share, not just the ones picked up late.
        share5 = within * picked / ok if within is not None and ok else None
        label = f"burst of {arrivals:,}"
        out.append(_target(f"{label}: every POST answered", "all 2xx", f"{ok:,} of {arrivals:,}", ok == arrivals, note))
        out.append(
            _target(f"{label}: create P95", "< 500 ms", _fmt(p95, " ms", 1), p95 is not None and p95 < 500, note)
        )
        out.append(
            _target(
                f"{label}: picked up within 5 s of acceptance",
                "≥ 99 %",
                _fmt(share5 * 100 if share5 is not None else None, " %", 2),
                share5 is not None and share5 >= 0.99,
                note,
            )
        )
    else:
        out.append(_target("burst of 10,000", "answered, P95 < 500 ms, 99 % picked up ≤ 5 s", "not run", None))

    long = scenarios.get("long") or {}
    if "processes" in long:
        for service in ("order-service", "fulfillment-service"):
            rss = _get(long, "processes", service, "rss_mb_end")
            orders = _get(long, "load", "ok") or 0
            out.append(
                _target(
                    f"RSS of {service} after {orders:,} orders",
                    "≤ 200 MB",
                    _fmt(rss, " MB"),
                    (rss is not None and rss <= 200) if orders >= 1_000_000 else None,
                    "" if orders >= 1_000_000 else "fewer than 1,000,000 orders: not the target's run",
                )
            )
    else:
        seen = {
            service: max(
                (_get(s, "processes", service, "rss_mb_peak") or 0 for s in scenarios.values() if isinstance(s, dict)),
                default=0,
            )
            for service in ("order-service", "fulfillment-service")
        }
        out.append(
            _target(
                "RSS of each service after 1,000,000 orders",
                "≤ 200 MB",
                "not run (`--scenario long`)"
                + (
                    "; peak in this run: " + ", ".join(f"{k} {_fmt(v, ' MB')}" for k, v in seen.items())
                    if any(seen.values())
                    else ""
                ),
                None,
            )
        )
    out.append(_observability_target(scenarios, note))
    return out


def _observability_target(scenarios: dict[str, Any], note: str) -> dict[str, Any]:
    """Metrics may cost at most 5 % of the services' CPU per order (both services, vs metrics off)."""
    over = _get(scenarios, "observability-cost", "overheadPercent", "metrics", "total")
    if over is None:
        return _target("CPU cost of metrics per order", "< 5 %", "not run (`--scenario observability-cost`)", None)
    return _target("CPU cost of metrics per order", "< 5 %", f"{over:+.1f} %", over < 5, note)


def _le(value: Any, limit: float) -> bool | None:
    return None if value is None else value <= limit


# -- profiles -----------------------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")


def _frame_label(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


# Frames every stack passes through (thread start, runpy, the server loop): not worth listing as inclusive.
_PLUMBING = (
    "(threading.py)",
    "(<frozen runpy>)",
    "(asyncio/runners.py)",
    "(asyncio/base_events.py)",
    "(asyncio/events.py)",
    "(uvicorn/",
    "__main__.py)",
    "(concurrent/futures/thread.py)",
)


def _thread_role(frames: list[str]) -> str:
    """Which thread a stack belongs to: the first frame below the thread/runpy start-up plumbing."""
    if frames and frames[0].startswith("Thread._bootstrap"):
        for frame in frames:
            if "(threading.py)" not in frame:
                if "(concurrent/futures/thread.py)" in frame or "(anyio/" in frame:
                    return "worker threads (run_in_threadpool / executors)"
                return frame
        return frames[-1]
    return "main thread (event loop)"


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by own and by inclusive samples, and samples per thread, from py-spy collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_label(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        threads[_thread_role(frames)] += count
        for frame in set(frames):
            if not any(marker in frame for marker in _PLUMBING):
                inclusive[frame] += count

    def share(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, round(100 * c / total, 1)) for name, c in counter.most_common(n)] if total else []

    return {
        "samples": total,
        "threads": share(threads, 8),
        "ownTop": share(own, top),
        "inclusiveTop": share(inclusive, top),
    }


def add_profiles(results: dict[str, Any]) -> None:
    """Add a summary of each scenario's py-spy profiles (top frames) to results, in place."""
    for scenario in (results.get("scenarios") or {}).values():
        files = scenario.get("profile") if isinstance(scenario, dict) else None
        if files:
            scenario["profileSummary"] = {
                name: summarize_profile(Path(file)) for name, file in files.items() if Path(file).exists()
            }


# -- markdown -----------------------------------------------------------------------------------------------


def _ms(summary: Any, key: str) -> str:
    return _fmt(_get(summary, key), "", 1)


def markdown(results: dict[str, Any], pngs: dict[str, str]) -> str:
    """The report for people: targets, ceilings, scenarios, resources, ramp steps; pngs by scenario."""
    meta = results.get("meta", {})
    scenarios = results.get("scenarios") or {}
    baselines = results.get("baselines") or {}
    lines = [f"# Benchmark {meta.get('startedAt', '')} ({meta.get('profile', '')})", ""]
    lines += [
        f"Machine: {meta.get('cpus')} CPUs, {meta.get('memoryGb')} GB; load average at start "
        f"{meta.get('loadAverageAtStart')}; Python {meta.get('python')}; commit {meta.get('commit')}.",
        "",
        meta.get("setup", ""),
        "",
        "## Targets",
        "",
        "| target | goal | measured | result |",
        "| --- | --- | --- | --- |",
    ]
    for target in results.get("targets", []):
        verdict = {True: "**met**", False: "**missed**", None: "not measured"}[target["met"]]
        note = f" ({target['note']})" if target.get("note") else ""
        lines.append(f"| {target['target']} | {target['goal']} | {target['measured']} | {verdict}{note} |")

    lines += ["", "## Ceilings measured in this run", ""]
    if baselines.get("error"):
        lines.append(f"Baselines failed: `{baselines['error']}`")
    http = baselines.get("http") or {}
    kafka = baselines.get("kafka") or {}
    if http or kafka:
        lines += [
            "Bare FastAPI/uvicorn (same server settings) answering POST /api/orders with the parsed body, and raw "
            "confluent-kafka produce→consume round trips on the same broker, at the steady scenarios' rates. "
            "Latencies in ms.",
            "",
            "| rate /s | bare P50 | bare P95 | bare P99 | bare CPU ms/req | others' CPU | Kafka P50 | Kafka P95 "
            "| Kafka P99 |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for rate in sorted({k for k in http if k not in ("capacity", "warmup")} | set(kafka), key=float):
            h = _get(http, rate, "latencyMs")
            k = _get(kafka, rate, "latencyMs")
            cpu = _fmt(_get(http, rate, "serverCpuMsPerRequest"), "", 3)
            others = _fmt(_get(http, rate, "othersCpuPercent"), " %")
            lines.append(
                f"| {rate} | {_ms(h, 'p50')} | {_ms(h, 'p95')} | {_ms(h, 'p99')} | {cpu} | {others} | "
                f"{_ms(k, 'p50')} | {_ms(k, 'p95')} | {_ms(k, 'p99')} |"
            )
        if "capacity" in http:
            cap = http["capacity"]
            lines += [
                "",
                f"Bare FastAPI capacity (closed loop, {_get(cap, 'generator', 'connectionsOpened')} connections): "
                f"**{_fmt(cap.get('achievedPerSecond'), '/s')}**, P50 {_ms(cap.get('latencyMs'), 'p50')} ms, "
                f"P95 {_ms(cap.get('latencyMs'), 'p95')} ms; server CPU "
                f"{_fmt(cap.get('serverCpuMsPerRequest'), ' ms', 3)} per request.",
            ]

    lines += [
        "",
        "## Scenarios",
        "",
        "Create latency is measured from each request's intended send time (open loop). Pickup: OrderCreated "
        "timestamp → Pending FulfillmentStatusChanged timestamp; terminal: OrderCreated → Shipped/Failed. "
        "Backlog = outbox rows + records of order-events not yet committed by the fulfillment service.",
        "",
        "| scenario | offered | accepted /s | errors | create P50 | P95 | P99 | max | xbare P95 | pickup P50 | P95 "
        "| P99 | xKafka P95 | terminal P50 | P95 | P99 | max backlog | lag | drain s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- |",
    ]
    for name, s in scenarios.items():
        if not isinstance(s, dict):
            continue
        if s.get("error"):
            lines.append(f"| {name} | failed: `{s['error'][:200]}` |" + " |" * 17)
            continue
        if s.get("kind") in ("ramp", "observability-cost"):
            continue
        load = s.get("load", {})
        spec = s.get("spec", {})
        offered = (
            f"{spec.get('rate'):g}/s x {spec.get('duration'):g} s"
            if spec.get("mode") == "open" and spec.get("rate")
            else (f"{load.get('arrivals'):,} at once" if spec.get("mode") == "open" else "closed loop")
        )
        errors = sum(v for k, v in (load.get("statuses") or {}).items() if not k.startswith("2"))
        lat = load.get("latencyMs")
        pick = _get(s, "events", "pickupMs")
        term = _get(s, "events", "terminalMs")
        verdict = _get(s, "lag", "verdict")
        lag = "-" if not verdict else ("bounded" if verdict["bounded"] else f"unbounded: {verdict['reason']}")
        lines.append(
            f"| {name} | {offered} | {_fmt(load.get('achievedPerSecond'))} | {errors:,} | {_ms(lat, 'p50')} | "
            f"{_ms(lat, 'p95')} | {_ms(lat, 'p99')} | {_ms(lat, 'max')} | "
            f"{_fmt(_get(s, 'ratios', 'createVsBareP95'), 'x', 1)} | {_ms(pick, 'p50')} | {_ms(pick, 'p95')} | "
            f"{_ms(pick, 'p99')} | {_fmt(_get(s, 'ratios', 'pickupVsKafkaP95'), 'x', 1)} | {_ms(term, 'p50')} | "
            f"{_ms(term, 'p95')} | {_ms(term, 'p99')} | {_fmt(_get(s, 'lag', 'maxBacklog'))} | {lag} | "
            f"{_fmt(_get(s, 'events', 'drainSeconds'), '', 1)} |"
        )

    lines += [
        "",
        "### Resources",
        "",
        "RSS at the end / peak (MB) and mean CPU (% of one core) while sampled. CPU ms per order: the service's "
        "CPU from the start of the load until every order was terminal, per accepted order. The load generator's "
        "CPU is its own measurement of the load phase. Machine busy over the same window, all cores (200 % = "
        "both); others = what processes outside this benchmark used meanwhile.",
        "",
        "| scenario | "
        + " | ".join(PROCESSES)
        + " | order-service CPU ms/order | fulfillment CPU ms/order | machine busy / others |",
        "| --- | " + " | ".join("---" for _ in PROCESSES) + " | --- | --- | --- |",
    ]
    for name, s in scenarios.items():
        procs = s.get("processes") if isinstance(s, dict) else None
        if not procs:
            continue
        cells = []
        for proc in PROCESSES:
            p = procs.get(proc)
            if proc == "loadgen" and s.get("load"):
                gen = s["load"]["generator"]
                cells.append(f"{_fmt(p and p.get('rss_mb_peak'))} MB, {_fmt(gen['cpuPercent'], ' %')}")
            elif p:
                rss = f"{_fmt(p.get('rss_mb_end'))}/{_fmt(p.get('rss_mb_peak'))} MB"
                cells.append(f"{rss}, {_fmt(p.get('cpu_percent_mean'), ' %')}")
            else:
                cells.append("-")
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {_fmt(_get(procs, 'order-service', 'cpuMsPerOrder'), '', 2)}"
            + f" | {_fmt(_get(procs, 'fulfillment-service', 'cpuMsPerOrder'), '', 2)}"
            + f" | {_fmt(_get(procs, 'machine', 'cpuPercentDuringRun'), ' %')}"
            + f" / {_fmt(_get(procs, 'machine', 'othersCpuPercentDuringRun'), ' %')} |"
        )

    lines += markdown_section(results.get("topologies") or {})

    ramp = scenarios.get("ramp")
    if isinstance(ramp, dict) and ramp.get("steps"):
        lines += [
            "",
            f"### Ramp ({ramp.get('stepSeconds'):g} s steps; pass = create P95 ≤ 500 ms, ≥ 99 % 2xx, backlog bounded)",
            "",
            f"Highest rate that passed: **{_fmt(ramp.get('maxSustainedRate'), '/s')}**",
            "",
            "| rate /s | accepted /s | create P50 | P95 | P99 | pickup P95 | backlog slope /s | backlog at end | "
            "result |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for step in ramp["steps"]:
            lat = step["latencyMs"]
            lines.append(
                f"| {step['rate']:g} | {_fmt(step['achievedPerSecond'])} | {_ms(lat, 'p50')} | {_ms(lat, 'p95')} | "
                f"{_ms(lat, 'p99')} | {_ms(step.get('pickupMs'), 'p95')} | {_fmt(step['lag']['slope_per_s'], '', 1)} | "
                f"{_fmt(step['lag']['end_backlog'])} | {'pass' if step['passed'] else 'fail: ' + step['verdict']} |"
            )

    cost = scenarios.get("observability-cost")
    if isinstance(cost, dict) and cost.get("variants"):
        lines += observability_cost.markdown(cost)

    generator_rows = [
        (name, s["load"]["generator"])
        for name, s in scenarios.items()
        if isinstance(s, dict) and isinstance(s.get("load"), dict)
    ]
    if generator_rows:
        lines += [
            "",
            "### Load generator health",
            "",
            "Scheduler lateness = how late the generator launched a request against its schedule (its own "
            "overload shows here; latency is counted from the schedule regardless).",
            "",
            "| scenario | CPU % of a core | lateness P99 ms | lateness max ms | connections | peak outstanding |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, gen in generator_rows:
            late = gen["schedulerLatenessMs"]
            lines.append(
                f"| {name} | {_fmt(gen['cpuPercent'], '', 1)} | {_fmt(late['p99'], '', 2)} | "
                f"{_fmt(late['max'], '', 2)} | {gen['connectionsOpened']} | {_fmt(gen['peakOutstanding'])} |"
            )

    for name, s in scenarios.items():
        summary = s.get("profileSummary") if isinstance(s, dict) else None
        if not summary:
            continue
        mode = {"gil": "threads holding the GIL", "wall": "all threads, idle included"}.get(
            str(meta.get("profileMode")), ""
        )
        for service, prof in summary.items():
            lines += [
                "",
                f"### Profile: {service} during {name} ({prof['samples']:,} samples, py-spy, {mode})",
                "",
                "Samples by thread: " + ", ".join(f"{role} {pct} %" for role, pct in prof.get("threads", [])),
                "",
                "| own time | % | inclusive | % |",
                "| --- | --- | --- | --- |",
            ]
            for (own, own_pct), (inc, inc_pct) in zip(prof["ownTop"], prof["inclusiveTop"], strict=False):
                lines.append(f"| `{own}` | {own_pct} | `{inc}` | {inc_pct} |")

    if pngs:
        lines += ["", "## Plots", ""]
        lines += [f"- {name}: `{path}`" for name, path in pngs.items()]
    return "\n".join(lines) + "\n"


# -- plots ----------------------------------------------------------------------------------------------------


def plot_scenario(name: str, s: dict[str, Any], path: Path) -> bool:
    """Latency percentiles, throughput, backlog, CPU and RSS over time (s since the load started)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    burst = _get(s, "spec", "rate") is None and _get(s, "spec", "mode") == "open"
    key = "latencyByAnswer" if burst else "latency"
    latency = _get(s, "load", "series", key) or _get(s, "series", "latency")
    if not latency and not _get(s, "lag", "series"):
        return False
    fig, axes = plt.subplots(3, 2, figsize=(14, 11), sharex=True)
    ax = axes[0][0]
    if latency:
        for q, style in (("p50", ".-"), ("p95", ".-"), ("p99", ".-"), ("max", ":")):
            ax.plot(latency["t"], _nums(latency[q]), style, label=f"create {q}")
        ax.set_yscale("log")
    ax.set_ylabel("create latency (ms)")
    by = "answer time" if burst else "intended send time"
    ax.set_title(f"{name}: create latency per second (by {by})")
    _legend(ax)

    ax = axes[0][1]
    pickup = _get(s, "events", "series", "pickup")
    if pickup and pickup["t"]:
        for q in ("p50", "p95", "p99"):
            ax.plot(pickup["t"], _nums(pickup[q]), ".-", label=f"pickup {q}")
        ax.set_yscale("log")
    ax.set_ylabel("pickup latency (ms)")
    ax.set_title("pickup latency per second (by OrderCreated time)")
    _legend(ax)

    ax = axes[1][0]
    answered = _get(s, "load", "series", "answeredPerSecond") or _get(s, "series", "answeredPerSecond")
    if answered:
        ax.plot(answered["t"], answered["value"], label="2xx answers /s")
    staircase = _get(s, "series", "offered")
    if staircase:
        ax.plot(staircase["t"], _nums(staircase["value"]), color="grey", linestyle="--", label="offered")
    picked = _get(s, "events", "series", "pickedPerSecond")
    if picked:
        ax.plot(picked["t"], picked["value"], label="picked up /s")
    rate = _get(s, "spec", "rate")
    if rate and _get(s, "spec", "mode") == "open":
        ax.axhline(rate, color="grey", linestyle="--", label="offered")
    ax.set_ylabel("per second")
    ax.set_title("throughput")
    _legend(ax)

    ax = axes[1][1]
    lag = _get(s, "lag", "series")
    if lag:
        for key in ("orderEventsLag", "outboxBacklog", "inFlight", "fulfillmentEventsLag"):
            # The health-endpoint series are sampled less often: join their points, skip the gaps.
            points = [(t, v) for t, v in zip(lag["t"], lag[key], strict=True) if v is not None]
            if points:
                ax.plot([t for t, _ in points], [v for _, v in points], label=key)
    ax.set_ylabel("records")
    ax.set_title("backlog and consumer lag")
    _legend(ax)

    procs = s.get("processes") or {}
    for ax, key, label in ((axes[2][0], "cpuPercent", "CPU (% of one core)"), (axes[2][1], "rssMb", "RSS (MB)")):
        for proc in (*PROCESSES, "machine") if key == "cpuPercent" else PROCESSES:
            series = _get(procs, proc, "series")
            if series:
                style = ":" if proc == "machine" else "-"
                ax.plot(
                    series["t"], _nums(series[key]), style, label="machine (all cores)" if proc == "machine" else proc
                )
        ax.set_ylabel(label)
        ax.set_xlabel("seconds since the load started")
        _legend(ax)
    axes[2][0].set_title("CPU per process")
    axes[2][1].set_title("RSS per process")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _nums(values: list[Any]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def write_report(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """report.json, report.md and <scenario>.png in out_dir; returns their paths."""
    add_ratios(results)
    add_profiles(results)
    results["targets"] = evaluate_targets(results)
    pngs: dict[str, str] = {}
    for name, scenario in (results.get("scenarios") or {}).items():
        if isinstance(scenario, dict) and not scenario.get("error"):
            png = out_dir / f"{name}.png"
            if plot_scenario(name, scenario, png):
                pngs[name] = png.name
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
    paths["json"].write_text(json.dumps(_finite(results), indent=1, default=str, allow_nan=False))
    paths["markdown"].write_text(markdown(results, pngs))
    for name, png in pngs.items():
        paths[f"png:{name}"] = out_dir / png
    return paths
