"""``python -m services.api``: serve the API with uvicorn, which stops gracefully on SIGTERM."""

from __future__ import annotations

import sys

import structlog
import uvicorn

from services.api.app import ConfigurationError, create_app
from shared.observability import configure_logging
from shared.playbook_file import read_layers
from shared.process_heap import settle_heap
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    log = structlog.get_logger("services.api")
    try:
        layers = read_layers(settings.playbook_path)
        app = create_app(settings, layers.playbook(), layers)
    except ConfigurationError as exc:
        log.error("api.configuration_invalid", reason=str(exc))
        sys.exit(2)
    settle_heap()  # a full collection's pause was a request's worth of latency for every request waiting
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
