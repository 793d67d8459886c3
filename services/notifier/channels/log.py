"""The ``log`` channel: one JSON line per message, for development and audit trails."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from shared.contract.actions import Action


class LogChannel:
    """Appends JSON lines to a file (or stdout); identifiers only, never personal data."""

    name = "log"

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    async def deliver(self, action: Action, notification_id: str) -> int:
        line = json.dumps(
            {
                "notification_id": notification_id,
                "action_id": action.action_id,
                "shop_id": action.shop_id,
                "member_id": action.member_id,
                "rule": action.rule,
                "template": action.message.template,
                "channel": self.name,
            },
            ensure_ascii=False,
        )
        # One short write per line from the event loop thread: lines never interleave.
        out = self._file if self._file is not None else sys.stdout
        out.write(line + "\n")
        out.flush()
        return 1

    async def aclose(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
