"""The pictures of a report: PR and ROC curves, score distributions, a reliability
diagram, feature importance, and a SHAP summary (XGBoost's exact tree SHAP
contributions). Figures are returned, not saved: the caller decides where they go.
Built without pyplot, so no GUI backend or global figure state is touched."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve
from xgboost import DMatrix, XGBClassifier

TOP_FEATURES = 15


def curves(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    """Precision-recall and ROC curves of several scorers on the same rows."""
    fig = Figure(figsize=(11, 4.5))
    pr, roc = fig.subplots(1, 2)
    for name, s in scores.items():
        precision, recall, _ = precision_recall_curve(y, s)
        pr.plot(recall, precision, label=name)
        fpr, tpr, _ = roc_curve(y, s)
        roc.plot(fpr, tpr, label=name)
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.legend()
    fig.tight_layout()
    return fig


def score_distribution(y: np.ndarray, scores: np.ndarray, threshold: float) -> Figure:
    """Histograms of genuine and fraud scores (log counts) with the threshold."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    bins = [float(b) for b in np.linspace(0, 1, 51)]
    ax.hist(scores[y == 0], bins=bins, alpha=0.6, label="genuine", log=True)
    ax.hist(scores[y == 1], bins=bins, alpha=0.6, label="fraud", log=True)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="score", ylabel="transactions (log)", title="Score distribution")
    ax.legend()
    fig.tight_layout()
    return fig


# Reliability bins: log-spaced from one score in ten thousand up to 1, so the few rows of
# the alerted band get bins of their own instead of sharing one with most of the traffic.
RELIABILITY_EDGES = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, 17)[:-1], [1.0 + 1e-9]])


def reliability(y: np.ndarray, scores: dict[str, np.ndarray], threshold: float) -> Figure:
    """Observed fraud rate against mean score per score bin (log-log), rows per bin below.

    A calibrated scorer lies on the diagonal; a point below it scores too high, above it
    too low. The threshold (on the first scorer's scale) marks the alerted band.
    """
    fig = Figure(figsize=(7.5, 7.5))
    ax, counts = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for name, s in scores.items():
        which = np.digitize(s, RELIABILITY_EDGES[1:-1])
        rows = np.bincount(which, minlength=len(RELIABILITY_EDGES) - 1)
        kept = rows > 0
        mean_score = np.bincount(which, s, len(rows))[kept] / rows[kept]
        observed = np.bincount(which, y.astype(np.float64), len(rows))[kept] / rows[kept]
        # an observed rate of 0 is drawn at the bottom of the log axis
        (line,) = ax.plot(mean_score, np.maximum(observed, 1e-5), marker="o", label=name)
        counts.plot(mean_score, rows[kept], marker=".", color=line.get_color())
    ax.plot([1e-5, 1], [1e-5, 1], color="grey", linestyle=":", label="perfect calibration")
    for axis in (ax, counts):
        axis.axvline(threshold, color="black", linestyle="--")
    ax.plot([], [], color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set(
        xscale="log",
        yscale="log",
        xlim=(1e-5, 1.2),
        ylim=(1e-5, 1.2),
        ylabel="observed fraud rate (0 drawn at 1e-5)",
        title="Reliability: fraud rate per score bin",
    )
    ax.legend(loc="upper left")
    counts.set(yscale="log", xlabel="mean score in bin", ylabel="rows in bin")
    fig.tight_layout()
    return fig


def feature_importance(model: XGBClassifier, names: list[str]) -> Figure:
    """Total gain per feature, top features."""
    gain: dict[str, Any] = model.get_booster().get_score(importance_type="total_gain")
    by_name = sorted(
        (
            (names[int(k[1:])] if k.startswith("f") and k[1:].isdigit() else k, float(v))
            for k, v in gain.items()
        ),
        key=lambda kv: kv[1],
    )[-TOP_FEATURES:]
    fig = Figure(figsize=(7, 0.35 * len(by_name) + 1.5))
    ax = fig.subplots()
    ax.barh([k for k, _ in by_name], [v for _, v in by_name])
    ax.set(xlabel="total gain", title="Feature importance")
    fig.tight_layout()
    return fig


def shap_values(model: XGBClassifier, x: np.ndarray) -> np.ndarray:
    """Per-row, per-feature SHAP contributions (log-odds), without the bias column."""
    contribs = model.get_booster().predict(DMatrix(x, missing=np.nan), pred_contribs=True)
    return np.asarray(contribs)[:, :-1]


def shap_summary(model: XGBClassifier, x: np.ndarray, names: list[str]) -> Figure:
    """Beeswarm-style summary: SHAP value per row for the most influential features,
    coloured by the feature's value rank (missing in grey)."""
    values = shap_values(model, x)
    order = np.argsort(np.abs(values).mean(axis=0))[-TOP_FEATURES:]
    fig = Figure(figsize=(8, 0.4 * len(order) + 1.5))
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    for row, j in enumerate(order):
        feature = x[:, j]
        rank = np.argsort(np.argsort(np.nan_to_num(feature, nan=-np.inf))) / max(1, len(x) - 1)
        colours = np.where(np.isnan(feature), 0.5, rank)
        jitter = rng.uniform(-0.3, 0.3, len(x))
        ax.scatter(values[:, j], row + jitter, c=colours, cmap="coolwarm", s=3, alpha=0.6)
    ax.set_yticks(range(len(order)), [names[j] for j in order])
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set(xlabel="SHAP value (log-odds)", title="SHAP summary (blue low, red high)")
    fig.tight_layout()
    return fig
