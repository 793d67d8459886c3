"""``python -m services.api``: serve the API with uvicorn, which stops gracefully on SIGTERM."""

from __future__ import annotations

import gc
import sys

import structlog
import uvicorn

from services.api.app import ConfigurationError, create_app
from shared.observability import configure_logging
from shared.playbook_file import load_playbook
from shared.settings import Settings

# Allocations (net of deallocations) between two collections of the youngest generation; Python's default is 700.
GC_YOUNG_THRESHOLD = 50_000


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    log = structlog.get_logger("services.api")
    try:
        app = create_app(settings, load_playbook(settings.playbook_path))
    except ConfigurationError as exc:
        log.error("api.configuration_invalid", reason=str(exc))
        sys.exit(2)
    # Everything built so far (modules, the app, its schemas) lives as long as the process:
    # frozen, the collector no longer walks it on every full collection, which took tens of
    # milliseconds each under load, a request's worth of latency for every request waiting.
    # Requests leave little cyclic garbage, so the young generation is collected less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    # log_config=None keeps our logging set-up; no access log, since paths carry member ids.
    # uvloop and httptools: the event loop and HTTP parser in C, several times cheaper per
    # request than asyncio's pure-Python loop and h11.
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
