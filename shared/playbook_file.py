"""Loading the shop playbook from YAML into the domain's frozen dataclasses, and composing a shop's
playbook from its layers: the built-in defaults, the file's ``defaults``, the file's ``shops.<shop>``
entry, then the shop's stored overrides (``shared.domain.playbook_versions``).

Layers are merged as documents, key by key through mappings (any other value, lists
included, replaces the one below it whole), and the result is validated once.
"""

from __future__ import annotations

import dataclasses
import types
import zoneinfo
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import TypeAdapter, ValidationError

from shared.domain.playbook import Playbook, ShopPlaybook
from shared.settings import DEFAULT_PLAYBOOK

_SHOP = TypeAdapter(ShopPlaybook)
# Set from the store's version number, never by a document.
_NOT_IN_DOCUMENTS = frozenset({"version"})
# A message names at most this many problems, and each key of a path at most this many characters.
MAX_PROBLEMS = 10
_MAX_KEY_SHOWN = 100

Location = tuple[str | int, ...]


class InvalidPlaybookError(ValueError):
    """A playbook document that does not validate: ``problems`` lists ``(path, problem)``, e.g.
    ``("rules.first_purchase_gift.holdout_percent", "must be 0 to 50")``; the message joins them.

    Neither the message nor the problems quote a rejected value.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        shown = [f"{path}: {problem}" if path else problem for path, problem in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"and {len(problems) - MAX_PROBLEMS} more")
        super().__init__("; ".join(shown))
        self.problems = problems

    @property
    def path(self) -> str:
        """The first bad path."""
        return self.problems[0][0]


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


@dataclass(frozen=True, slots=True)
class PlaybookLayers:
    """The playbook file's layers as documents: ``defaults`` (the built-in ones with the file's laid
    over) and each listed shop's entry. Kept as read, so stored overrides can be laid over them later."""

    defaults: dict[str, Any]
    shops: dict[str, dict[str, Any]]

    def playbook(self) -> Playbook:
        """The file alone, validated; raises on a bad value, naming its key."""
        return Playbook(
            default=_SHOP.validate_python(self.defaults),
            shops={shop: _SHOP.validate_python(self.below(shop)) for shop in self.shops},
        )

    def below(self, shop_id: str) -> dict[str, Any]:
        """The document stored overrides are laid over: the defaults, then the file's entry for the shop."""
        return _merge(self.defaults, self.shops.get(shop_id) or {})

    def compose(self, shop_id: str, overrides: Any, version: int, *, strict: bool = False) -> ShopPlaybook:
        """The shop's playbook with ``overrides`` laid over the file's layers, as ``version``.

        Raises ``InvalidPlaybookError``. ``strict`` is for a document about to be stored: an
        unknown key, or a rule the file does not list, is a problem too, so a misspelt name
        never passes silently. Without it (a document already stored), unknown keys are
        ignored as in the file, so a key a later release drops does not void a shop's version.
        """
        if not isinstance(overrides, dict):
            raise InvalidPlaybookError([("", "the overrides must be a JSON object")])
        below = self.below(shop_id)
        problems = unknown_keys(overrides, set(below.get("rules") or {})) if strict else []
        try:
            shop = _SHOP.validate_python({**_merge(below, overrides), "version": version})
        except ValidationError as error:
            raise InvalidPlaybookError(problems + _problems(error)) from None
        problems += _unusable(shop)
        if problems:
            raise InvalidPlaybookError(problems)
        return shop


def layers_of(document: dict[str, Any]) -> PlaybookLayers:
    """The layers of an already-read file document, over the built-in defaults."""
    builtin = _read(DEFAULT_PLAYBOOK)
    shops = document.get("shops") or {}
    return PlaybookLayers(
        defaults=_merge(builtin.get("defaults") or {}, document.get("defaults") or {}),
        shops={str(shop): raw or {} for shop, raw in shops.items()},
    )


def read_layers(path: Path | None = None) -> PlaybookLayers:
    """The layers of the file at ``path`` (the built-in one when None); raises on a file that is not a mapping."""
    return layers_of(_read(path) if path is not None and path != DEFAULT_PLAYBOOK else {})


def parse_playbook(document: dict[str, Any]) -> Playbook:
    """A playbook from an already-read document, laid over the built-in defaults."""
    return layers_of(document).playbook()


def load_playbook(path: Path | None = None) -> Playbook:
    """The playbook at ``path`` (the built-in one when None), validated; raises on bad files."""
    return read_layers(path).playbook()


def playbook_document(shop: ShopPlaybook) -> dict[str, Any]:
    """The shop's playbook as JSON in the shape of a ``shops.<shop>`` entry (durations ISO 8601,
    money and other decimals as strings); valid as overrides as it is."""
    document: dict[str, Any] = _SHOP.dump_python(shop, mode="json")
    for key in _NOT_IN_DOCUMENTS:
        document.pop(key, None)
    return document


# --- validation --------------------------------------------------------------------------


def unknown_keys(overrides: dict[str, Any], rules: set[str]) -> list[tuple[str, str]]:
    """Every key of ``overrides`` the playbook does not have, and every rule not in ``rules``."""
    found: list[tuple[str, str]] = []
    named = overrides.get("rules")
    if isinstance(named, dict):
        found += [
            (_path(("rules", name)), "unknown rule: the playbook file lists no such rule")
            for name in named
            if name not in rules
        ]
    _walk(overrides, ShopPlaybook, (), found)
    return found


def _walk(value: Any, hint: Any, location: Location, found: list[tuple[str, str]]) -> None:
    """Follows ``value`` down the types of the playbook, noting keys no field has."""
    hint = _unwrap(hint)
    cls = _dataclass(hint)
    if cls is not None and isinstance(value, dict):
        fields = _fields(cls)
        for key, item in value.items():
            if key not in fields or (cls is ShopPlaybook and key in _NOT_IN_DOCUMENTS):
                found.append((_path((*location, key)), "unknown key"))
            else:
                _walk(item, fields[key], (*location, key), found)
    elif get_origin(hint) is dict and isinstance(value, dict):
        for key, item in value.items():
            _walk(item, get_args(hint)[1], (*location, key), found)
    elif get_origin(hint) is tuple and isinstance(value, list):
        arguments = get_args(hint)
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            for index, item in enumerate(value):
                _walk(item, arguments[0], (*location, index), found)


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    """Pydantic's errors as (path, problem). A dataclass's own check (``__post_init__``) fails the
    dataclass as a whole; its message begins with the field it judged, which the path then names."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        location: Location = tuple(detail["loc"])
        message = str(detail["msg"])
        if detail["type"] == "value_error":
            location, message = _judged_field(location, str(detail.get("ctx", {}).get("error", message)))
        problems.append((_path(location), message))
    return problems


def _judged_field(location: Location, message: str) -> tuple[Location, str]:
    """``holdout_percent must be 0 to 50`` at ``rules.x`` -> ``rules.x.holdout_percent``, ``must be 0 to 50``;
    ``budget.amount must be ...`` at ``rules.x.budget`` -> ``rules.x.budget.amount``."""
    head, _, rest = message.partition(" ")
    names = tuple(head.split("."))
    judged = _type_at(location)
    if judged is None or not rest:
        return location, message
    if _has_fields(judged, names):
        return (*location, *names), rest
    if location and len(names) > 1 and names[0] == location[-1] and _has_fields(judged, names[1:]):
        return (*location, *names[1:]), rest
    return location, message


def _type_at(location: Location) -> type | None:
    """The dataclass at ``location`` in a ShopPlaybook document, or None."""
    hint: Any = ShopPlaybook
    for step in location:
        hint = _unwrap(hint)
        cls = _dataclass(hint)
        if cls is not None and isinstance(step, str) and step in _fields(cls):
            hint = _fields(cls)[step]
        elif get_origin(hint) is dict:
            hint = get_args(hint)[1]
        elif get_origin(hint) is tuple and isinstance(step, int):
            hint = get_args(hint)[0]
        else:
            return None
    return _dataclass(_unwrap(hint))


def _has_fields(hint: Any, names: tuple[str, ...]) -> bool:
    for name in names:
        cls = _dataclass(_unwrap(hint))
        if cls is None or name not in _fields(cls):
            return False
        hint = _fields(cls)[name]
    return True


def _unusable(shop: ShopPlaybook) -> list[tuple[str, str]]:
    """Values that validate but that no decision could use: every local date would fail on them."""
    problems = []
    try:
        zoneinfo.ZoneInfo(shop.timezone)
    except (KeyError, ValueError, OSError):
        problems.append(("timezone", "not an IANA time zone"))
    if shop.business_time.earliest.tzinfo is None:
        problems.append(("business_time.earliest", "needs a UTC offset"))
    return problems


def _dataclass(hint: Any) -> type | None:
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


@cache
def _fields(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _unwrap(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(hint) in (Union, types.UnionType):
        present = [argument for argument in get_args(hint) if argument is not type(None)]
        if len(present) == 1:
            return present[0]
    return hint


def _path(location: Location) -> str:
    """``rules.first_purchase_gift.holdout_percent``, ``tiers[1].code``."""
    path = ""
    for step in location:
        if isinstance(step, int):
            path += f"[{step}]"
        else:
            key = step if len(step) <= _MAX_KEY_SHOWN else step[:_MAX_KEY_SHOWN] + "…"
            path += f".{key}" if path else key
    return path
