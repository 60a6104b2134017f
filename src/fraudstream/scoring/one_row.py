"""One row through XGBoost's C functions: the API's scoring path, inside ``scoring.model.score``.

For one row, the Python wrapper around XGBoost's prediction (JSON configs built per
call, type dispatch, output arrays) costs more than the trees. ``OneRow`` makes the
same library calls with the configs encoded once; ``score`` sends every one-row
matrix of an XGBoost model through it, the stream's as well as the API's.
"""

from __future__ import annotations

import ctypes
import json
import math
from typing import Any

import numpy as np

from fraudstream.adapters.registry import IncompatibleModelError

_FLOATS = ctypes.POINTER(ctypes.c_float)
_SHAPE = ctypes.POINTER(ctypes.c_uint64)  # xgboost's bst_ulong


def one_row_path(model: Any, names: list[str], version: str) -> OneRow | None:
    """The one-row path of an XGBoost model (None for another kind), which then predicts on
    one thread.

    The one-row matrix carries no feature names and the booster does not compare them on
    each call (reading every name back from the library cost more than the attribution
    itself): the booster's columns are checked against ``names`` once, here, and a model
    trained on others is refused (``IncompatibleModelError``).
    """
    get_booster = getattr(model, "get_booster", None)
    if get_booster is None:
        return None
    booster = get_booster()
    trained_on = booster.feature_names
    if trained_on is not None and list(trained_on) != names:
        raise IncompatibleModelError(
            f"model version {version} expects other feature columns than the catalogue"
        )
    booster.set_param({"nthread": 1})
    return OneRow(booster, len(names))


class OneRow:
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
        self._row_type = ctypes.c_float * columns  # a row's contributions, bias left out
        probe = np.zeros((1, columns), dtype=np.float64)
        self._interface = json.dumps({**probe.__array_interface__, "data": [0, False]})
        if self._interface_of(probe) != json.dumps(probe.__array_interface__).encode():
            raise RuntimeError("numpy's array interface is not the one this scorer fills in")

    def _interface_of(self, x: np.ndarray) -> bytes:
        pointer = x.__array_interface__["data"][0]
        return self._interface.replace('"data": [0,', f'"data": [{pointer},', 1).encode()

    def matrix(self, x: np.ndarray) -> Matrix:
        """A one-row ``DMatrix`` handle (the library copies the row), freed on exit."""
        if x.shape != (1, self.columns) or x.dtype != np.float64 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float64).reshape(1, self.columns)
        handle = ctypes.c_void_p()
        self._check(
            self.lib.XGDMatrixCreateFromDense(
                self._interface_of(x), self._matrix_config, ctypes.byref(handle)
            )
        )
        return Matrix(self.lib, handle)

    def score(self, matrix: Matrix) -> float:
        """The row's score: the library's float32, read as the float ``predict_proba`` gives."""
        return float(self._predict(matrix, self._SCORE, 1)[0])

    def contributions(self, matrix: Matrix, exact: bool) -> np.ndarray:
        """The row's contributions without the bias column, shape (1, columns)."""
        kind = self._CONTRIBS_EXACT if exact else self._CONTRIBS_APPROX
        preds = self._predict(matrix, kind, self.columns + 1)
        values = self._row_type.from_address(ctypes.addressof(preds.contents))
        return np.frombuffer(memoryview(values), dtype=np.float32).reshape(1, self.columns).copy()

    def _predict(self, matrix: Matrix, kind: int, length: int) -> Any:
        """The library's output buffer (``length`` float32 values). The library owns it until
        the next prediction: the caller reads or copies it at once."""
        preds = _FLOATS()
        shape = _SHAPE()
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
        return preds

    def _check(self, code: int) -> None:
        if code != 0:
            from xgboost.core import XGBoostError

            raise XGBoostError(self.lib.XGBGetLastError().decode())


class Matrix:
    def __init__(self, lib: Any, handle: ctypes.c_void_p) -> None:
        self.lib, self.handle = lib, handle

    def __enter__(self) -> Matrix:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.lib.XGDMatrixFree(self.handle)
