"""The `fraudstream` command line: wiring only, the work lives in the package."""

from __future__ import annotations

import sys

import typer

from fraudstream.cli.demo import demo_app
from fraudstream.cli.errors import run_guarded
from fraudstream.cli.generate import transactions_app
from fraudstream.cli.labels import labels_app
from fraudstream.cli.monitor import monitor_app
from fraudstream.cli.platform import platform_app
from fraudstream.cli.retention import retention_app
from fraudstream.cli.retraining import retraining_app
from fraudstream.cli.rules import rules_app
from fraudstream.cli.score import score_app
from fraudstream.cli.serve import serve_app
from fraudstream.cli.topics import db_app, topics_app
from fraudstream.cli.train import train_app

app = typer.Typer(
    name="fraudstream",
    help="Real-time card-fraud detection: the embedded platform and its tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(platform_app, name="platform")
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.add_typer(transactions_app)
app.add_typer(train_app)
app.add_typer(retraining_app)
app.add_typer(labels_app)
app.add_typer(serve_app)
app.add_typer(score_app)
app.add_typer(monitor_app)
app.add_typer(retention_app)
app.add_typer(demo_app)
app.add_typer(rules_app, name="rules")


def main() -> None:
    sys.exit(run_guarded(app))
