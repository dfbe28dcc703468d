"""The request body parser: I-JSON, numbers measured before they are converted, bounded work."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from httpapi.strict_json import (
    MAX_DEPTH,
    MAX_MAGNITUDE,
    MAX_SIGNIFICANT_DIGITS,
    MIN_MAGNITUDE,
    MalformedJSON,
    TooManyValues,
    UnrepresentableNumber,
    bounded_number,
    parse,
    value_count,
)

# Any JSON number spelling: sign, integer part, fraction and exponent of any length.
json_numbers = st.builds(
    lambda sign, integer, fraction, exponent: f"{sign}{integer}{fraction}{exponent}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,80}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,80}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"[eE][+-]?[0-9]{1,12}", fullmatch=True)),
)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("19.990", Decimal("19.99")),
        ("0." + "1" + "0" * 1000, Decimal("0.1")),
        ("0e999999999", Decimal(0)),
        ("-0", 0),
        ("1e5", Decimal("1E5")),
        ("100", 100),
        ("0.00123", Decimal("0.00123")),
        ("1" * MAX_SIGNIFICANT_DIGITS, int("1" * MAX_SIGNIFICANT_DIGITS)),
        (f"1e{MIN_MAGNITUDE}", Decimal(f"1e{MIN_MAGNITUDE}")),
        ("4.9e-324", Decimal("4.9e-324")),
        ("1.7976931348623157e40", Decimal("1.7976931348623157e40")),
        ("2.0", Decimal(2)),
        ("0.2e1", Decimal(2)),
    ],
)
def test_numbers_within_bounds_are_exact(literal, expected):
    value = bounded_number(literal)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "literal",
    [
        "1e400000",
        "1e999999999",
        "1e-999999999",
        "1" * (MAX_SIGNIFICANT_DIGITS + 1),
        "1" + "0" * 5000,
        f"1e{MIN_MAGNITUDE - 1}",
        f"1e{MAX_MAGNITUDE + 1}",
        "0." + "0" * 500 + "1",
        "1." + "0" * 100 + "1",
    ],
)
def test_numbers_beyond_bounds_are_not_converted(literal):
    assert isinstance(bounded_number(literal), UnrepresentableNumber)


@settings(max_examples=500, deadline=None)
@given(json_numbers)
def test_every_number_spelling_is_exact_or_unrepresentable_and_cheap(literal):
    started = time.thread_time()
    value = bounded_number(literal)
    assert time.thread_time() - started < 0.01
    if isinstance(value, UnrepresentableNumber):
        exact = Decimal(literal)  # fine here: the test does no arithmetic on it
        digits = "".join(map(str, exact.as_tuple().digits)).strip("0")
        assert not exact.is_zero()
        assert len(digits) > MAX_SIGNIFICANT_DIGITS or not MIN_MAGNITUDE <= exact.adjusted() <= MAX_MAGNITUDE
    else:
        assert value == Decimal(literal)
        assert isinstance(value, int) == ("." not in literal and "e" not in literal.lower())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 2000 + b"]" * 2000, "nest"),
        (b'{"a": 1, "a": 2}', "duplicate"),
        (b"NaN", "NaN"),
        (b"[Infinity]", "Infinity"),
        (b'"\\ud800"', "surrogate"),
        (b'{"\\udc00": 1}', "surrogate"),
        (b"\xff", "UTF-8"),
        (b"[1,]", "Expecting|Illegal trailing comma"),  # the json module's words: Python 3.13 has its own
        (b"", "Expecting"),
        (b"\xef\xbb\xbf{}", "BOM"),
    ],
)
def test_what_is_not_i_json_is_malformed(body, reason):
    with pytest.raises(MalformedJSON, match=reason):
        parse(body)


def test_surrogate_pairs_are_text():
    assert parse(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]


def test_value_count_bounds_values_and_ignores_strings():
    assert value_count(b'{"a":"x,y:[","b":[1,2,{"c":"\\"],"}]}') >= 7
    assert value_count(b'["' + b",:[" * 1000 + b'"]') == 2
    assert value_count(b'["\\\\",1,2]') == 4


def test_too_many_values_are_refused_before_parsing():
    body = b"[" + b",".join([b"1.5e3"] * 100_000) + b"]"
    started = time.thread_time()
    with pytest.raises(TooManyValues):
        parse(body)
    assert time.thread_time() - started < 0.05


def test_nesting_up_to_the_bound_parses_and_deeper_is_malformed():
    # The same answer on every supported Python, whatever its json module's recursion guard allows.
    assert parse(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    deep_object = b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH
    assert parse(deep_object) is not None
    for body in (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), b'{"a":' * 5000 + b"1" + b"}" * 5000):
        with pytest.raises(MalformedJSON, match=f"deeper than {MAX_DEPTH}"):
            parse(body)


def test_brackets_inside_strings_do_not_nest():
    text = '["' + "[{" * 5000 + '", {"b": "\\"[[["}]'
    assert parse(text.encode()) == ["[{" * 5000, {"b": '"[[['}]


def test_many_brackets_cost_no_more_than_the_values_they_could_be():
    # `{}` pairs side by side are not JSON; the depth check reads them at C speed and leaves the refusal to the
    # parser, which stops at the first pair.
    body = b"[" + b"{}" * 500_000 + b"]"
    started = time.thread_time()
    with pytest.raises(MalformedJSON, match="delimiter"):
        parse(body)
    assert time.thread_time() - started < 0.05
