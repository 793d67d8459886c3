"""JSON Schemas of the external contract, generated from the pydantic models.

One schema per input event type (``order.paid.json`` ...) in validation mode, which
is what producers must send, and one per output message (``action.json``,
``notification.json``, ``dead-letter.json``) in serialization mode, which is what
consumers receive. The files are committed under ``docs/schemas/``; regenerate them
after changing a contract model::

    python -m shared.contract.json_schemas            # write docs/schemas/*.json
    python -m shared.contract.json_schemas --check    # exit 1 and list stale files

Output is deterministic (sorted keys, two-space indent, trailing newline), so a
model change shows up as a reviewable diff and the check is a plain text comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from shared.contract.actions import Action, DeadLetter, NotificationOutcome
from shared.contract.events import EVENT_MODELS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
GENERATED_NOTE = "Generated from the contract models by `python -m shared.contract.json_schemas`; do not edit."

Mode = Literal["validation", "serialization"]

OUTPUT_MODELS: dict[str, tuple[type[BaseModel], str]] = {
    "action.json": (Action, "A care or incentive action on the member.actions topic."),
    "notification.json": (
        NotificationOutcome,
        "What the notifier did with one action on one channel, on the member.notifications topic.",
    ),
    "dead-letter.json": (DeadLetter, "An input record that could not be accepted, on the commerce.dlq topic."),
}


class ContractSchemaGenerator(GenerateJsonSchema):
    """Pydantic's draft 2020-12 generator, with decimal strings constrained by a pattern.

    Amounts accept a JSON number or a decimal string; the pattern states the string
    form's digit and decimal-place limits, which the default generator leaves out.
    """

    def get_decimal_pattern(self, schema: core_schema.DecimalSchema) -> str | None:
        return self.build_decimal_pattern(schema)


def model_schema(model: type[BaseModel], mode: Mode, title: str, description: str) -> dict[str, Any]:
    """The draft 2020-12 schema of ``model`` with a stable title and description."""
    schema: JsonSchemaValue = model.model_json_schema(mode=mode, schema_generator=ContractSchemaGenerator)
    schema["$schema"] = DRAFT
    schema["$comment"] = GENERATED_NOTE
    schema["title"] = title
    schema["description"] = description
    return schema


def render_json(schema: dict[str, Any]) -> str:
    """The canonical text of a schema file."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """Every schema file, by file name, in its canonical text."""
    files: dict[str, str] = {}
    for event_type, event_model in EVENT_MODELS.items():
        description = f"Input event {event_type}: a CloudEvents 1.0 envelope in structured JSON mode."
        files[f"{event_type}.json"] = render_json(model_schema(event_model, "validation", event_type, description))
    for file_name, (output_model, description) in OUTPUT_MODELS.items():
        title = file_name.removesuffix(".json")
        files[file_name] = render_json(model_schema(output_model, "serialization", title, description))
    return dict(sorted(files.items()))


def stale_files(directory: Path = SCHEMA_DIR) -> list[str]:
    """Files in ``directory`` that are missing, differ from the models, or are no longer generated."""
    expected = render_all()
    stale = [
        name
        for name, text in expected.items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text
    ]
    if directory.is_dir():
        stale.extend(path.name for path in directory.glob("*.json") if path.name not in expected)
    return sorted(stale)


def write_all(directory: Path = SCHEMA_DIR) -> list[str]:
    """Writes every schema file, removes ones no longer generated; returns the names changed."""
    changed = stale_files(directory)
    expected = render_all()
    directory.mkdir(parents=True, exist_ok=True)
    for name in changed:
        path = directory / name
        if name in expected:
            path.write_text(expected[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.contract.json_schemas", description="Generate the contract JSON Schemas."
    )
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if any file is stale")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help=f"schema directory (default {SCHEMA_DIR})")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if args.check:
        stale = stale_files(directory)
        for name in stale:
            print(f"stale: {directory / name}", file=sys.stderr)
        if stale:
            print("run `python -m shared.contract.json_schemas` to regenerate", file=sys.stderr)
            return 1
        return 0
    for name in write_all(directory):
        print(f"wrote: {directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
