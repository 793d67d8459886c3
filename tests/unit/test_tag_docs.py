"""docs/tags.md is generated from the catalogue: a tag added or reworded without regenerating it fails here."""

from __future__ import annotations

from shared import tag_docs
from shared.domain import tags


def test_the_committed_tag_document_is_the_catalogue() -> None:
    assert tag_docs.main(["--check"]) == 0, "run `python -m shared.tag_docs` and commit docs/tags.md"


def test_the_document_lists_every_built_in_tag_once() -> None:
    text = tag_docs.render()
    for definition in tags.built_in():
        assert text.count(f"| `{definition.id}` |") == 1
