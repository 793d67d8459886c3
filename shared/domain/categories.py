"""Product categories as the audience rules compare them: one slug per category, whatever its spelling.

Producers write categories as their catalogue does ("Tea & Cups", "tea-cups"); a slug
makes the spellings that differ only in case or punctuation one category, and is safe
to put in a tag id.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.domain.events import OrderItem

__all__ = ["category_slug", "item_categories"]


def category_slug(text: str) -> str:
    """``text`` in lower case with every character that is not alphanumeric (``str.isalnum``) as ``_``."""
    return "".join(char if char.isalnum() else "_" for char in text.lower())


def item_categories(items: Iterable[OrderItem]) -> list[str]:
    """The distinct slugs of the items' categories, sorted; items without a category add none."""
    return sorted({category_slug(item.category) for item in items if item.category is not None})
