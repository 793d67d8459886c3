"""The console's languages: message catalogues, and which one a request gets.

A ``?lang=`` link sets the ``console_lang`` cookie; without one, the browser's
``Accept-Language`` decides, and English is the fallback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "en"
COOKIE = "console_lang"
_CATALOGUES = Path(__file__).parent / "messages"


@cache
def catalogue(language: str) -> Mapping[str, str]:
    """The messages of ``language`` (one of LANGUAGES), keyed by dotted message id."""
    with (_CATALOGUES / f"{language}.json").open(encoding="utf-8") as handle:
        messages: dict[str, str] = json.load(handle)
    return messages


def _from_accept_language(header: str) -> str | None:
    """The supported language the header ranks highest (q-values honoured, order breaking ties)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-", 1)[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else None


def choose_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    return _from_accept_language(accept_language or "") or DEFAULT_LANGUAGE
