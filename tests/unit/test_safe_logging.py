"""Logged exceptions carry their type and stack frames, never their message (it may quote member data)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from shared.observability import configure_logging

SECRET = "buyer.name@example.com"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def _fail() -> None:
    raise ValueError(f"invalid value {SECRET!r}")


def test_structlog_exceptions_are_logged_without_their_message() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:
        _fail()
    except ValueError:
        structlog.get_logger("test").exception("test.failed", member_id="m-1")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["event"] == "test.failed"
    assert line["error_type"] == "ValueError"
    assert "_fail" in line["stack"]
    assert SECRET not in stream.getvalue()


def test_standard_library_exceptions_are_logged_without_their_message() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:
        _fail()
    except ValueError:
        logging.getLogger("aiokafka.test").exception("send failed")
    text = stream.getvalue()
    assert "send failed" in text
    assert "ValueError" in text
    assert SECRET not in text
