"""How a command's work runs: in its own event loop, stopped by the operator between batches.

Long work (a scheduler run, an export, a replay) goes in batches that each commit whole: a
transaction, a file renamed into place, records acknowledged by the broker. The first SIGINT
(Ctrl-C) or SIGTERM asks the work to stop once its current batch is done, and the command
then says what was done and how to go on; a second one cancels the work outright, which
rolls the batch in progress back. Expected failures (an unknown segment, an unreachable
database) end the command with one line and exit code 1, never a traceback or a value from
the data: database and Kafka errors are named by their type (and SQLSTATE), not their message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import asyncpg
import typer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError

from services.ops.output import say
from shared.db.error_triage import describe

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE: the reader of stdout went away (``| head``)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class CommandError(Exception):
    """An expected failure: one line for the operator (no data values), and the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Stop:
    """The operator's request to stop, heard by the work between its batches."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._listeners: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signal or signal.SIGINT)

    def on_request(self, listener: Callable[[], None]) -> None:
        """Calls ``listener`` when a stop is asked for (at once if it already was)."""
        self._listeners.append(listener)
        if self.requested:
            listener()

    def request(self, signum: int = signal.SIGINT) -> None:
        if self.requested:
            return
        self.signal = signum
        for listener in self._listeners:
            listener()


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    say(f"error: {message}")
    raise typer.Exit(code)


_UNMIGRATED = {"42P01", "42703"}  # undefined table, undefined column


def explain(error: BaseException) -> str | None:
    """One line for an error of the database or Kafka met while working; None for anything else (a bug)."""
    if isinstance(error, (DBAPIError, asyncpg.PostgresError)):
        sqlstate = getattr(error.orig if isinstance(error, DBAPIError) else error, "sqlstate", None)
        if sqlstate in _UNMIGRATED:
            return (
                f"the database's schema is not this release's: run 'make migrate' (alembic upgrade head) ({sqlstate})"
            )
        named = describe(error) if isinstance(error, DBAPIError) else f"{type(error).__name__}, SQLSTATE {sqlstate}"
        return f"the database refused or failed ({named})"
    if isinstance(error, KafkaError):
        return f"Kafka failed ({type(error).__name__})"
    if isinstance(error, (ConnectionError, TimeoutError)):
        return f"a connection failed ({type(error).__name__})"
    return None


def run(work: Callable[[Stop], Awaitable[T]], stop: Stop | None = None) -> T:
    """Runs ``work`` to its end in a new event loop, with the signals handled as the module says.

    Raises ``typer.Exit`` for expected failures (after printing their line) and for a second
    signal (the work cancelled); a first signal only sets ``stop``, which the work heeds.
    """
    stop = stop or Stop()

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: int) -> None:
            if stop.requested:
                say("Stopping now: the batch in progress is rolled back.")
                task.cancel()
                return
            say("Stopping after the current batch (press Ctrl-C again to stop at once).")
            stop.request(signum)

        handled = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
        if handled:
            for signum in _SIGNALS:
                loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await work(stop)
        finally:
            if handled:
                for signum in _SIGNALS:
                    loop.remove_signal_handler(signum)

    try:
        return asyncio.run(main())
    except CommandError as failure:
        fail(failure.message, failure.code)
    except asyncio.CancelledError:
        fail("stopped at once; nothing of the batch in progress was kept", stop.exit_code)
    except BrokenPipeError:
        # Whoever read stdout has what they wanted; nothing more to say, and nothing left to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(EXIT_PIPE_CLOSED) from None
    except Exception as error:
        message = explain(error)
        if message is None:
            raise
        fail(message)
