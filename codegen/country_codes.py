"""The `CountryCode` enum of the Order Service's OpenAPI document, kept equal to ISO 3166-1's assigned codes.

The list of assigned alpha-2 codes is pycountry's copy of ISO 3166-1 (Debian's iso-codes data, pinned in
requirements.lock), so it changes only when that pin moves. `make codegen` writes it into the spec's
`components.schemas.CountryCode.enum` (the spec stays the contract the server enforces and schemathesis tests);
`make codegen-check` fails when the spec's list differs from it. User-assigned codes (AA, QM-QZ, XA-XZ, ZZ;
e.g. XK) and reserved ones are not assigned and so not in the list.
"""

from __future__ import annotations

import re
import textwrap

import pycountry

# The enum's flow sequence inside the CountryCode schema; [^\]]* spans the lines it is wrapped over.
_ENUM = re.compile(r"(\n    CountryCode:\n(?:      .*\n)*?      enum: )\[[^\]]*\]")
_INDENT = " " * 8


def assigned_codes() -> list[str]:
    """Every assigned ISO 3166-1 alpha-2 code (upper case, two letters), sorted."""
    return sorted(country.alpha_2 for country in pycountry.countries)


def render_enum(codes: list[str]) -> str:
    """The YAML flow sequence of codes, each quoted (YAML 1.1 reads a bare NO as false), wrapped to 120 columns."""
    body = ", ".join(f"'{code}'" for code in codes)
    lines = textwrap.wrap(body, width=120 - len(_INDENT), break_on_hyphens=False)
    return "[\n" + "\n".join(_INDENT + line for line in lines) + "\n      ]"


def with_assigned_codes(spec_text: str) -> str:
    """spec_text with its CountryCode enum replaced by the assigned codes. Raises ValueError when the spec has no
    `CountryCode` schema with an `enum` under components.schemas."""
    replaced, count = _ENUM.subn(lambda match: match[1] + render_enum(assigned_codes()), spec_text, count=1)
    if count != 1:
        raise ValueError("the spec has no components.schemas.CountryCode with an enum to keep")
    return replaced
