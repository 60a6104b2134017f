"""Training: SMOTE stays inside training folds, the ablation is paired, the model is usable."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE

from fraudstream.features.catalogue import MATURITY_DELAY_S
from fraudstream.model.calibration import margins_of
from fraudstream.model.experiment import fit_params, label_delays
from fraudstream.model.metrics import expected_calibration_error
from fraudstream.model.split import prequential_folds
from fraudstream.model.threshold import DAY, f2_alert_rate, threshold_at_alert_rate
from fraudstream.model.training import (
    EARLY_STOPPING_ROUNDS,
    MAX_ROUNDS,
    MIN_AP_GAIN,
    MISSING_SENTINEL,
    Imbalance,
    TrainingResult,
    base_classifier,
    fit_fold,
    refit,
    search,
    train,
)

START = pd.Timestamp("2026-05-01T00:00:00Z")


def dataset(
    n: int = 3000, seed: int = 4, logit_of: tuple[float, float, float] = (-4.0, 2.0, 1.5)
) -> pd.DataFrame:
    """Row id in column ``rid``; fraud (~5 %) driven by f1 and f2 (the intercept and
    coefficients of ``logit_of``); some NaN in f3; 30 days."""
    rng = np.random.default_rng(seed)
    f1, f2 = rng.normal(size=n), rng.normal(size=n)
    logit = logit_of[0] + logit_of[1] * f1 + logit_of[2] * f2
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    f3 = np.where(rng.uniform(size=n) < 0.3, np.nan, rng.normal(size=n))
    return pd.DataFrame(
        {
            "event_time": START + pd.to_timedelta(np.linspace(0, 30 * 86400, n), unit="s"),
            "rid": np.arange(n, dtype=float),
            "f1": f1,
            "f2": f2,
            "f3": f3,
            "is_fraud": y,
        }
    )


def with_late_labels(frame: pd.DataFrame, median_days: float = 4.0, seed: int = 0) -> pd.DataFrame:
    """Labels arrive after a log-normal delay; ``is_fraud``/``label_time`` as known one day
    after the last row (the cutoff, ``CUTOFF``), the truth kept in ``true_fraud``."""
    rng = np.random.default_rng(seed)
    delay = pd.to_timedelta(rng.lognormal(np.log(median_days), 0.5, len(frame)), unit="D")
    label_time = (frame["event_time"] + delay).where(frame["is_fraud"] == 1)
    known = label_time <= CUTOFF
    return frame.assign(
        true_fraud=frame["is_fraud"],
        is_fraud=known.astype(int),
        label_time=label_time.where(known),
    )


CUTOFF = START + 31 * DAY


class RecordingSMOTE(SMOTE):  # type: ignore[misc]
    """The real SMOTE, remembering the row ids (column 0) of every batch it resamples."""

    seen: ClassVar[list[set[float]]] = []

    def fit_resample(self, x: Any, y: Any, **params: Any) -> Any:
        RecordingSMOTE.seen.append(set(np.asarray(x)[:, 0].tolist()))
        return super().fit_resample(x, y, **params)


def test_smote_only_ever_sees_the_training_rows_of_a_fold() -> None:
    frame = dataset()
    folds = prequential_folds(frame["event_time"], n_folds=3, fold_days=5, delay_days=2)
    x = frame[["rid", "f1", "f2", "f3"]].to_numpy()
    y = frame["is_fraud"].to_numpy()
    RecordingSMOTE.seen.clear()
    search(x, y, folds, "smote", candidates=2, sampler=RecordingSMOTE(random_state=0))
    assert len(RecordingSMOTE.seen) == 2 * len(folds)
    train_sets = [set(frame["rid"].iloc[tr]) for tr, _ in folds]
    val_rows = set().union(*(set(frame["rid"].iloc[va]) for _, va in folds))
    for seen in RecordingSMOTE.seen:
        assert seen in train_sets
        # a validation row of the same fold is never resampled
        fold = train_sets.index(seen)
        assert not seen & set(frame["rid"].iloc[folds[fold][1]])
    assert val_rows - set().union(*RecordingSMOTE.seen)  # recent validation rows never seen


def test_ablation_is_paired_and_keeps_the_better_arm() -> None:
    frame = dataset()
    folds = prequential_folds(frame["event_time"], n_folds=2, fold_days=5, delay_days=2)
    result = train(frame, ["f1", "f2", "f3"], folds, candidates=3)
    arms = result.ablation
    assert set(arms) == {"scale_pos_weight", "smote"}
    assert arms["smote"].candidates == arms["scale_pos_weight"].candidates == 3
    winner = max(arms.values(), key=lambda r: r.best_ap)
    assert result.imbalance == winner.imbalance
    assert result.params == winner.best_params
    assert 0.0 < result.threshold < 1.0
    assert result.validation_ap > 0.3  # the signal is strong; a broken pipeline is near 0.05
    assert result.model.get_params()["n_jobs"] == 1


def test_the_smote_arm_model_scores_rows_with_missing_values() -> None:
    frame = dataset()
    folds = prequential_folds(frame["event_time"], n_folds=2, fold_days=5, delay_days=2)
    result = train(frame, ["f1", "f2", "f3"], folds, candidates=2, arms=("smote",))
    raw = frame[["f1", "f2", "f3"]].to_numpy()
    filled = np.where(np.isnan(raw), MISSING_SENTINEL, raw)
    np.testing.assert_allclose(
        result.model.predict_proba(raw)[:, 1], result.model.predict_proba(filled)[:, 1]
    )
    assert np.isnan(raw).any()
    assert result.imbalance == "smote"
    with pytest.raises(ValueError, match="prequential fold"):
        prequential_folds(frame["event_time"], n_folds=9, fold_days=5, delay_days=2)


def test_successive_halving_tries_every_candidate_on_rungs_with_frauds() -> None:
    frame = dataset(n=6000)
    folds = prequential_folds(frame["event_time"], n_folds=2, fold_days=5, delay_days=2)
    x = frame[["f1", "f2", "f3"]].to_numpy()
    y = frame["is_fraud"].to_numpy()
    found = search(x, y, folds, "scale_pos_weight", candidates=6, halving=True)
    assert found.candidates >= 6  # every candidate on the first rung, survivors again later
    assert found.best_ap > 0.3


def _train_two_folds(frame: pd.DataFrame, arm: Imbalance) -> tuple[Any, TrainingResult]:
    """Two 5-day prequential folds, two candidates of one arm, labels known at CUTOFF."""
    folds = prequential_folds(frame["event_time"], n_folds=2, fold_days=5, delay_days=2)
    result = train(
        frame,
        ["f1", "f2", "f3"],
        folds,
        candidates=2,
        arms=(arm,),
        negatives_per_fraud=3,
        labels_known_at=CUTOFF,
    )
    return folds, result


@pytest.mark.parametrize("arm", ["scale_pos_weight", "smote"])
def test_the_refit_on_all_rows_alerts_at_the_chosen_rate_on_unseen_rows(arm: Imbalance) -> None:
    """Genuine rows are sampled in the search, not in the refit, and SMOTE's density
    differs with the row count: the stored threshold must still mean the chosen alert
    rate for the refitted model, in both imbalance arms."""
    frame = with_late_labels(dataset(n=12_000, seed=6))
    _, result = _train_two_folds(frame, arm)
    assert result.imbalance == arm
    assert result.model.get_booster().num_boosted_rounds() == result.best_iteration
    fresh = dataset(n=6000, seed=7)  # out of sample for every model of the run
    x_fresh = fresh[["f1", "f2", "f3"]].to_numpy()
    refit_rate = np.mean(result.model.predict_proba(x_fresh)[:, 1] >= result.threshold)
    assert result.validation_alert_rate > 0
    assert 0.5 * result.validation_alert_rate <= refit_rate <= 2.0 * result.validation_alert_rate


def test_late_labels_of_the_recent_fold_do_not_drag_the_threshold_down() -> None:
    """The most recent fold has a fraction of its fraud labels at the cutoff; counted as
    they are, the F2-optimal alert rate would be far too low."""
    # a sharper signal than the default: the F2 optimum is then a clear peak
    frame = with_late_labels(dataset(n=12_000, seed=6, logit_of=(-7.0, 2.5, 2.5)))
    folds, result = _train_two_folds(frame, "scale_pos_weight")
    val = folds[0][1]
    known, truth = frame["is_fraud"].to_numpy()[val], frame["true_fraud"].to_numpy()[val]
    assert known.sum() < 0.5 * truth.sum()  # the fold is far from complete
    assert result.validation_folds_used == 1  # it holds enough known frauds alone
    assert result.validation_label_completeness == pytest.approx(
        known.sum() / truth.sum(), abs=0.15
    )
    scores = result.ablation["scale_pos_weight"].fold_scores[0]
    naive, _ = f2_alert_rate([scores], [known.astype(float)])
    complete, _ = f2_alert_rate([scores], [truth.astype(float)])
    chosen = result.validation_alert_rate
    assert naive < 0.75 * complete  # the known labels alone ask for too few alerts
    assert chosen > naive
    assert chosen >= 0.85 * complete
    # The stored threshold gives the refitted model that rate on the fold's rows.
    x_val = frame[["f1", "f2", "f3"]].to_numpy()[val]
    refit = result.model.predict_proba(x_val)[:, 1]
    assert threshold_at_alert_rate(refit, chosen) == pytest.approx(result.threshold)


def _early_stopped_count(curve: list[float]) -> int:
    """Trees kept when validation AP must gain more than MIN_AP_GAIN within
    EARLY_STOPPING_ROUNDS rounds: 1 + the round of the last such gain."""
    best = 0
    for i, value in enumerate(curve):
        if value - MIN_AP_GAIN > curve[best]:
            best = i
        elif i - best >= EARLY_STOPPING_ROUNDS:
            break
    return best + 1


def test_early_stopping_on_the_later_fold_rows_sets_the_tree_count_recorded() -> None:
    """Each fold's count is where validation AP (the fold's later rows) stopped rising,
    far below the cap; the run keeps their mean, the final model has exactly that many
    trees, and the parameters to log say so."""
    frame = dataset(n=8000, seed=9)
    folds = prequential_folds(frame["event_time"], n_folds=2, fold_days=5, delay_days=2)
    x, y = frame[["f1", "f2", "f3"]].to_numpy(), frame["is_fraud"].to_numpy()
    result = train(frame, ["f1", "f2", "f3"], folds, candidates=2, arms=("scale_pos_weight",))
    counts = []
    for train_pos, val_pos in folds:
        assert frame["event_time"].iloc[train_pos].max() < frame["event_time"].iloc[val_pos].min()
        fold = fit_fold(x, y, (train_pos, val_pos), "scale_pos_weight", result.params)
        # the same fit without early stopping, every round's validation AP
        pos_weight = float((y[train_pos] == 0).sum() / (y[train_pos] == 1).sum())
        full = base_classifier("scale_pos_weight", pos_weight, 2)
        full.set_params(**result.params, n_estimators=MAX_ROUNDS)
        full.fit(x[train_pos], y[train_pos], eval_set=[(x[val_pos], y[val_pos])], verbose=False)
        curve = full.evals_result()["validation_0"]["aucpr"]
        assert fold.trees == _early_stopped_count(curve)
        assert fold.trees < MAX_ROUNDS - EARLY_STOPPING_ROUNDS  # it did stop early
        counts.append(fold.trees)
    assert result.best_iteration == round(float(np.mean(counts)))
    assert result.model.get_booster().num_boosted_rounds() == result.best_iteration
    params = fit_params(result)
    assert params["n_trees"] == params["best_iteration"] == result.best_iteration
    assert params["early_stopping_rounds"] == EARLY_STOPPING_ROUNDS
    assert params["max_rounds"] == MAX_ROUNDS
    assert {f"xgb_{k}" for k in result.params} <= set(params)
    assert params["xgb_max_depth"] == result.params["max_depth"]


def test_the_refit_keeps_the_chosen_configuration_on_newer_rows_and_its_alert_rate() -> None:
    """Refitted on other rows (here: ones whose late labels have all arrived), the model
    has the chosen parameters and tree count, is fitted on those rows only, and its
    threshold still means the chosen alert rate on unseen rows."""
    frame = with_late_labels(dataset(n=12_000, seed=6))
    _, result = _train_two_folds(frame, "scale_pos_weight")
    names = ["f1", "f2", "f3"]
    newer = dataset(n=9000, seed=12)  # complete labels, as a week later
    again = refit(
        result,
        newer[names].to_numpy(),
        newer["is_fraud"].to_numpy(),
        frame[names].to_numpy()[result.threshold_rows],
    )
    assert again.model is not result.model
    assert again.params == result.params
    assert again.model.get_booster().num_boosted_rounds() == result.best_iteration
    xgb = again.model.get_params()
    assert all(xgb[k] == pytest.approx(v) for k, v in result.params.items())
    assert (again.final_rows, again.final_frauds) == (9000, int(newer["is_fraud"].sum()))
    assert result.final_rows == len(frame)
    assert again.validation_alert_rate == result.validation_alert_rate
    fresh = dataset(n=6000, seed=7)[names].to_numpy()
    # the calibration found by train is applied to the refitted model
    assert again.calibration == result.calibration
    assert again.uncalibrated is not None
    np.testing.assert_allclose(
        margins_of(again.model, fresh),
        result.calibration.a * margins_of(again.uncalibrated, fresh) + result.calibration.b,
        atol=1e-4,
    )
    rate = np.mean(again.model.predict_proba(fresh)[:, 1] >= again.threshold)
    assert 0.5 * result.validation_alert_rate <= rate <= 2.0 * result.validation_alert_rate


def test_the_model_is_calibrated_on_mature_rows_and_the_threshold_is_on_its_scale() -> None:
    """Platt's map is fitted on the validation rows past the maturity delay only, written
    into the final model (its margins are the map of the uncalibrated model's), the
    threshold gives the chosen alert rate on the calibrated scale, the params say what
    was used, and the calibrated scores' error on fresh rows is far below the weighted
    model's."""
    frame = with_late_labels(dataset(n=12_000, seed=6))
    names = ["f1", "f2", "f3"]
    folds = prequential_folds(frame["event_time"], n_folds=3, fold_days=5, delay_days=2)
    result = train(
        frame, names, folds, candidates=2, arms=("scale_pos_weight",), labels_known_at=CUTOFF
    )
    cal = result.calibration
    mature = CUTOFF - pd.Timedelta(seconds=MATURITY_DELAY_S)
    validation = np.concatenate([v for _, v in folds])
    expected_rows = validation[(frame["event_time"].iloc[validation] <= mature).to_numpy()]
    assert cal.mature_only
    assert cal.rows == len(expected_rows) > 0
    assert cal.frauds == int(frame["is_fraud"].iloc[expected_rows].sum()) >= 10
    assert pd.Timestamp(cal.rows_until) <= mature
    assert cal.estimated_frauds > cal.frauds  # late labels: known frauds stand for more
    assert cal.a > 0
    assert cal.b < 0  # frauds weighed up: the map lowers the scores
    x = frame[names].to_numpy()
    assert result.uncalibrated is not None
    np.testing.assert_allclose(
        margins_of(result.model, x), cal.a * margins_of(result.uncalibrated, x) + cal.b, atol=1e-4
    )
    scores = result.model.predict_proba(x[result.threshold_rows])[:, 1]
    assert np.mean(scores >= result.threshold) == pytest.approx(
        result.validation_alert_rate, abs=1.5 / len(scores)
    )
    params = fit_params(result)
    assert params["calibration_a"] == cal.a
    assert params["calibration_rows"] == cal.rows
    fresh = dataset(n=20_000, seed=8)
    y_fresh = fresh["is_fraud"].to_numpy()
    before = result.uncalibrated.predict_proba(fresh[names].to_numpy())[:, 1]
    after = result.model.predict_proba(fresh[names].to_numpy())[:, 1]
    assert expected_calibration_error(y_fresh, after) < 0.5 * expected_calibration_error(
        y_fresh, before
    )


def test_label_delays_are_the_fraud_labels_lateness_against_the_maturity_delay() -> None:
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    txns = pd.DataFrame({"transaction_id": ["a", "b", "c", "d", "e"], "event_time": [t0] * 5})
    labels = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c", "d", "e"],
            "is_fraud": [True, True, True, True, False],
            "label_time": [t0 + pd.Timedelta(days=d) for d in (1, 7, 20, 60, 0.5)],
        }
    )
    found = label_delays(txns, labels)
    assert found["maturity_delay_days"] == 14
    assert found["fraud_label_delay_p50_days"] == pytest.approx(13.5)  # genuine 'e' left out
    assert found["fraud_labels_within_maturity_delay"] == 0.5
    assert label_delays(txns, labels.iloc[[4]]) == {"maturity_delay_days": 14}
