"""What request text and JSON bodies the API accepts before any of it reaches the database.

PostgreSQL cannot store a NUL character and asyncpg cannot encode a lone UTF-16
surrogate, so text carrying either is refused at the edge (``invalid_text``). Bodies are
parsed here rather than by the framework so that every way of not being JSON (bad
syntax, bad UTF-8, ``NaN``, nesting too deep to decode) answers the same ``invalid_json``,
and an integer too long for Python's integer parsing stays a number that validation
then finds out of range.
"""

from __future__ import annotations

import email.message
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_to_bytes

# NUL, and the surrogate code points, which only ever appear alone in a Python str.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Integers longer than this are parsed as Decimal: int() refuses more than 4,300 digits.
_LONGEST_INT = 100
# Locations quote at most this much of a client-chosen key.
_KEY_QUOTE = 40

TEXT_RULE = "text must not contain NUL characters or unpaired UTF-16 surrogates"


class InvalidJsonError(ValueError):
    """The body is not a JSON document (the message says why, never quoting it)."""


def is_storable(text: str) -> bool:
    """True when PostgreSQL can store ``text`` and asyncpg can encode it."""
    return _UNSTORABLE.search(text) is None


def _key(key: str) -> str:
    return key if is_storable(key) and len(key) <= _KEY_QUOTE and key.isprintable() else "…"


def unstorable_location(document: Any, root: str = "body") -> str | None:
    """Where the first unstorable string (value or key) of a parsed JSON document is, or None.

    Walks iteratively, so a deeply nested document cannot exhaust the stack.
    """
    pending: list[tuple[Any, str]] = [(document, root)]
    while pending:
        value, location = pending.pop()
        if isinstance(value, str):
            if not is_storable(value):
                return location
        elif isinstance(value, dict):
            for key, item in value.items():
                if not is_storable(key):
                    return f"{location} (a key)"
                pending.append((item, f"{location}.{_key(key)}"))
        elif isinstance(value, list):
            pending.extend((item, f"{location}[{index}]") for index, item in enumerate(value))
    return None


def unstorable_parameter(kind: str, items: Iterable[tuple[str, str]]) -> str | None:
    """``path parameter 'member_id'`` (or the like) for the first name or value that cannot be stored."""
    for name, value in items:
        if not is_storable(name):
            return f"a {kind} name"
        if not is_storable(value):
            return f"{kind} {_key(name)!r}"
    return None


def is_utf8_when_unquoted(raw: bytes) -> bool:
    """True when the percent-escapes of a raw path or query string decode as UTF-8.

    Servers decode them with replacement characters, which would quietly turn a lone
    surrogate (``%ED%A0%80``) or stray bytes into a different id.
    """
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_json_content_type(header: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters aside (as the framework reads it)."""
    if not header:
        return False
    message = email.message.Message()
    message["content-type"] = header
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _integer(digits: str) -> int | Decimal:
    return int(digits) if len(digits) <= _LONGEST_INT else Decimal(digits)


def _no_constants(name: str) -> Any:
    raise InvalidJsonError(f"{name} is not a JSON value")


def parse_json(raw: bytes) -> Any:
    """The JSON document in ``raw`` (UTF-8, RFC 8259); raises InvalidJsonError otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJsonError("the body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_int=_integer, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise InvalidJsonError(f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise InvalidJsonError("the body nests too deeply") from None
    except InvalidJsonError:
        raise
    except ValueError:
        raise InvalidJsonError("the body is not a JSON document") from None
