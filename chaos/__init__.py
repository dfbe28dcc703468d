"""Chaos suite: faults injected into the real stack under steady load, then every order reconciled."""
