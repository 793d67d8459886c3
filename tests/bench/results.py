"""Where every bench run leaves its raw output: ``tests/bench/results/<bench>.log``, committed with the code.

``record(bench, text)`` appends one entry: a header naming the commit that ran (``-dirty``
when tracked files differ from it), the machine (CPU model, cores and memory from /proc),
the Python version and the UTC time, then the run's output as it was printed. A bench that
starts the service from another checkout passes ``service_root``, whose commit is recorded
too. Entries are only ever appended, so a figure quoted anywhere can be traced to its run.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"


def commit(root: Path = ROOT) -> str:
    """``git rev-parse HEAD`` of ``root``, with ``-dirty`` when a tracked file (results aside) differs from it."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)tests/bench/results")
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


def machine() -> str:
    """CPU model, cores and memory as /proc reports them, and the Python version."""
    cpu, memory = platform.processor() or platform.machine(), "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
        with open("/proc/meminfo", encoding="utf-8") as info:
            kib = next(int(line.split()[1]) for line in info if line.startswith("MemTotal"))
            memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory} RAM, {platform.system()} {platform.release()} {platform.machine()}, "
        f"Python {sys.version.split()[0]}"
    )


def record(bench: str, text: str, *, service_root: Path | None = None) -> Path:
    """Appends ``text`` under a header to ``results/<bench>.log``; returns the file's path."""
    lines = [
        f"===== {bench} | {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        f"commit: {commit()}",
    ]
    if service_root is not None and service_root.resolve() != ROOT:
        lines.append(f"service root: {service_root} at {commit(service_root)}")
    lines.append(f"machine: {machine()}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{bench}.log"
    with path.open("a", encoding="utf-8") as log:
        log.write("\n".join(lines) + "\n" + text.rstrip("\n") + "\n\n")
    return path


class Transcript:
    """A bench run's output: each line printed as it comes, the whole appended by ``record`` at the end.

    Used as a context manager around the run, so a failed run is recorded too, with the error
    as its last line.
    """

    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def __enter__(self) -> Transcript:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is not None:
            self.say(f"FAILED: {type(error).__name__}: {error}")
        path = record(self.bench, "\n".join(self.lines))
        print(f"(appended to {path.relative_to(ROOT)})")
