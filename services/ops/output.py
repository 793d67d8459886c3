"""Where a command writes: its output on stdout (tables, or JSON with ``--json``), messages on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import orjson
from rich.console import Console

from services.ops.tables import Grid, rich_table


def err_console() -> Console:
    """Messages and progress: on stderr, so stdout carries only a command's output."""
    return Console(stderr=True, highlight=False)


def out_console() -> Console:
    """Tables on stdout; wide when it is not a terminal, so a table written to a file or pipe keeps its rows whole."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 240)


def counted(number: int, noun: str) -> str:
    """``1 batch``, ``2 batches``, ``1,200 members``."""
    if number == 1:
        return f"1 {noun}"
    return f"{number:,} {noun}{'es' if noun.endswith(('ch', 's', 'x')) else 's'}"


def say(message: str) -> None:
    """One message for the operator, on stderr, as written (no markup)."""
    err_console().print(message, markup=False, highlight=False, soft_wrap=True)


def print_json(document: object) -> None:
    """The document as the API writes it (RFC 3339 times, ``Z`` for UTC), indented for reading."""
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_UTC_Z | orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def print_grids(grids: Iterable[Grid]) -> None:
    console = out_console()
    for grid in grids:
        console.print(rich_table(grid))
