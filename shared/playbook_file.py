"""Loading the shop playbook from YAML into the domain's frozen dataclasses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from shared.domain.playbook import Playbook, ShopPlaybook
from shared.settings import DEFAULT_PLAYBOOK

_SHOP = TypeAdapter(ShopPlaybook)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path: Path) -> dict[str, Any]:
    content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(content, dict):
        raise ValueError(f"playbook {path} must be a mapping")
    return content


def parse_playbook(document: dict[str, Any]) -> Playbook:
    """A playbook from an already-read document, laid over the built-in defaults."""
    builtin = _read(DEFAULT_PLAYBOOK)
    defaults = _merge(builtin.get("defaults") or {}, document.get("defaults") or {})
    shops = document.get("shops") or {}
    return Playbook(
        default=_SHOP.validate_python(defaults),
        shops={str(shop): _SHOP.validate_python(_merge(defaults, raw or {})) for shop, raw in shops.items()},
    )


def load_playbook(path: Path | None = None) -> Playbook:
    """The playbook at ``path`` (the built-in one when None), validated; raises on bad files."""
    return parse_playbook(_read(path) if path is not None and path != DEFAULT_PLAYBOOK else {})
