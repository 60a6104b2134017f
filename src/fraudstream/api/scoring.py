"""One transaction scored synchronously, with exactly the features the stream computes.

The card's and merchant's current states come from the online store (the stream
publishes them after every micro-batch). The features are computed by the same
``update_card``/``update_merchant``/``transaction_features`` the stream and the
offline builder run, on decoded *copies*: nothing is written back, so a what-if
score never changes the stream's state. A transaction older than its card's latest
one is scored the way the stream scores late data: on the current state.

The model runs in-process on one thread: the booster's prediction on a one-row
``DMatrix`` (the score ``predict_proba`` gives) and ``pred_contribs`` on the same matrix
for the top three reasons (largest positive contributions to the fraud log-odds),
computed as the stream computes them: exact TreeSHAP for an alert (what an analyst
reads), the path attribution (``approx_contribs``, 2.5x cheaper for one row) for a pass.
Both go straight to XGBoost's C functions (``_OneRow``): for one row, the Python
wrapper around them (JSON configs built per call, type dispatch, output arrays) cost
more than the trees.
"""

from __future__ import annotations

import ctypes
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraudstream.adapters.online_store import States
from fraudstream.adapters.registry import IncompatibleModelError
from fraudstream.features.card import update_card
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import TxnEvent
from fraudstream.features.merchant import update_merchant
from fraudstream.features.vector import feature_vector
from fraudstream.scoring.model import top_reasons


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float | None
    contribution: float


@dataclass(frozen=True)
class Decision:
    transaction_id: str
    score: float
    threshold: float
    decision: str  # "alert" | "pass"
    reason_codes: list[Reason]
    model_version: str
    feature_set_version: str
    features: dict[str, float | None]


def features_on(txn: TxnEvent, states: States) -> tuple[float, ...]:
    """The catalogue-ordered features of ``txn`` on the given states (consumed: pass copies)."""
    _, card = update_card(states.card, txn)
    _, merchant = update_merchant(states.merchant, txn)
    return feature_vector(txn, card, merchant)


class Scorer:
    """A loaded model ready for single-row scoring. Thread-safe (XGBoost predict is).

    An XGBoost model is asked through one ``DMatrix`` per row for both the score and
    the reasons. The matrix carries no feature names and the booster does not compare
    them on each call (reading every name back from the library cost more than the
    attribution itself): the columns are checked against the catalogue once, here.
    """

    def __init__(self, model: Any, version: str, threshold: float, fsv: str) -> None:
        self.model, self.version, self.threshold = model, version, threshold
        self.feature_set_version = fsv
        self.names = feature_names()
        get_booster = getattr(model, "get_booster", None)
        self.booster = get_booster() if get_booster is not None else None
        self._one_row: _OneRow | None = None
        if self.booster is not None:
            self.booster.set_param({"nthread": 1})
            trained_on = self.booster.feature_names
            if trained_on is not None and list(trained_on) != self.names:
                raise IncompatibleModelError(
                    f"model version {version} expects other feature columns than the catalogue"
                )
            self._one_row = _OneRow(self.booster, len(self.names))

    def probability(self, x: np.ndarray) -> float:
        """The fraud probability of one row, as ``predict_proba`` gives it."""
        if self._one_row is not None:
            with self._one_row.matrix(x) as matrix:
                return self._one_row.score(matrix)
        return float(self.model.predict_proba(x)[0, 1])

    def reasons(self, x: np.ndarray, exact: bool = True) -> list[Reason]:
        """The one row's top reasons, ranked as the stream ranks them.

        ``exact``: TreeSHAP; otherwise the path attribution.
        """
        if self._one_row is None:
            return []
        with self._one_row.matrix(x) as matrix:
            return _reasons(self._one_row.contributions(matrix, exact), x)

    def decide(self, txn: TxnEvent, states: States) -> Decision:
        values = features_on(txn, states)
        x = np.asarray(values, dtype=np.float64).reshape(1, -1)
        if self._one_row is not None:
            with self._one_row.matrix(x) as matrix:
                score = self._one_row.score(matrix)
                alert = score >= self.threshold
                reasons = _reasons(self._one_row.contributions(matrix, exact=alert), x)
        else:
            score = self.probability(x)
            alert = score >= self.threshold
            reasons = []
        return Decision(
            transaction_id=txn.transaction_id,
            score=score,
            threshold=self.threshold,
            decision="alert" if alert else "pass",
            reason_codes=reasons,
            model_version=self.version,
            feature_set_version=FEATURE_SET_VERSION,
            features={n: _nullable(v) for n, v in zip(self.names, values, strict=True)},
        )


def _reasons(contribs: np.ndarray, x: np.ndarray) -> list[Reason]:
    return [Reason(f, _nullable(v), c) for f, v, c in top_reasons(contribs, x)[0]]


class _OneRow:
    """One row through XGBoost's C functions, with the arguments ``Booster.predict`` passes.

    ``DMatrix(x, missing=nan, nthread=1)`` is ``XGDMatrixCreateFromDense`` on the row's
    array interface; ``Booster.predict(matrix, ...)`` is ``XGBoosterPredictFromDMatrix``
    with a JSON config. Here the configs are encoded once, the interface is filled in
    from a template, and the outputs are read where the library left them: the same
    calls on the same data, so the same floats (a unit test compares with
    ``predict_proba`` and ``pred_contribs``), without the wrapper's per-call work.
    """

    _SCORE, _CONTRIBS_EXACT, _CONTRIBS_APPROX = 0, 2, 3  # Booster.predict's "type"

    def __init__(self, booster: Any, columns: int) -> None:
        from xgboost.core import _LIB

        self.lib, self.booster, self.columns = _LIB, booster, columns
        self.handle = booster.handle
        self._matrix_config = json.dumps(
            {"missing": math.nan, "nthread": 1, "data_split_mode": 0}
        ).encode()
        self._configs = {
            kind: json.dumps(
                {
                    "type": kind,
                    "training": False,
                    "iteration_begin": 0,
                    "iteration_end": 0,
                    "strict_shape": False,
                }
            ).encode()
            for kind in (self._SCORE, self._CONTRIBS_EXACT, self._CONTRIBS_APPROX)
        }
        probe = np.zeros((1, columns), dtype=np.float64)
        self._interface = json.dumps({**probe.__array_interface__, "data": [0, False]})
        if self._interface_of(probe) != json.dumps(probe.__array_interface__).encode():
            raise RuntimeError("numpy's array interface is not the one this scorer fills in")

    def _interface_of(self, x: np.ndarray) -> bytes:
        pointer = x.__array_interface__["data"][0]
        return self._interface.replace('"data": [0,', f'"data": [{pointer},', 1).encode()

    def matrix(self, x: np.ndarray) -> _Matrix:
        """A one-row ``DMatrix`` handle (the library copies the row), freed on exit."""
        if x.shape != (1, self.columns) or x.dtype != np.float64 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float64).reshape(1, self.columns)
        handle = ctypes.c_void_p()
        self._check(
            self.lib.XGDMatrixCreateFromDense(
                self._interface_of(x), self._matrix_config, ctypes.byref(handle)
            )
        )
        return _Matrix(self.lib, handle)

    def score(self, matrix: _Matrix) -> float:
        return float(self._predict(matrix, self._SCORE, 1)[0])

    def contributions(self, matrix: _Matrix, exact: bool) -> np.ndarray:
        """The row's contributions without the bias column, shape (1, columns)."""
        kind = self._CONTRIBS_EXACT if exact else self._CONTRIBS_APPROX
        out = self._predict(matrix, kind, self.columns + 1)
        return out[: self.columns].reshape(1, self.columns)

    def _predict(self, matrix: _Matrix, kind: int, length: int) -> np.ndarray:
        preds = ctypes.POINTER(ctypes.c_float)()
        shape = ctypes.POINTER(ctypes.c_uint64)()  # xgboost's bst_ulong
        dims = ctypes.c_uint64()
        self._check(
            self.lib.XGBoosterPredictFromDMatrix(
                self.handle,
                matrix.handle,
                self._configs[kind],
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(preds),
            )
        )
        size = 1
        for i in range(dims.value):
            size *= shape[i]
        if size != length:
            raise RuntimeError(f"XGBoost returned {size} values for one row, not {length}")
        # The library owns the buffer until the next prediction: copy it out now.
        return np.ctypeslib.as_array(preds, shape=(length,)).copy()

    def _check(self, code: int) -> None:
        if code != 0:
            from xgboost.core import XGBoostError

            raise XGBoostError(self.lib.XGBGetLastError().decode())


class _Matrix:
    def __init__(self, lib: Any, handle: ctypes.c_void_p) -> None:
        self.lib, self.handle = lib, handle

    def __enter__(self) -> _Matrix:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.lib.XGDMatrixFree(self.handle)


def _nullable(value: float) -> float | None:
    return None if math.isnan(value) else value
