"""The error of a document that does not hold, naming where: the API answers 422 with that path."""

from __future__ import annotations


class InvalidAtPathError(ValueError):
    """``path`` names the bad part of the document, ``problem`` what is wrong; the message never quotes the value."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
