"""The benchmark's topologies: --topology parsing, each service's environment, the report's table, and CPU summed
over a service's process tree."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil
import pytest

from bench.__main__ import parse_args
from bench.report import markdown
from bench.samplers import ProcessTree
from bench.topology import Topology, markdown_section, parse_topologies
from harness.waiting import wait_until


def test_topologies_parse_from_repeatable_comma_separated_values_in_order_without_repeats():
    args = parse_args(["--topology", "1x1x1,2x2x2", "--topology", " 4X1x6 ,1x1x1", "--rate", "500"])
    assert parse_topologies(args.topology) == [Topology(1, 1, 1), Topology(2, 2, 2), Topology(4, 1, 6)]
    assert [t.label for t in parse_topologies(args.topology)] == ["1x1x1", "2x2x2", "4x1x6"]
    assert args.rate == 500
    assert parse_args([]).rate == 1000


@pytest.mark.parametrize("bad", ["2x2", "2x0x1", "axbxc", "2x2x2x2", "-1x1x1"])
def test_a_topology_that_is_not_three_positive_counts_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=f"topology {bad!r} is not NxMxP"):
        parse_topologies([f"1x1x1,{bad}"])


def test_each_service_gets_its_workers_the_partitions_and_its_databases():
    env = Topology(3, 2, 4).service_env({"order": "pg-o", "fulfillment": "pg-f", "provider": "pg-p"})
    partitions = {"ORDER_EVENTS_PARTITIONS": "4", "FULFILLMENT_EVENTS_PARTITIONS": "4"}
    assert env["order"] == {**partitions, "WORKERS": "3", "DATABASE_URL": "pg-o"}
    assert env["fulfillment"] == {
        **partitions,
        "WORKERS": "2",
        "DATABASE_URL": "pg-f",
        "PROVIDER_DATABASE_URL": "pg-p",
    }


def _figures(accepted: float, create_p95: float, pickup_p95: float, bounded: bool, cpu: tuple[float, float]) -> dict:
    return {
        "spec": {"mode": "open", "rate": 1000.0, "duration": 60.0},
        "load": {"achievedPerSecond": accepted, "latencyMs": {"p95": create_p95}},
        "events": {"pickupMs": {"p95": pickup_p95}},
        "lag": {"verdict": {"bounded": bounded, "reason": "backlog grows 80/s"}},
        "processes": {"order-service": {"cpuMsPerOrder": cpu[0]}, "fulfillment-service": {"cpuMsPerOrder": cpu[1]}},
    }


def test_the_report_has_one_row_per_topology_with_its_figures():
    topologies = {
        "1x1x1": _figures(812.4, 1450.25, 3200.0, False, (0.91, 0.62)),
        "2x2x2": _figures(999.6, 21.04, 180.5, True, (1.02, 0.7)),
        "4x4x4": {"error": "ServiceStartError: order_service exited with 1"},
    }
    section = markdown_section(topologies)
    assert "## Topologies" in section
    rows = [line for line in section if line.startswith("| ") and line[2].isdigit()]
    assert rows == [
        "| 1x1x1 | 1000/s x 60 s | 812 | 1,450.2 | 3,200.0 | unbounded: backlog grows 80/s | 0.91 | 0.62 |",
        "| 2x2x2 | 1000/s x 60 s | 1,000 | 21.0 | 180.5 | bounded | 1.02 | 0.70 |",
        "| 4x4x4 | failed: `ServiceStartError: order_service exited with 1` | | | | | | |",
    ]
    report = markdown({"meta": {}, "scenarios": {}, "topologies": topologies}, {})
    assert "## Topologies" in report and "| 2x2x2 | 1000/s x 60 s |" in report
    assert "## Topologies" not in markdown({"meta": {}, "scenarios": {}}, {})


BURN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.4: pass\ntime.sleep(60)"


def test_a_process_tree_sums_the_cpu_of_its_children_and_keeps_that_of_one_that_exited():
    # A parent that only waits, with a child that burns 0.4 s of CPU, then waits too.
    root = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN!r}])"]
    )
    try:
        tree = ProcessTree(psutil.Process(root.pid), refresh_every=1)
        _, before = tree.sample()
        child = wait_until(lambda: psutil.Process(root.pid).children(), 30, message="the child")[0]
        wait_until(lambda: sum(child.cpu_times()[:2]) >= 0.4, 30, message="the child's CPU")
        _, during = tree.sample()
        root_cpu = sum(psutil.Process(root.pid).cpu_times()[:2])
        assert during - before >= 0.35
        assert root_cpu < during - before  # the child's CPU is in the total, not just the parent's
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        _, after = tree.sample()
        assert after >= during  # an exited member's CPU stays counted
    finally:
        root.kill()
        root.wait(10)
