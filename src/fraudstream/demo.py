"""`fraudstream demo`: the whole pipeline on the embedded platform, bounded and non-interactive.

platform up → a generated history → train → promote → the scorer, label ingestion, the API and a
live generator → a live console view read from what the pipeline wrote (PostgreSQL) → a summary
with the URLs → every process the demo started is stopped. The platform keeps running.

Every step is the project's own CLI in a child process, exactly as an operator would run it, so
the demo exercises nothing that a user could not run by hand. Long-running steps are
``platform.process.Child``: they log to ``<home>/demo/logs/`` (each start appended after a
banner); a failing step names its log and prints its last lines.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from fraudstream.adapters.object_store import s3_client
from fraudstream.adapters.postgres import connect
from fraudstream.platform.process import Child, Launch, tail
from fraudstream.settings import Settings

#: The demo's world: small enough to generate and train in about a minute on two cores,
#: large enough that the model sees every fraud scenario.
HISTORY = {"days": 36, "customers": 2000, "merchants": 400, "seed": 7}
TRAIN_DAYS, DELAY_DAYS, TEST_DAYS = 21, 7, 7
STOP_GRACE_S = 30.0


class DemoError(RuntimeError):
    """A step of the demo failed; the message names the step, its log and its last lines."""


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 180.0
    rate: float = 50.0
    airflow: bool = True
    candidates: int = 2
    retrain: bool = False
    scorer_start_timeout_s: float = 300.0


def cli() -> list[str]:
    """The project's CLI next to this interpreter (the venv's console script)."""
    script = Path(sys.executable).with_name("fraudstream")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from fraudstream.cli import main; main()"]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


@dataclass
class Demo:
    settings: Settings
    options: DemoOptions
    console: Console = field(default_factory=Console)
    children: list[Child] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.settings.platform.home / "demo"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    # -- steps -------------------------------------------------------------------------------

    def run_step(self, title: str, *args: str, timeout_s: float = 1800) -> None:
        """Run one CLI command to completion, its output (progress bars too) on this terminal."""
        self.console.rule(f"[bold]{title}")
        try:
            code = subprocess.run([*cli(), *args], timeout=timeout_s, check=False).returncode
        except subprocess.TimeoutExpired:
            raise DemoError(f"{title} did not finish within {timeout_s:.0f} s") from None
        if code != 0:
            command = " ".join(["fraudstream", *args])
            raise DemoError(f"{title} failed (exit {code}): `{command}`, output above")

    def start(self, name: str, *args: str) -> Child:
        child = Child.start(name, Launch([*cli(), *args]), self.logs / f"{name}.log")
        self.children.append(child)
        self.console.print(f"started [bold]{name}[/] (pid {child.process.pid}, log {child.log})")
        return child

    def check_children(self) -> None:
        for child in self.children:
            if not child.alive() and child.name != "generator":
                raise DemoError(
                    f"{child.name} stopped unexpectedly (exit {child.returncode}); "
                    f"log: {child.log}\n{tail(child.log, 15)}"
                )

    def stop_all(self) -> None:
        """Stop every child, newest first; a second Ctrl-C meanwhile cannot orphan one."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for child in reversed(self.children):
                if child.alive():
                    self.console.print(f"stopping {child.name} ...")
                child.stop(STOP_GRACE_S)
            self.children.clear()
        finally:
            signal.signal(signal.SIGINT, previous)

    def history(self) -> Path:
        """Generate the history once per parameter set; later demos reuse it."""
        start = date.today() - timedelta(days=int(HISTORY["days"]))
        key = "-".join(f"{k}{v}" for k, v in HISTORY.items()) + f"-{start.isoformat()}"
        folder = self.home / "history" / key
        if (folder / "transactions.parquet").exists() and (folder / "labels.parquet").exists():
            self.console.rule("[bold]history")
            self.console.print(f"reusing {folder}")
            return folder
        self.run_step(
            "generate a labelled history", "generate", "history", "--out", str(folder),
            "--start", start.isoformat(), *(f"--{k}={v}" for k, v in HISTORY.items()),
        )  # fmt: skip
        return folder

    def train_and_promote(self, folder: Path) -> None:
        txns, labels = str(folder / "transactions.parquet"), str(folder / "labels.parquet")
        train_start = (date.today() - timedelta(days=int(HISTORY["days"]))).isoformat()
        split = ["--train-start", train_start, "--train-days", str(TRAIN_DAYS),
                 "--delay-days", str(DELAY_DAYS), "--test-days", str(TEST_DAYS)]  # fmt: skip
        self.run_step(
            "train a challenger", "train", "--transactions", txns, "--labels", labels, *split,
            "--candidates", str(self.options.candidates), "--no-smote",
        )  # fmt: skip
        promote_start = (
            date.today() - timedelta(days=int(HISTORY["days"]) - TRAIN_DAYS - DELAY_DAYS)
        ).isoformat()
        self.run_step(
            "promote it if it beats the champion", "promote", "--transactions", txns,
            "--labels", labels, "--start", promote_start, "--days", str(TEST_DAYS),
        )  # fmt: skip

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> Summary:
        started = datetime.now(UTC)
        up = ["platform", "up", *(["--with-airflow"] if self.options.airflow else [])]
        self.run_step("start the platform", *up)
        self.run_step("check every service end to end", "platform", "smoke")
        folder = self.history()
        champion = self._champion()
        if champion is None or self.options.retrain:
            self.train_and_promote(folder)
        else:
            self.console.rule("[bold]model")
            self.console.print(
                f"@champion is version {champion}: serving it (--retrain trains a challenger first)"
            )
        truth_file = self.home / f"truth-{started:%Y%m%dT%H%M%S}.jsonl"
        view = LiveView(self.settings, started, truth_file)
        try:
            self.console.rule("[bold]start the pipeline")
            self._check_ports()
            self.start("ingest-labels", "ingest-labels")
            checkpoint = self._checkpoint(started)
            scorer = self.start(
                "scorer", "score", "--starting-offsets", "latest", "--checkpoint", checkpoint
            )  # fmt: skip
            self.start("api", "serve")
            token = self.settings.api.required_token().get_secret_value()
            self.console.print(
                f"dashboard (live during the run): {self.settings.api.url}/dashboard/#token={token}"
            )
            self._wait_for_scorer(scorer, checkpoint)
            self.start(
                "generator", "generate", "stream", "--rate", str(self.options.rate),
                "--duration", str(self.options.duration_s), "--truth", str(truth_file),
                *(f"--{k}={v}" for k, v in HISTORY.items() if k != "days"),
            )  # fmt: skip
            self._watch(view)
        finally:
            self.stop_all()
        return view.summary()

    def _champion(self) -> str | None:
        from fraudstream.adapters.registry import CHAMPION, version_for_alias

        return version_for_alias(self.settings, CHAMPION)

    def _check_ports(self) -> None:
        """The pipeline's own ports must be free: a leftover scorer or API would answer instead."""
        s = self.settings
        ports = {
            "scorer metrics": ("FRAUDSTREAM_SCORER_METRICS_PORT", s.scorer.metrics_port),
            "Spark UI": ("FRAUDSTREAM_SPARK_UI_PORT", s.spark.ui_port),
            "API": ("FRAUDSTREAM_API_PORT", s.api.port),
        }
        for what, (variable, port) in ports.items():
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise DemoError(
                        f"port {port} ({what}) is already in use: stop the process holding it "
                        f"(`ss -ltnp | grep {port}`) or set {variable} to a free port"
                    )

    def _checkpoint(self, started: datetime) -> str:
        bucket = self.settings.s3.checkpoint_bucket
        return f"s3a://{bucket}/checkpoints/demo-{started:%Y%m%dT%H%M%S}"

    def _wait_for_scorer(self, scorer: Child, checkpoint: str) -> None:
        """Ready once the query has planned its first micro-batch.

        From then on its starting offsets are fixed in the checkpoint (Spark's ``offsets/0``),
        so no live record is skipped.
        """
        bucket, _, prefix = checkpoint.removeprefix("s3a://").partition("/")
        client = s3_client(self.settings.s3)
        deadline = time.monotonic() + self.options.scorer_start_timeout_s
        with self.console.status("waiting for the scorer's first micro-batch (Spark starts)"):
            while time.monotonic() < deadline:
                self.check_children()
                found = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
                if any(o["Key"].endswith("/offsets/0") for o in found.get("Contents", [])):
                    return
                time.sleep(1.0)
        raise DemoError(f"the scorer did not start within the timeout; log: {scorer.log}")

    def _watch(self, view: LiveView) -> None:
        generator = next(c for c in self.children if c.name == "generator")
        drained_at: float | None = None
        with Live(view.table(), console=self.console, refresh_per_second=1) as live:
            while True:
                time.sleep(2.0)
                self.check_children()
                live.update(view.table())
                if generator.alive():
                    continue
                if generator.returncode != 0:
                    raise DemoError(f"the generator failed; log: {generator.log}")
                # The feed has ended: wait until every sent transaction is scored (or 60 s).
                drained_at = drained_at or time.monotonic()
                if view.caught_up() or time.monotonic() - drained_at > 60:
                    live.update(view.table())
                    break
        self.console.print()


SUMMARY_WARMUP_S = 60


@dataclass(frozen=True)
class Summary:
    scored: int
    alerts: int
    true_alerts: int
    frauds_sent: int
    frauds_alerted: int
    labels: int
    p50_ms: float | None
    p99_ms: float | None
    rate: float
    models: list[str]
    warm_p50_ms: float | None = None
    warm_p99_ms: float | None = None
    """Latency of the rows scored after the scorer's first ``SUMMARY_WARMUP_S``: without the
    transactions that waited for it to start and its JVM's first, slower batches."""

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.frauds_alerted / self.frauds_sent if self.frauds_sent else None


class LiveView:
    """Figures of the running pipeline, read from what it wrote (PostgreSQL, the truth file)."""

    def __init__(self, settings: Settings, started: datetime, truth_file: Path) -> None:
        self.settings = settings
        self.started = started
        self.truth_file = truth_file
        self.sent_frauds: set[str] = set()
        self._truth_read = 0

    def _frauds(self) -> set[str]:
        if self.truth_file.exists():
            with self.truth_file.open(encoding="utf-8") as f:
                f.seek(self._truth_read)
                for line in f:
                    if line.endswith("\n"):
                        self.sent_frauds.add(json.loads(line)["transaction_id"])
                        self._truth_read += len(line.encode("utf-8"))
        return self.sent_frauds

    def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with connect(self.settings.postgres) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def figures(self) -> dict[str, Any]:
        since = self.started
        (scored, alerts, recent, p50, p99, last_model), = self._query(
            """SELECT count(*),
                      count(*) FILTER (WHERE is_alert),
                      count(*) FILTER (WHERE scored_at > now() - interval '10 seconds'),
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM scored_at
                          - ingest_time)) FILTER (WHERE scored_at > now() - interval '30 seconds'),
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM scored_at
                          - ingest_time)) FILTER (WHERE scored_at > now() - interval '30 seconds'),
                      (array_agg(model_version ORDER BY scored_at DESC))[1]
                 FROM transactions_with_score WHERE scored_at >= %s""",
            since,
        )  # fmt: skip
        alert_ids = {
            r[0]
            for r in self._query(
                "SELECT transaction_id FROM transactions_with_score "
                "WHERE is_alert AND scored_at >= %s",
                since,
            )
        }
        scored_ids_frauds = self._frauds()
        ((labels,),) = self._query("SELECT count(*) FROM labels WHERE ingested_at >= %s", since)
        return {
            "scored": int(scored), "alerts": int(alerts), "rate": recent / 10.0,
            "p50": p50, "p99": p99, "model": last_model, "labels": int(labels),
            "true_alerts": len(alert_ids & scored_ids_frauds),
            "frauds_sent": len(scored_ids_frauds),
            "frauds_alerted": len(alert_ids & scored_ids_frauds),
        }  # fmt: skip

    def caught_up(self) -> bool:
        """No transaction scored in the last 5 seconds: the scorer has drained the feed."""
        ((recent,),) = self._query(
            "SELECT count(*) FROM transactions_with_score "
            "WHERE scored_at >= %s AND scored_at > now() - interval '5 seconds'",
            self.started,
        )
        return int(recent) == 0

    def table(self) -> Table:
        f = self.figures()
        table = Table(title="fraudstream: live pipeline", show_header=False, min_width=60)
        table.add_column(style="bold")
        table.add_column(justify="right")
        precision = f"{f['true_alerts'] / f['alerts']:.1%}" if f["alerts"] else "-"
        table.add_row("scored transactions", f"{f['scored']:,}")
        table.add_row("throughput (last 10 s)", f"{f['rate']:,.1f} tx/s")
        table.add_row("end-to-end latency p50 / p99 (30 s)", f"{_ms(f['p50'])} / {_ms(f['p99'])}")
        table.add_row("alerts", f"{f['alerts']:,}")
        table.add_row("alert precision (generator's truth)", precision)
        table.add_row("frauds sent / alerted", f"{f['frauds_sent']:,} / {f['frauds_alerted']:,}")
        table.add_row("labels ingested", f"{f['labels']:,}")
        table.add_row("model version", str(f["model"] or "-"))
        return table

    def summary(self) -> Summary:
        f = self.figures()
        (p50, p99, warm_p50, warm_p99, first, last), = self._query(
            """WITH s AS (SELECT scored_at, extract(epoch FROM scored_at - ingest_time) AS lat
                            FROM transactions_with_score WHERE scored_at >= %s),
                    w AS (SELECT min(scored_at) + %s * interval '1 second' AS warm FROM s)
               SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lat),
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY lat),
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY lat)
                          FILTER (WHERE scored_at >= (SELECT warm FROM w)),
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY lat)
                          FILTER (WHERE scored_at >= (SELECT warm FROM w)),
                      min(scored_at), max(scored_at)
                 FROM s""",
            self.started, SUMMARY_WARMUP_S,
        )  # fmt: skip
        models = [
            r[0]
            for r in self._query(
                "SELECT DISTINCT model_version FROM transactions_with_score WHERE scored_at >= %s",
                self.started,
            )
        ]
        seconds = (last - first).total_seconds() if first and last and last > first else 0.0
        return Summary(
            scored=f["scored"], alerts=f["alerts"], true_alerts=f["true_alerts"],
            frauds_sent=f["frauds_sent"], frauds_alerted=f["frauds_alerted"], labels=f["labels"],
            p50_ms=None if p50 is None else p50 * 1000, p99_ms=None if p99 is None else p99 * 1000,
            rate=f["scored"] / seconds if seconds else 0.0, models=sorted(models),
            warm_p50_ms=None if warm_p50 is None else warm_p50 * 1000,
            warm_p99_ms=None if warm_p99 is None else warm_p99 * 1000,
        )  # fmt: skip


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the demo's children are stopped either way."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
