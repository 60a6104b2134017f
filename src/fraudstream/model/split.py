"""Time-ordered splits: train / delay / test, and prequential validation folds.

All boundaries are event-time instants (tz-aware UTC, day-aligned by the caller).
The delay period between train and test stands for the time labels take to
arrive: training targets use only labels known at the start of the test period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class TimeSplit:
    """``[train_start, train_end)``, then ``delay_days``, then ``[test_start, test_end)``."""

    train_start: pd.Timestamp
    train_days: int
    delay_days: int
    test_days: int

    @property
    def train_end(self) -> pd.Timestamp:
        return self.train_start + self.train_days * DAY

    @property
    def test_start(self) -> pd.Timestamp:
        return self.train_end + self.delay_days * DAY

    @property
    def test_end(self) -> pd.Timestamp:
        return self.test_start + self.test_days * DAY

    def as_dict(self) -> dict[str, str | int]:
        return {
            "train_start": self.train_start.isoformat(),
            "train_days": self.train_days,
            "delay_days": self.delay_days,
            "test_days": self.test_days,
        }


def default_split(
    event_time: pd.Series, train_days: int = 21, delay_days: int = 7, test_days: int = 7
) -> TimeSplit:
    """A split starting at the first whole day of the data."""
    start = event_time.min().floor("D")
    return TimeSplit(start, train_days, delay_days, test_days)


def train_rows(frame: pd.DataFrame, split: TimeSplit) -> pd.DataFrame:
    """Rows of the training period, in event-time order."""
    times = frame["event_time"]
    return frame[(times >= split.train_start) & (times < split.train_end)]


def refit_rows(frame: pd.DataFrame, split: TimeSplit) -> pd.DataFrame:
    """Rows of the training and delay periods (every row before the test period), in
    event-time order: what ``--final-fit recent`` refits on, with the labels known
    at the end of the test period. No row of the test period is among them."""
    times = frame["event_time"]
    return frame[(times >= split.train_start) & (times < split.test_start)]


def known_compromised(labels: pd.DataFrame, card_of: pd.Series, before: pd.Timestamp) -> set[str]:
    """Cards with a fraud label whose ``label_time`` is before ``before``.

    ``card_of`` maps transaction_id -> card_id.
    """
    frauds = labels[labels["is_fraud"].astype(bool) & (labels["label_time"] < before)]
    cards = card_of.reindex(frauds["transaction_id"]).dropna()
    return set(cards.astype(str))


def holdout_rows(frame: pd.DataFrame, labels: pd.DataFrame, split: TimeSplit) -> pd.DataFrame:
    """Rows of the test period, without cards already known compromised before each test day.

    A card whose fraud was known before day *d* would be blocked by then, so its
    day-*d* transactions are left out: they would flatter the model.
    """
    times = frame["event_time"]
    test = frame[(times >= split.test_start) & (times < split.test_end)]
    card_of = frame.set_index("transaction_id")["card_id"]
    keep = pd.Series(True, index=test.index)
    for day in range(split.test_days):
        day_start = split.test_start + day * DAY
        in_day = (test["event_time"] >= day_start) & (test["event_time"] < day_start + DAY)
        known = known_compromised(labels, card_of, day_start)
        keep &= ~(in_day & test["card_id"].isin(known))
    return test[keep]


def prequential_folds(
    event_time: pd.Series, n_folds: int, fold_days: int, delay_days: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train positions, validation positions) pairs, most recent validation block first.

    Fold *k* validates on the ``fold_days`` block ending ``k * fold_days`` days
    before the end of the data and trains on everything before that block
    minus ``delay_days``: validation always lies in the future of its training
    rows, as in production. Positions index ``event_time`` (0-based), so the
    pairs can be passed as ``cv`` to scikit-learn's searches.
    """
    end = event_time.max().floor("D") + DAY
    folds = []
    for k in range(n_folds):
        val_end = end - k * fold_days * DAY
        val_start = val_end - fold_days * DAY
        train_end = val_start - delay_days * DAY
        val = np.flatnonzero(((event_time >= val_start) & (event_time < val_end)).to_numpy())
        train = np.flatnonzero((event_time < train_end).to_numpy())
        if len(train) == 0 or len(val) == 0:
            raise ValueError(
                f"prequential fold {k} is empty: {n_folds} folds of {fold_days} days with a "
                f"{delay_days}-day delay need more training days"
            )
        folds.append((train, val))
    return folds
