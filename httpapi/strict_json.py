"""Request bodies parsed as I-JSON, with every number bounded before it becomes a Python number.

The profile is RFC 8259 JSON with the restrictions of I-JSON (RFC 7493 §2): the text is UTF-8, no object
has two members of the same name (parsers disagree on which one wins, so a duplicate is refused rather than
guessed), and no string holds a lone surrogate (it cannot be stored, encoded as UTF-8 or written to Avro).
`NaN` and `Infinity` are not JSON (RFC 8259 §6) and are refused.

Numbers are where parsers get hurt: `1e400000` is a short literal whose integer value has 400,001 digits,
and arithmetic on `1e-999999999` traps or silently underflows. So a number is first measured on its literal
(significant digits and the position of its leading digit, by string operations only) and converted only
when it is within `MAX_SIGNIFICANT_DIGITS` and `MIN_MAGNITUDE`..`MAX_MAGNITUDE` (the contracts' bounds,
contracts/number_bounds.py); otherwise it becomes an `UnrepresentableNumber`, which every typed field
refuses, so the error names the field. Zero is zero with any exponent, and trailing zeros of a fraction are
not significant (`0.1000...0` is 0.1). Integers stay `int`, numbers with a fraction or exponent become
`Decimal`, never `float`.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from contracts.number_bounds import MAX_MAGNITUDE, MAX_SIGNIFICANT_DIGITS, MIN_MAGNITUDE, UnrepresentableNumber

# Parsing costs about a microsecond per value in the hooks below; this bounds a 1 MiB body's parse to
# milliseconds. The largest create-order body has about 8,000 separators (1,000 items of 4 members).
MAX_VALUES = 10_000
# Arrays and objects nested deeper are refused before parsing. The parser's own guard is the interpreter's
# recursion limit, which Python 3.11 and 3.12 reach about 1,000 deep less the frames in use and 3.13 (whose json
# module's C guard allows far more) does not reach by 5,000; this bound, below each of them, makes the answer
# the same on every supported version. The contracts nest four deep.
MAX_DEPTH = 512

_NUMBER = re.compile(r"-?(?P<int>\d+)(?:\.(?P<frac>\d+))?(?:[eE](?P<exp>[+-]?\d+))?")
_SEPARATORS = (b",", b":", b"[")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_OPENERS = frozenset(b"[{")


class MalformedJSON(ValueError):
    """The body is not I-JSON; the message says where or why (for a 400 answer)."""


class TooManyValues(ValueError):
    """The body holds more values than the caller accepts (for a 413 answer: too large to process)."""


def bounded_number(literal: str) -> int | Decimal | UnrepresentableNumber:
    """A JSON number literal as int (no fraction or exponent) or Decimal, measured before conversion.

    Raises MalformedJSON for a string that is not a JSON number (the parser never passes one).
    """
    if len(literal) <= 20 and "e" not in literal and "E" not in literal:
        # At most 20 characters without an exponent: within every bound, nothing to measure.
        return Decimal(literal) if "." in literal else int(literal)
    match = _NUMBER.fullmatch(literal)
    if match is None:
        raise MalformedJSON(f"not a number: {literal[:40]}")
    integer, fraction, exponent = match["int"], match["frac"] or "", match["exp"]
    digits = (integer + fraction).lstrip("0")
    if not digits:
        return 0 if fraction == "" and exponent is None else Decimal(0)
    digits = digits.rstrip("0") or "0"
    exponent_value = 0
    if exponent is not None:
        unsigned = exponent.lstrip("+-").lstrip("0")
        if len(unsigned) > 6:  # |exponent| >= 10**6: far outside any bound, no conversion needed
            return UnrepresentableNumber(literal[:40])
        exponent_value = int(unsigned or "0") * (-1 if exponent.startswith("-") else 1)
    # Position of the leading digit: integer digits after the leading zeros, or minus the fraction's zeros.
    significant_integer = integer.lstrip("0")
    if significant_integer:
        leading = len(significant_integer) - 1 + exponent_value
    else:
        leading = -(len(fraction) - len(fraction.lstrip("0")) + 1) + exponent_value
    if len(digits) > MAX_SIGNIFICANT_DIGITS or not MIN_MAGNITUDE <= leading <= MAX_MAGNITUDE:
        return UnrepresentableNumber(literal[:40])
    if fraction == "" and exponent is None:
        return int(literal)
    # Rebuilt from the significant digits only: 0.1 followed by a thousand zeros converts as 1E-1.
    sign = "-" if literal.startswith("-") else ""
    return Decimal(f"{sign}{digits}E{leading - len(digits) + 1}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise MalformedJSON(f"duplicate member name {name[:100]!r} (RFC 7493 §2.3)")
            seen.add(name)
    return result


def _not_json(name: str) -> Any:
    raise MalformedJSON(f"{name} is not a JSON value (RFC 8259 §6)")


def _skeleton(body: bytes) -> bytes:
    """The JSON text without its strings' content: escaped backslashes and quotes are removed first; then the
    text between the remaining quotes is string content, left out."""
    return b"".join(body.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])


def value_count(body: bytes) -> int:
    """An upper bound on how many values the JSON text holds, from byte counts alone (C speed).

    Every value but the root follows a `:` (a member's value), a `,` or a `[`, so those characters outside
    strings bound the count.
    """
    skeleton = _skeleton(body)
    return 1 + sum(skeleton.count(c) for c in _SEPARATORS)


def nests_too_deeply(body: bytes, max_values: int = MAX_VALUES) -> bool:
    """Whether the JSON text nests arrays and objects deeper than MAX_DEPTH (brackets within strings left out).

    Every opening bracket starts a value, so a text with more than max_values of them is no JSON text of at
    most max_values values: False, and the parser refuses it in one pass. Otherwise the brackets are read up to
    the first closing one without an opening one (malformed there, which the parser says): at most
    2 * max_values + 1 of them, whatever the body's size.
    """
    brackets = _skeleton(body).translate(None, delete=_NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") > max_values:
        return False
    depth = 0
    for byte in brackets:
        if byte in _OPENERS:
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
            if depth < 0:
                return False
    return False


def parse(body: bytes, max_values: int = MAX_VALUES) -> Any:
    """Parse a request body under the profile above.

    Returns dicts, lists, str, bool, None, int, Decimal and UnrepresentableNumber. Raises MalformedJSON
    for anything that is not I-JSON (nesting deeper than MAX_DEPTH included), and
    TooManyValues when the text holds more than max_values values, before parsing them.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"not UTF-8 at byte {exc.start} (RFC 8259 §8.1)") from exc
    # The same count without leaving strings out is cheaper still and usually small enough.
    if 1 + sum(body.count(c) for c in _SEPARATORS) > max_values and value_count(body) > max_values:
        raise TooManyValues(f"the body holds more than {max_values} JSON values")
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and nests_too_deeply(body, max_values):
        raise MalformedJSON(f"arrays and objects nest deeper than {MAX_DEPTH}")
    try:
        value = json.loads(
            text,
            parse_float=bounded_number,
            parse_int=bounded_number,
            parse_constant=_not_json,
            object_pairs_hook=_no_duplicates,
        )
    except MalformedJSON:
        raise
    except RecursionError as exc:
        raise MalformedJSON("arrays and objects nest too deeply") from exc
    except ValueError as exc:
        raise MalformedJSON(str(exc)) from exc
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(value):
        raise MalformedJSON("a string holds a lone surrogate, which is not Unicode text (RFC 7493 §2.1)")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
