"""Train/test splits of interaction tables.

``time_split`` is the honest one for the shop: train on what happened before a cut, test on
what came after, as a model trained tonight is used tomorrow. ``per_user_split`` is the random
75/25 per-user split of the published MovieLens benchmarks, for comparability only.

The gold table holds one row per (customer, product) with its last interaction time, so a
pair seen both before and after the cut lands in the test set only (its strength then also
counts the earlier events): the split is at pair level, which is what top-k evaluation asks
(did we recommend a product the customer had not touched before?).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from models.recommenders.artifact import ITEM_COL, TIME_COL, USER_COL


@dataclass(frozen=True)
class Split:
    """A train and a test interaction table (same columns)."""

    train: pd.DataFrame
    test: pd.DataFrame

    def relevant(self) -> dict[str, set[str]]:
        """Test items of each test user: what a good model recommends."""
        return _items_by_user(self.test)

    def seen(self) -> dict[str, list[str]]:
        """Train items of each user: excluded from recommendations (not news to the user)."""
        return {user: sorted(items) for user, items in _items_by_user(self.train).items()}

    def catalog(self) -> list[str]:
        """Every item of train and test (the denominator of catalog coverage)."""
        ids = pd.concat([self.train[ITEM_COL], self.test[ITEM_COL]]).astype(str).unique()
        return sorted(ids)

    def describe(self) -> dict[str, int]:
        """Sizes: users, items, train and test rows."""
        return {
            "users": int(pd.concat([self.train[USER_COL], self.test[USER_COL]]).nunique()),
            "items": len(self.catalog()),
            "train_rows": len(self.train),
            "test_rows": len(self.test),
            "test_users": int(self.test[USER_COL].nunique()),
        }


def time_split(
    interactions: pd.DataFrame,
    cut: datetime | pd.Timestamp,
    *,
    time_col: str = TIME_COL,
    warm_users_only: bool = True,
) -> Split:
    """Train on rows before ``cut``, test on rows at or after it.

    With ``warm_users_only`` the test keeps only users present in train: a collaborative model
    cannot rank anything for a user it never saw (cold start is served by other means).
    """
    times = pd.to_datetime(interactions[time_col], utc=True)
    cut_at = _as_utc(cut)
    before = (times < cut_at).to_numpy()
    train = interactions.loc[before].reset_index(drop=True)
    test = interactions.loc[~before]
    if warm_users_only:
        test = test[test[USER_COL].isin(set(train[USER_COL]))]
    return Split(train, test.reset_index(drop=True))


def cut_at_fraction(
    interactions: pd.DataFrame, test_fraction: float = 0.2, *, time_col: str = TIME_COL
) -> pd.Timestamp:
    """The time that leaves the latest ``test_fraction`` of the rows after it."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    times = pd.to_datetime(interactions[time_col], utc=True)
    return pd.Timestamp(times.quantile(1 - test_fraction))


def per_user_split(
    interactions: pd.DataFrame,
    *,
    test_fraction: float = 0.25,
    seed: int = 42,
) -> Split:
    """A random split of each user's rows: round((1 - f)·n) to train, the rest to test.

    This is the stratified split of the published MovieLens figures (75/25 per user): every
    user appears in train, users with a single row stay entirely in train.
    """
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    frame = interactions.reset_index(drop=True)
    # A random key per row, ranked within its user, shuffles every user's rows at once.
    order = pd.DataFrame(
        {"user": frame[USER_COL].to_numpy(), "key": rng.random(len(frame))}
    ).sort_values(["user", "key"], kind="stable")
    rank = order.groupby("user", sort=False).cumcount().to_numpy()
    sizes = order.groupby("user", sort=False)["key"].transform("size").to_numpy()
    in_train = np.empty(len(frame), dtype=bool)
    in_train[order.index.to_numpy()] = rank < np.round(sizes * (1 - test_fraction))
    return Split(
        frame.loc[in_train].reset_index(drop=True), frame.loc[~in_train].reset_index(drop=True)
    )


def _items_by_user(frame: pd.DataFrame) -> dict[str, set[str]]:
    """{user: set of items} of an interaction table (ids as str)."""
    if frame.empty:
        return {}
    grouped = frame.assign(
        **{USER_COL: frame[USER_COL].astype(str), ITEM_COL: frame[ITEM_COL].astype(str)}
    ).groupby(USER_COL)[ITEM_COL]
    return {str(user): set(items) for user, items in grouped}


def _as_utc(moment: datetime | pd.Timestamp) -> pd.Timestamp:
    """``moment`` as a UTC timestamp (naive values are taken as UTC)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
