"""Bounds on what one log line can carry, whoever logged it: a value's length, and (in plain text) characters that
could start a line of their own.

Libraries log what clients send them: OpenTelemetry's trace context and baggage parsers echo an invalid header
member in a WARNING, a parser error names the input. A client then decides how large a line is and, in plain
text, what it looks like. These structlog processors run on every record just before it is rendered
(observability.logs), so no value in a line can exceed its bound:

* `bound_values`: a text value (the message `event` included) longer than MAX_VALUE_CHARS (2,000 characters) keeps
  its first MAX_VALUE_CHARS followed by `…[truncated, <n> chars]` (n: the original length); any other value whose
  `repr` is longer is replaced by its truncated `repr`. The traceback (`exception`) may be longer, up to
  MAX_EXCEPTION_CHARS (16,000), and keeps its beginning and its end (where the exception's message is), cut in the
  middle with the same marker.
* `escape_controls` (plain text only; JSON escapes them itself, RFC 8259 §7): control characters (C0, DEL, C1) and
  the Unicode line and paragraph separators in every text value become Python-style escapes (`\\n`, `\\x1b`,
  `\\u2028`), so no value can end the line, forge another one, or send a terminal escape sequence. A traceback
  keeps its own line breaks (plain text writes it below its record), every line of it indented
  (TRACEBACK_INDENT), so none of its lines can pass for a record.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

MAX_VALUE_CHARS = 2_000
MAX_EXCEPTION_CHARS = 16_000
EXCEPTION = "exception"
TRACEBACK_INDENT = "    "

_PLAIN = (int, float, bool, type(None))
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def truncated(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """text itself when it has at most limit characters, else its first limit characters followed by
    `…[truncated, <len(text)> chars]`."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated, {len(text)} chars]"


def truncated_middle(text: str, limit: int = MAX_EXCEPTION_CHARS) -> str:
    """text itself when it has at most limit characters, else its first and last limit/2 characters with
    `…[truncated, <len(text)> chars]…` between them."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n…[truncated, {len(text)} chars]…\n{text[-half:]}"


def bound_values(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: every value of the record within its bound (see the module docstring)."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            if len(value) > MAX_VALUE_CHARS:
                event_dict[key] = truncated_middle(value) if key == EXCEPTION else truncated(value)
        elif not isinstance(value, _PLAIN):
            text = repr(value)
            if len(text) > MAX_VALUE_CHARS:
                event_dict[key] = truncated(text)
    return event_dict


def escaped(text: str, keep_newlines: bool = False) -> str:
    """text with each control character (and U+2028, U+2029) written as an escape: `\\n`, `\\r`, `\\t`, `\\xNN`
    (up to U+00FF) or `\\uNNNN`; line feeds kept when keep_newlines."""
    pattern = _CONTROLS_BUT_NEWLINE if keep_newlines else _CONTROLS
    return pattern.sub(_escape, text)


def escape_controls(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor for plain-text lines: control characters in every text value escaped, and the lines of
    a traceback indented (see the module docstring)."""
    for key, value in event_dict.items():
        if not isinstance(value, str):
            continue
        if key == EXCEPTION:
            lines = escaped(value, keep_newlines=True).split("\n")
            event_dict[key] = "\n".join(TRACEBACK_INDENT + line for line in lines)
        elif _CONTROLS.search(value):
            event_dict[key] = escaped(value)
    return event_dict


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
