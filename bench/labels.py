"""Benchmark the risk features under slow labels: today's against the delay-aware ones.

For each label regime, one generated history and one feature build (the current feature
set), then the project's training (``model.training.train``: prequential folds with early
stopping, threshold by F2) on three column sets, scored on the same test period with every
label that ever arrives:

- ``today``: the feature set before the mature risks (the mature columns left out);
- ``mature``: every column of the current feature set;
- ``mature only``: the current set without today's merchant fraud risks.

Regimes: ``mixed`` (the generator's default), ``chargeback-only`` (no analyst labels,
chargebacks 7-90 days, median 21), and ``slower`` (chargeback-only with a median of 45
days: labels slower than the maturity delay assumes). It prints, per regime and set, AUC,
AP, CP@100, F2 at the stored threshold, recall per scenario and the merchant features'
share of the model's total gain; then the AP differences against ``today`` in the same
run, a Markdown table, one JSON line per row, and a plot (``--plot``).

Calibration (``model.calibration``), per row: the test period's expected calibration error
over every row and over the alerted band (score >= threshold) for the uncalibrated model
and for Platt's map fitted three ways: on every validation row with the labels known at the
cutoff (recent frauds still unlabelled count as genuine), on the validation rows past the
maturity delay only, and on those rows with the estimated completeness of their labels in
the fit (the map training stores; ``mature_rows_weighted`` in the output); each at the
threshold raising the stored model's alerts; AUC and AP of each; the alert band's ECE if the
stored scores were exact (its sampling noise). ``--reliability-dir`` saves each regime's
reliability diagram of the ``mature`` set (``reliability-<regime>.png``).

Before any training, per regime, how far a card-level known-fraud signal could reach
(``card_known_fraud``): for windows of 7, 30 and 90 days, the share of frauds and of genuine
transactions whose card had a fraud label known (label time before the event) within the
window, and the flag's precision against the base rate (``lift``). Any feature built on a
card's known frauds can separate only what this flag separates. ``--reach-only`` stops there
(no feature build, no training).

``--bound`` adds two rows per regime, both trained on every fraud label (as if each had
arrived one microsecond after its transaction): ``today, trained on every label`` (today's
columns as the regime computes them) and ``bound: instant labels`` (the ``mature`` columns
built from those instant labels). Their AP difference is what the risk features could add
if they knew every label at once: the most any delay-aware version of them could add in that
world. (Against ``today`` itself the bound would also count its more complete training
targets, and risks that know labels the targets lack teach the model the wrong thing.)
The test rows are the same in every row.

``--history DIR`` runs on a history of your own instead of the generated regimes
(``transactions.parquet`` and ``labels.parquet`` in the contracts' columns, as
``fraudstream generate history --out DIR`` writes them).

    .venv/bin/python bench/labels.py [--customers 10000 --days 70] [--candidates 6]
        [--regimes mixed,chargeback-only,slower] [--sets today,mature,mature-only] [--seed 5]
        [--plot docs/img/label-regimes.png] [--reliability-dir docs/img] [--reach-only]
        [--history DIR] [--bound]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudstream.features.catalogue import MATURITY_DELAY_S, MERCHANT_FEATURES, feature_names
from fraudstream.features.replay import attach_labels, build_features
from fraudstream.generator.history import LABELS_FILE, TRANSACTIONS_FILE
from fraudstream.model import plots
from fraudstream.model.calibration import calibrated
from fraudstream.model.experiment import label_delays, training_rows, validation_folds
from fraudstream.model.metrics import calibration_errors, evaluate
from fraudstream.model.split import TimeSplit, holdout_rows
from fraudstream.model.training import Folds, TrainingResult, calibrate, train
from train import cached_history

REGIMES: dict[str, tuple[str, dict[str, float]]] = {
    "mixed": ("mixed", {}),
    "chargeback-only": ("chargeback-only", {}),
    "slower": ("chargeback-only", {"chargeback_median_days": 45.0}),
}
BOUND = "bound: instant labels"
"""The ``mature`` columns computed as if every label arrived just after its transaction,
trained on every fraud label."""
TODAY_ALL_LABELS = "today, trained on every label"
"""``today``'s columns as computed under the regime, trained on every fraud label: the
bound's baseline."""
MATURE = [s.name for s in MERCHANT_FEATURES if s.lag_s]
TODAYS_RISKS = [s.name for s in MERCHANT_FEATURES if "fraud_risk" in s.name and not s.lag_s]


def column_sets() -> dict[str, list[str]]:
    names = feature_names()
    return {
        "today": [n for n in names if n not in MATURE],
        "mature": names,
        "mature only": [n for n in names if n not in TODAYS_RISKS],
    }


def instant(txns: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The labels as if each were known one microsecond after its transaction: the merchant
    risks they give are an upper bound on what any delay-aware risk could know."""
    times = txns.set_index("transaction_id")["event_time"]
    at = labels["transaction_id"].map(times) + pd.Timedelta(microseconds=1)
    return labels.assign(label_time=at.fillna(labels["label_time"]))


def histories(args: argparse.Namespace) -> Iterator[tuple[str, pd.DataFrame, pd.DataFrame, int]]:
    """(regime, transactions, labels, days): each generated regime, or the ``--history``."""
    if args.history is None:
        for regime in args.regimes.split(","):
            preset, knobs = REGIMES[regime]
            txns, labels = cached_history(
                args.cache_dir, args.customers, args.days, preset, knobs, seed=args.seed
            )
            yield regime, txns, labels, args.days
        return
    paths = [args.history / name for name in (TRANSACTIONS_FILE, LABELS_FILE)]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise SystemExit(
            f"--history {args.history}: no {' or '.join(missing)} there; it needs both files, "
            f"as `fraudstream generate history --out DIR` writes them"
        )
    txns, labels = (pd.read_parquet(p) for p in paths)
    span = txns["event_time"].max() - txns["event_time"].min().floor("D")
    yield f"history:{args.history.name}", txns, labels, int(np.ceil(span / pd.Timedelta(days=1)))


def card_signal_reach(
    txns: pd.DataFrame, labels: pd.DataFrame, windows_days: tuple[int, ...] = (7, 30, 90)
) -> dict[str, dict[str, float]]:
    """Per window: frauds and genuine transactions whose card had a fraud label known within
    the window before the event (shares), and that flag's precision and lift over the base
    rate. Ground truth is every fraud label that ever arrives."""
    fraud = labels.loc[labels["is_fraud"].astype(bool), ["transaction_id", "label_time"]]
    known = fraud.merge(txns[["transaction_id", "card_id"]], on="transaction_id")
    known = known[["card_id", "label_time"]].rename(columns={"label_time": "known_at"})
    rows = txns[["transaction_id", "card_id", "event_time"]].sort_values("event_time")
    rows = pd.merge_asof(
        rows.assign(fraud=rows["transaction_id"].isin(fraud["transaction_id"])),
        known.sort_values("known_at"),
        left_on="event_time",
        right_on="known_at",
        by="card_id",
        direction="backward",
        allow_exact_matches=False,  # known strictly before the event
    )
    age_days = (rows["event_time"] - rows["known_at"]).dt.total_seconds() / 86_400
    base = float(rows["fraud"].mean())
    out = {}
    for days in windows_days:
        flag = (age_days <= days).to_numpy()
        y = rows["fraud"].to_numpy()
        precision = float(y[flag].mean()) if flag.any() else float("nan")
        out[f"{days}d"] = {
            "frauds_reached": round(float(flag[y].mean()), 4),
            "genuine_flagged": round(float(flag[~y].mean()), 4),
            "precision": round(precision, 4),
            "base_rate": round(base, 4),
            "lift": round(precision / base, 2) if base else float("nan"),
        }
    return out


def merchant_gain_share(model: object, columns: list[str]) -> dict[str, float]:
    """Each merchant feature's share of the model's total gain."""
    gain = model.get_booster().get_score(importance_type="total_gain")  # type: ignore[attr-defined]
    named = {columns[int(k[1:])] if k[1:].isdigit() else k: v for k, v in gain.items()}
    total = sum(named.values()) or 1.0
    return {n: round(named.get(n, 0.0) / total, 4) for n in columns if n.startswith("merchant_")}


def calibration_noise_floor(scores: np.ndarray, threshold: float, draws: int = 200) -> float:
    """The alert band's mean ECE if ``scores`` were exactly calibrated: labels drawn as
    Bernoulli(score), so what a few hundred alerts' sampling noise alone gives."""
    rng = np.random.default_rng(0)
    band = scores[scores >= threshold]
    found = [
        calibration_errors((rng.uniform(size=len(band)) < band).astype(int), band, threshold)
        for _ in range(draws)
    ]
    return round(float(np.mean([f["ece_alert_band"] for f in found])), 4)


def calibration_figures(
    result: TrainingResult,
    train_frame: pd.DataFrame,
    columns: list[str],
    folds: Folds,
    test: pd.DataFrame,
    labels_known_at: pd.Timestamp,
) -> tuple[dict[str, object], dict[str, np.ndarray], float]:
    """ECE overall and in the alerted band, alerts, AUC and AP of the uncalibrated model and
    of Platt on every validation row, on the mature rows, and on the mature rows with their
    labels' completeness (the stored model), each at the threshold raising the stored
    model's alerts; their test scores; the stored threshold."""
    assert result.uncalibrated is not None
    x = train_frame[columns].to_numpy(np.float64)
    y_train = train_frame["is_fraud"].to_numpy().astype(int)
    best = result.ablation[result.imbalance]
    every_row, mature = (
        calibrate(
            train_frame, x, y_train, folds, best, labels_known_at, mature=m, labels_complete=True
        )
        for m in (False, True)
    )
    raw_threshold = result.calibration.uncalibrated_threshold(result.threshold)
    variants = {"uncalibrated": (result.uncalibrated, raw_threshold)}
    for name, found in (("all_validation_rows", every_row), ("mature_rows", mature)):
        model = calibrated(result.uncalibrated, found)
        variants[name] = (model, found.calibrated_threshold(raw_threshold))
    variants["mature_rows_weighted"] = (result.model, result.threshold)
    x_test = test[columns].to_numpy(np.float64)
    y = test["is_fraud"].to_numpy().astype(int)
    out: dict[str, object] = {
        "calibration": result.calibration.params(),
        "calibration_all_validation_rows": {"a": every_row.a, "b": every_row.b},
        "calibration_mature_rows": {"a": mature.a, "b": mature.b},
    }
    scores: dict[str, np.ndarray] = {}
    for name, (model, threshold) in variants.items():
        s = np.asarray(model.predict_proba(x_test)[:, 1], dtype=np.float64)
        scores[name] = s
        out[name] = {
            **{k: round(v, 5) for k, v in calibration_errors(y, s, threshold).items()},
            "alerts": int((s >= threshold).sum()),
            "auc": float(roc_auc_score(y, s)),
            "ap": float(average_precision_score(y, s)),
        }
    out["ece_alert_band_noise_floor"] = calibration_noise_floor(
        scores["mature_rows_weighted"], result.threshold
    )
    return out, scores, result.threshold


def plot(rows: list[dict[str, object]], path: Path) -> None:
    """AP per regime and column set: the bar is the mean over seeds, a dot each seed."""
    regimes = list(dict.fromkeys(str(r["regime"]) for r in rows))
    sets = list(column_sets())
    seeds = sorted({int(r["seed"]) for r in rows})  # type: ignore[call-overload]
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    width = 0.8 / len(sets)
    for i, name in enumerate(sets):
        x = np.arange(len(regimes)) + i * width
        values = [
            [float(r["ap"]) for r in rows if r["regime"] == g and r["set"] == name]  # type: ignore[arg-type]
            for g in regimes
        ]
        bars = ax.bar(x, [np.mean(v) for v in values], width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
        for xi, v in zip(x, values, strict=True):
            ax.scatter([xi] * len(v), v, color="black", s=8, zorder=3)
    low = min(float(r["ap"]) for r in rows)  # type: ignore[arg-type]
    bottom = max(0.0, np.floor(low * 20) / 20 - 0.05)
    ax.set_xticks(np.arange(len(regimes)) + width * (len(sets) - 1) / 2, regimes)
    ax.set(ylabel=f"average precision, test period (axis from {bottom:.2f})", ylim=(bottom, 1))
    seeds_text = ", ".join(str(s) for s in seeds)
    ax.set_title(f"Risk features under slow labels (mean of seeds {seeds_text}; dots: each)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=70)
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--seed", type=int, default=5, help="The generator's seed.")
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--sets", default=",".join(column_sets()))
    parser.add_argument("--plot", type=Path)
    parser.add_argument(
        "--reliability-dir", type=Path, help="Save reliability-<regime>.png of the mature set."
    )
    parser.add_argument(
        "--history", type=Path, help="A history of your own instead of the generated regimes."
    )
    parser.add_argument(
        "--bound",
        action="store_true",
        help="Also train today's columns and the instant-label risks on every label (a bound).",
    )
    parser.add_argument(
        "--reach-only",
        action="store_true",
        help="Print each regime's card-level known-fraud reach and stop (no training).",
    )
    parser.add_argument(
        "--from-output",
        type=Path,
        help="Plot and tabulate the JSON lines of an earlier run's output instead of running.",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=Path.home() / ".cache" / "fraudstream" / "bench"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.regimes.split(",")) - set(REGIMES))
    if unknown:
        parser.error(f"unknown regime(s) {', '.join(unknown)}; known: {', '.join(REGIMES)}")
    sets = {k: v for k, v in column_sets().items() if k in args.sets.split(",")}
    if args.from_output:
        lines = args.from_output.read_text().splitlines()
        report([json.loads(line) for line in lines if line.startswith("{")], args.plot)
        return
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    print(f"maturity delay: {MATURITY_DELAY_S / 86400:g} days", flush=True)
    rows: list[dict[str, object]] = []
    for regime, txns, labels, days in histories(args):
        reach = card_signal_reach(txns, labels)
        print(json.dumps({"regime": regime, "card_known_fraud": reach}), flush=True)
        if args.reach_only:
            continue
        start = txns["event_time"].min().floor("D")
        delays = label_delays(txns, labels)
        t0 = time.perf_counter()
        features = build_features(txns, labels)
        print(
            f"{regime}: {len(txns):,} transactions, fraud label delays {delays}; "
            f"features {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        test_days, delay_days = 7, 7
        split = TimeSplit(start, days - test_days - delay_days, delay_days, test_days)
        runs = [(name, columns, features, labels) for name, columns in sets.items()]
        if args.bound:
            known = instant(txns, labels)
            runs += [
                (TODAY_ALL_LABELS, column_sets()["today"], features, known),
                (BOUND, column_sets()["mature"], build_features(txns, known), known),
            ]
        frames: dict[tuple[int, int], tuple[pd.DataFrame, pd.DataFrame, Folds]] = {}
        for name, columns, built, targets in runs:
            if (id(built), id(targets)) not in frames:
                # Training targets: ``targets`` as known at the cutoff. The test rows are the
                # same for every run: the regime's labels decide which cards are blocked.
                train_frame = training_rows(built, targets, split)
                test = attach_labels(holdout_rows(built, labels, split), labels)
                folds = validation_folds(train_frame, split, 3)
                frames[(id(built), id(targets))] = (train_frame, test, folds)
            train_frame, test, folds = frames[(id(built), id(targets))]
            t0 = time.perf_counter()
            result = train(
                train_frame,
                columns,
                folds,
                args.candidates,
                arms=("scale_pos_weight",),
                labels_known_at=split.test_start,
            )
            scores = result.model.predict_proba(test[columns].to_numpy(np.float64))[:, 1]
            found = evaluate(test, scores, result.threshold)
            row = {
                "seed": args.seed,
                "regime": regime,
                "set": name,
                "auc": round(found["auc_roc"], 4),
                "ap": round(found["average_precision"], 4),
                "cp_at_100": round(found["card_precision_at_100"], 4),
                "f2": round(found["f2"], 4),
                "recall_per_scenario": {
                    k: round(v, 3) for k, v in found["recall_per_scenario"].items()
                },
                "merchant_gain_share": merchant_gain_share(result.model, columns),
                "test_frauds": found["frauds"],
                "training_frauds_known": int(train_frame["is_fraud"].sum()),
                "label_delays": delays,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            figures, scores, threshold = calibration_figures(
                result, train_frame, columns, folds, test, split.test_start
            )
            row.update(figures)
            if args.reliability_dir and name == "mature":
                y = test["is_fraud"].to_numpy()
                shown = {
                    "calibrated: mature rows, weighted (stored)": scores["mature_rows_weighted"],
                    "calibrated: mature rows": scores["mature_rows"],
                    "calibrated: all validation rows": scores["all_validation_rows"],
                    "uncalibrated": scores["uncalibrated"],
                }
                figure = plots.reliability(y, shown, threshold)
                figure.savefig(args.reliability_dir / f"reliability-{regime}.png", dpi=80)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if not args.reach_only:
        report(rows, args.plot)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)


def report(rows: list[dict[str, object]], plot_path: Path | None) -> None:
    """The Markdown table of ``rows`` and, with ``plot_path``, the plot."""
    print("\n| seed | regime | features | AUC | AP | AP - today | CP@100 | F2 |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        today = next(
            (
                r
                for r in rows
                if (r["seed"], r["regime"], r["set"]) == (row["seed"], row["regime"], "today")
            ),
            {"ap": float("nan")},  # --sets without today
        )
        diff = float(row["ap"]) - float(today["ap"])  # type: ignore[arg-type]
        print(
            f"| {row['seed']} | {row['regime']} | {row['set']} | {row['auc']:.4f} | "
            f"{row['ap']:.4f} | {diff:+.4f} | {row['cp_at_100']:.4f} | {row['f2']:.4f} |"
        )
    if plot_path:
        plot(rows, plot_path)
    if rows and "mature_rows" in rows[0]:
        print(
            "\nECE alert band noise floor (stored scores, labels drawn from them): "
            + ", ".join(f"{r['regime']} {r.get('ece_alert_band_noise_floor')}" for r in rows)
        )
        print("\n| regime | features | calibration | ECE | ECE alert band | alerts | AUC | AP |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for row in rows:
            for variant in (
                "uncalibrated",
                "all_validation_rows",
                "mature_rows",
                "mature_rows_weighted",
            ):
                found: dict[str, float] = row[variant]  # type: ignore[assignment]
                print(
                    f"| {row['regime']} | {row['set']} | {variant.replace('_', ' ')} | "
                    f"{found['ece']:.4f} | {found['ece_alert_band']:.4f} | {found['alerts']} | "
                    f"{found['auc']:.6f} | {found['ap']:.6f} |"
                )


if __name__ == "__main__":
    main()
