"""Where the model commands read their data: files, S3 objects or an extracted training set.

``--transactions``/``--labels`` take a local path or an ``s3://bucket/key`` URI of
a Parquet or CSV file; ``--training-set`` takes the location written by
``fraudstream extract-training-set`` (a directory or an S3 prefix) and stands for
both, verified against its manifest.

Every transaction read here goes through the stream's row policy
(``fraudstream.screening``): refused rows are reported per reason and excluded,
or with ``--strict`` the command stops.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fraudstream.schema.jsonvalues import finite
from fraudstream.settings import load_settings

if TYPE_CHECKING:
    import pandas as pd

    from fraudstream.schema.contract import ContractName
    from fraudstream.screening import Screened

TxnOpt = Annotated[
    str | None,
    typer.Option("--transactions", help="Parquet or CSV: a path or s3://bucket/key."),
]
LabelOpt = Annotated[
    str | None, typer.Option("--labels", help="Parquet or CSV: a path or s3://bucket/key.")
]
SetOpt = Annotated[
    str | None,
    typer.Option(
        "--training-set",
        help="A directory or s3:// prefix written by extract-training-set (instead of files).",
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Stop when a row fails the stream's row policy, instead of excluding it.",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON summary line on stdout (logs to stderr).")
]


def utc_time(value: str, option: str) -> datetime:
    """A command-line time: an ISO 8601 date or timestamp (``Z`` or an offset), one
    without a zone taken as UTC; returned in UTC. A bad value is a usage error naming
    ``option`` and an example."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO date or time (ISO 8601), e.g. 2026-03-01 or "
            "2026-03-01T03:00Z",
            param_hint=option,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_table(path: Path | str) -> pd.DataFrame:
    """A Parquet or CSV file (local or ``s3://``); timestamp columns become tz-aware UTC."""
    import pandas as pd

    source = str(path)
    if source.startswith("s3://"):
        from fraudstream.adapters.object_store import LocationError, read_uri

        try:
            data: Any = io.BytesIO(read_uri(source, load_settings().s3))
        except LocationError as exc:
            raise typer.BadParameter(str(exc)) from None
    else:
        if not Path(source).is_file():
            raise typer.BadParameter(f"{source} does not exist or is not a file")
        data = source
    frame = pd.read_csv(data) if source.endswith(".csv") else pd.read_parquet(data)
    for column in ("event_time", "label_time"):
        if column in frame and not isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def progress_bar(console: Console, transient: bool = False) -> Progress:
    """The bar long offline steps show: description, bar, rows done of all, time."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=transient)


def apply_row_policy(
    frame: pd.DataFrame,
    name: ContractName,
    where: str,
    strict: bool,
    console: Console,
    now: datetime | None = None,
) -> tuple[pd.DataFrame, Screened]:
    """The rows of ``frame`` the stream would accept at ``now`` (default: the wall clock);
    the others reported and excluded.

    With ``strict``, any refused row stops the command (``RowPolicyError``).
    """
    from fraudstream.screening import screen_frame

    with progress_bar(console, transient=True) as bar:
        task = bar.add_task("row policy", total=len(frame))
        kept, screened = screen_frame(
            frame, name, now or datetime.now(UTC), where, lambda n: bar.update(task, completed=n)
        )
    report_screened(screened.check(strict), console)
    return kept, screened


def report_screened(screened: Screened, console: Console) -> None:
    """One warning line naming the excluded rows, when there are any."""
    if screened.excluded_rows:
        console.print(f"[yellow]excluded[/]: {screened.describe()}", soft_wrap=True)


@dataclass(frozen=True)
class Inputs:
    """The frames a command works on, the training set's manifest when one was named,
    and what the row policy excluded from the transactions."""

    transactions: pd.DataFrame
    labels: pd.DataFrame | None
    manifest: dict[str, Any] | None = None
    screened: Screened | None = None

    @property
    def exclusions(self) -> dict[str, Any]:
        """Rows read and excluded (per reason) for reports and MLflow; empty when unscreened."""
        return self.screened.summary() if self.screened else {}

    @property
    def window_end(self) -> pd.Timestamp | None:
        import pandas as pd

        return pd.Timestamp(self.manifest["window_end"]) if self.manifest else None


def read_inputs(
    transactions: str | None,
    labels: str | None,
    training_set: str | None,
    need_labels: bool,
    strict: bool = False,
    console: Console | None = None,
) -> Inputs:
    """Frames from either files (``--transactions``/``--labels``) or ``--training-set``,
    the transactions screened by the row policy (``apply_row_policy``): a training set at
    its own as-of (it describes that moment), files at the wall clock."""
    found = _read_frames(transactions, labels, training_set, need_labels)
    where = training_set or str(transactions)
    as_of = datetime.fromisoformat(found.manifest["as_of"]) if found.manifest else None
    kept, screened = apply_row_policy(
        found.transactions, "transaction", where, strict, console or Console(stderr=True), as_of
    )
    return Inputs(kept, found.labels, found.manifest, screened)


def _read_frames(
    transactions: str | None, labels: str | None, training_set: str | None, need_labels: bool
) -> Inputs:
    if training_set and (transactions or labels):
        raise typer.BadParameter(
            "give either --training-set or --transactions/--labels, not both",
            param_hint="--training-set",
        )
    if training_set:
        from fraudstream import training_sets
        from fraudstream.adapters.object_store import LocationError
        from fraudstream.model.training_set import TrainingSetError

        try:
            found = training_sets.load(load_settings(), training_set)
        except (LocationError, TrainingSetError) as exc:
            raise typer.BadParameter(
                f"{exc} (write it with `fraudstream extract-training-set`)",
                param_hint="--training-set",
            ) from None
        return Inputs(found.transactions, found.labels, found.manifest)
    if not transactions:
        raise typer.BadParameter(
            "name the data: --transactions FILE [--labels FILE], or --training-set URI",
            param_hint="--transactions",
        )
    if need_labels and not labels:
        raise typer.BadParameter("--labels is required", param_hint="--labels")
    return Inputs(read_table(transactions), read_table(labels) if labels else None)


def json_mode(console: Console, enabled: bool) -> None:
    """With ``--json``, human output moves to stderr so stdout holds the summary line only;
    without, it goes back to the console's own stream (a module's console outlives a command
    when several run in one process, as in tests)."""
    console.file = sys.stderr if enabled else None  # type: ignore[assignment]


def print_json(summary: dict[str, Any]) -> None:
    """One line, machine-readable, on stdout (NaN becomes null)."""
    sys.stdout.write(json.dumps(finite(summary), default=str) + "\n")
    sys.stdout.flush()
