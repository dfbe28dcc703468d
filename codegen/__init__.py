"""Turns the contracts in schemas/ into the generated package contract_models/."""
