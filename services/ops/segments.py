"""``segments export``: a saved segment's members, streamed, as the API's export route writes them.

The segment's current version is evaluated now (time-relative fields at the wall clock),
under the shop's playbook in force, and its members are read by ``member_id`` from a
server-side cursor a chunk at a time, so memory stays at one chunk however large the
segment. The columns and their text are ``shared.audience.segment_export``'s: a file
written here holds the bytes the API's export answers. Count and rows come from one
snapshot, so the progress total is exact. A file is written under a temporary name beside
it and renamed into place only when complete; stopped or failed, nothing is left behind.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, BinaryIO, Protocol

import typer

from services.ops import dependencies
from services.ops.output import counted, err_console, say
from services.ops.progress import ProgressDisplay
from services.ops.running import CommandError, Stop, fail, run
from shared.audience import segment_export, segment_query
from shared.audience.segment_reads import get_segment
from shared.domain.segments import InvalidDefinitionError, parse_definition
from shared.playbook_file import PlaybookLayers
from shared.settings import Settings

segments_app = typer.Typer(help="Saved audience segments.", no_args_is_help=True)


class ExportFormat(enum.StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class Sink(Protocol):
    shows_progress: bool

    def write(self, data: bytes) -> None: ...


class StdoutSink:
    """Straight to stdout, a chunk at a time: a stopped export leaves what was written, and says so."""

    shows_progress = False

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self._stream.flush()


class FileSink:
    """A temporary file beside ``path`` (owner-only permissions: it holds member data), renamed over ``path``
    once complete (``commit``), or removed (``discard``)."""

    shows_progress = True

    def __init__(self, path: Path) -> None:
        self.path = path
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        self._temporary = Path(name)
        self._file = os.fdopen(descriptor, "wb")

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as error:
            raise CommandError(f"cannot write {self.path} ({type(error).__name__})") from None

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temporary, self.path)
        except OSError as error:
            raise CommandError(f"cannot write {self.path} ({type(error).__name__})") from None

    def discard(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._temporary.unlink()


async def _export(
    settings: Settings,
    layers: PlaybookLayers,
    shop: str,
    segment_id: str,
    export_format: str,
    sink: Sink,
    stop: Stop,
) -> tuple[int, int | None, bool]:
    """Members written, how many the segment has (counted only when progress is shown), and whether all were."""
    async with dependencies.database(settings) as engine:
        playbook = await dependencies.playbook_in_force(engine, settings, layers)
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="REPEATABLE READ")  # count and rows: one snapshot
            async with connection.begin():
                saved = await get_segment(connection, shop, segment_id)
                if saved is None:
                    raise CommandError(f"no segment {segment_id!r} in shop {shop!r}")
                try:  # without the shop's vocabulary, as the API reads it: a tier renamed since matches no one
                    definition = parse_definition(saved.definition)
                except InvalidDefinitionError:
                    raise CommandError(f"segment {segment_id!r} has a stored definition that cannot be read") from None
                shop_playbook = playbook.for_shop(shop)
                audience = await segment_query.prepare(connection, definition, shop, shop_playbook, datetime.now(UTC))
                total = await segment_query.count_members(connection, audience) if sink.shows_progress else None
                written, complete = 0, True
                sink.write(segment_export.header(export_format))
                display = ProgressDisplay(err_console(), f"segment {segment_id}", total, "member")
                chunks = segment_query.stream_members(connection, audience, segment_export.CHUNK_ROWS)
                async with contextlib.aclosing(chunks):
                    with display if sink.shows_progress else contextlib.nullcontext():
                        async for rows in chunks:
                            sink.write(segment_export.chunk(export_format, (row._mapping for row in rows)))
                            written += len(rows)
                            if sink.shows_progress:
                                display.update(written)
                            if stop.requested:
                                complete = False
                                break
    return written, total, complete


@segments_app.command("export")
def export_command(
    shop: Annotated[str, typer.Argument(help="The shop's id.")],
    segment_id: Annotated[str, typer.Argument(help="The segment's id.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", dir_okay=False, help="Write to this file (replaced when complete) with progress."),
    ] = None,
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="csv (a header row, RFC 4180) or jsonl (one member a line).")
    ] = ExportFormat.csv,
) -> None:
    """Export every member the segment's current version selects now, by member_id, as the API's export does.

    Ctrl-C stops after the current chunk: a file is then not written at all (run the command again).
    """
    settings = dependencies.load_settings()
    layers = dependencies.load_layers(settings)
    sink: FileSink | StdoutSink
    if out is None:
        sink = StdoutSink(sys.stdout.buffer)
    else:
        try:
            sink = FileSink(out)
        except OSError as error:
            problem = f"cannot write beside {out} ({type(error).__name__})"
            raise typer.BadParameter(problem, param_hint="'--out'") from None
    stop = Stop()
    kept = False
    try:
        written, total, complete = run(
            lambda stop: _export(settings, layers, shop, segment_id, export_format, sink, stop), stop
        )
        if isinstance(sink, FileSink) and complete:
            try:
                sink.commit()
            except CommandError as failure:
                fail(failure.message)
            kept = True
    finally:
        if isinstance(sink, FileSink) and not kept:
            sink.discard()
    if not complete:
        of = "" if total is None else f" of {total:,}"
        if out is None:
            say(f"Interrupted after {counted(written, 'member')}: the output is incomplete. Run the command again.")
        else:
            say(f"Interrupted after {written:,}{of} members: {out} was not written. Run the command again.")
        raise typer.Exit(stop.exit_code)
    target = "" if out is None else f" to {out}"
    say(f"Exported {counted(written, 'member')} of segment {segment_id} (shop {shop}){target}.")
