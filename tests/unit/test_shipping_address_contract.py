"""The v2 contracts of the shipping address: the spec's country list is ISO 3166-1's, and OrderCreated with the
address stays resolvable both ways with every released version (the local Avro check of tools.schema_check)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from codegen.country_codes import assigned_codes, with_assigned_codes
from contract_models.order_api import CountryCode
from tools.schema_check import incompatibilities

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "schemas/openapi/order-service.yaml"
ORDER_CREATED = ROOT / "schemas/avro/OrderCreated.avsc"
RELEASED = sorted((ROOT / "schemas/avro/history").glob("OrderCreated.v*.avsc"))


def test_the_spec_lists_exactly_the_assigned_iso_3166_1_codes() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    enum = spec["components"]["schemas"]["CountryCode"]["enum"]

    assert enum == assigned_codes()
    assert len(enum) == 249
    assert {"DE", "US", "GB", "NO", "NA"} <= set(enum)  # NO and NA stay strings, not YAML's false and null
    assert not {"XK", "QQ", "XX", "ZZ", "AA", "UK", "EU"} & set(enum)  # user-assigned, reserved or not assigned
    assert [code.value for code in CountryCode] == enum


def test_codegen_leaves_a_current_spec_unchanged_and_rewrites_a_stale_list() -> None:
    text = SPEC.read_text()
    assert with_assigned_codes(text) == text

    stale = text.replace("'DE', ", "", 1).replace("'ZW'", "'ZW', 'XK'", 1)
    assert stale != text
    assert with_assigned_codes(stale) == text


def test_order_created_with_the_address_is_full_transitive_with_every_released_version() -> None:
    assert RELEASED
    current = ORDER_CREATED.read_text()
    field = {f["name"]: f for f in json.loads(current)["fields"]}["shippingAddress"]
    assert field["default"] is None and field["type"][0] == "null"
    for released in RELEASED:
        assert incompatibilities(current, released.read_text(), "FULL_TRANSITIVE") == [], released.name
