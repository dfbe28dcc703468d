"""Prints how many schemathesis cases each operation ran."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    conformance = sys.modules.get("tests.contract.test_api_conformance")
    if conformance is None or not conformance.CASES:
        return
    terminalreporter.section(f"schemathesis cases per operation (CONTRACT_EXAMPLES={conformance.EXAMPLES})")
    for label, count in sorted(conformance.CASES.items()):
        terminalreporter.write_line(f"{count:>7}  {label}")
