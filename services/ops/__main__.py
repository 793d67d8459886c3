"""``engagement-ops`` (or ``python -m services.ops``): the operator command line.

Settings come from the environment, as for the services (docs/configuration.md); the
commands and their options are in docs/cli.md. Exit codes: 0 done, 1 failed (one line on
stderr says why), 2 a usage error, 130 stopped by Ctrl-C (143 by SIGTERM), 141 stdout closed.
"""

from __future__ import annotations

import typer

from services.ops.quarantine import quarantine_app
from services.ops.replay import replay_command
from services.ops.reports import campaigns_app, incentives_app
from services.ops.scheduler import scheduler_app
from services.ops.segments import segments_app

app = typer.Typer(
    name="engagement-ops",
    help="Operate the member-engagement service: run the scheduler, export segments, read reports, "
    "replay topics, release quarantined members. Settings come from the environment (DATABASE_URL, "
    "KAFKA_BOOTSTRAP_SERVERS, TOPIC_*, PLAYBOOK_PATH ...), as for the services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold settings and member data
    rich_markup_mode="markdown",
)
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(segments_app, name="segments")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(incentives_app, name="incentives")
app.add_typer(quarantine_app, name="quarantine")
app.command("replay")(replay_command)


def main() -> None:
    app(prog_name="engagement-ops")


if __name__ == "__main__":
    main()
