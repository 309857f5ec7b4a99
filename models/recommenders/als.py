"""Implicit-feedback ALS (Hu, Koren & Volinsky): two trainers, one ``FactorModel`` artifact.

``train_implicit`` runs implicit's CPU ALS in-process: the fast local trainer (seconds for
millions of interactions). ``train_spark`` runs Spark MLlib's ALS(implicitPrefs=True): the
cluster trainer when the gold table outgrows one machine. Both read the same gold columns and
produce the same artifact, so serving never knows which one trained the model.

The two libraries scale their hyper-parameters differently (MLlib multiplies the
regularisation by each user's/item's number of interactions and uses confidence 1 + alpha·r;
implicit uses alpha·r as the confidence), so tuned values do not carry over one to one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.recommenders.artifact import (
    ITEM_COL,
    USER_COL,
    VALUE_COL,
    FactorModel,
    IdMap,
    interaction_matrix,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

#: Defaults from grid searches (factors 16-64, regularization 0.05-50, alpha 0.5-6) on
#: MovieLens-100k and on the tests' synthetic Zipf + taste data: both peak at strong
#: regularisation (implicit does not scale it by interaction counts, unlike MLlib).
#: Retune on the real gold table with `souk models evaluate`.
DEFAULT_FACTORS = 64
DEFAULT_REGULARIZATION = 20.0
DEFAULT_ITERATIONS = 15
DEFAULT_ALPHA = 2.0


def train_implicit(
    interactions: pd.DataFrame,
    *,
    factors: int = DEFAULT_FACTORS,
    regularization: float = DEFAULT_REGULARIZATION,
    iterations: int = DEFAULT_ITERATIONS,
    alpha: float = DEFAULT_ALPHA,
    value: str | None = VALUE_COL,
    random_state: int = 0,
    num_threads: int = 0,
) -> FactorModel:
    """Fit implicit's CPU ALS on the user x item CSR of ``value`` (strength by default)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    data = interaction_matrix(interactions, value=value)
    started = time.perf_counter()
    # implicit parallelises itself; a multi-threaded BLAS underneath it oversubscribes the
    # cores and runs ~10x slower (implicit warns about exactly this).
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=random_state,
            num_threads=num_threads,
        )
        model.fit(data.matrix, show_progress=False)
    params: dict[str, Any] = {
        "trainer": "implicit",
        "factors": factors,
        "regularization": regularization,
        "iterations": iterations,
        "alpha": alpha,
        "value": value,
        "random_state": random_state,
        "interactions": int(data.matrix.nnz),
        "fit_s": round(time.perf_counter() - started, 3),
    }
    return FactorModel(
        data.users,
        data.items,
        np.ascontiguousarray(model.user_factors, dtype=np.float32),
        np.ascontiguousarray(model.item_factors, dtype=np.float32),
        params,
    )


def train_spark(
    spark: SparkSession,
    interactions: pd.DataFrame | SparkDataFrame,
    *,
    factors: int = DEFAULT_FACTORS,
    regularization: float = 0.1,  # MLlib's own defaults: not tuned on the gold table yet
    iterations: int = 10,
    alpha: float = 1.0,
    value: str = VALUE_COL,
    seed: int = 0,
    blocks: int | None = None,
) -> FactorModel:
    """Fit Spark MLlib's ALS(implicitPrefs=True) and return the same artifact as implicit's.

    ``interactions`` is a pandas frame (shipped to Spark) or a Spark DataFrame with the gold
    columns (aggregated in Spark; only the distinct ids come to the driver, as the artifact
    needs them anyway). ``blocks`` sets MLlib's user/item blocks (default: the parallelism).
    """
    from pyspark.ml.recommendation import ALS

    ratings, users, items, cached = _indexed_ratings(spark, interactions, value)
    parallelism = blocks or max(1, spark.sparkContext.defaultParallelism)
    als = ALS(
        rank=factors,
        maxIter=iterations,
        regParam=regularization,
        alpha=alpha,
        implicitPrefs=True,
        userCol="u",
        itemCol="i",
        ratingCol="r",
        seed=seed,
        numUserBlocks=parallelism,
        numItemBlocks=parallelism,
    )
    started = time.perf_counter()
    try:
        fitted = als.fit(ratings)
    finally:
        if cached is not None:
            cached.unpersist()
    user_factors = _factor_matrix(fitted.userFactors, len(users), factors)
    item_factors = _factor_matrix(fitted.itemFactors, len(items), factors)
    params: dict[str, Any] = {
        "trainer": "spark-mllib",
        "factors": factors,
        "regularization": regularization,
        "iterations": iterations,
        "alpha": alpha,
        "value": value,
        "seed": seed,
        "blocks": parallelism,
        "fit_s": round(time.perf_counter() - started, 3),
    }
    return FactorModel(users, items, user_factors, item_factors, params)


def _indexed_ratings(
    spark: SparkSession, interactions: pd.DataFrame | SparkDataFrame, value: str
) -> tuple[SparkDataFrame, IdMap, IdMap, SparkDataFrame | None]:
    """(u int, i int, r float) ratings for MLlib, the id maps that number them, and the
    cached frame to release after the fit (None when the ratings came from pandas)."""
    if isinstance(interactions, pd.DataFrame):
        # Same aggregation as the local trainer: one CSR, duplicate pairs summed, zeros dropped.
        data = interaction_matrix(interactions, value=value)
        coo = data.matrix.tocoo()
        frame = pd.DataFrame(
            {
                "u": coo.row.astype(np.int32),
                "i": coo.col.astype(np.int32),
                "r": coo.data.astype(np.float32),
            }
        )
        return spark.createDataFrame(frame), data.users, data.items, None

    from pyspark.sql import functions as f

    # Cached: the id lists and then ALS's own blocking all read the aggregated pairs.
    summed = (
        interactions.groupBy(USER_COL, ITEM_COL)
        .agg(f.sum(f.col(value).cast("float")).alias("r"))
        .where(f.col("r") > 0)
        .cache()
    )
    users = IdMap.from_values(row[0] for row in summed.select(USER_COL).distinct().collect())
    items = IdMap.from_values(row[0] for row in summed.select(ITEM_COL).distinct().collect())
    user_index = spark.createDataFrame(
        pd.DataFrame({USER_COL: users.tolist(), "u": np.arange(len(users), dtype=np.int32)})
    )
    item_index = spark.createDataFrame(
        pd.DataFrame({ITEM_COL: items.tolist(), "i": np.arange(len(items), dtype=np.int32)})
    )
    ratings = (
        summed.join(f.broadcast(user_index), USER_COL)
        .join(f.broadcast(item_index), ITEM_COL)
        .select("u", "i", "r")
    )
    return ratings, users, items, summed


def _factor_matrix(factors_df: SparkDataFrame, rows: int, rank: int) -> npt.NDArray[np.float32]:
    """MLlib's (id, features) rows as a dense float32 matrix in id order."""
    local = cast(pd.DataFrame, factors_df.toPandas())
    matrix = np.zeros((rows, rank), dtype=np.float32)
    if len(local):
        ids = local["id"].to_numpy(dtype=np.int64)
        matrix[ids] = np.stack(local["features"].to_numpy()).astype(np.float32)
    return matrix
