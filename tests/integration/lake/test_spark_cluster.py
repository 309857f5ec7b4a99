"""Silver and gold submitted with spark-submit to a standalone Spark cluster (a Master and a
Worker started from the pyspark wheel), configured through SOUK_SPARK_MASTER and SOUK_HOME as a
production run is: the same gold rows as the local runs.

A missing engine is an error, never a skip.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from jobs.spark.cluster import (
    REPO_ROOT,
    SHORT_JOB_CONF,
    SparkCluster,
    master_state,
    spark_submit,
    start_cluster,
    stop_cluster,
)
from souk.settings import Settings
from tests.integration.lake.conftest import (
    AS_OF,
    assert_gold,
    first_archive,
    lake_store,
    second_archive,
    shop,
)


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """A Master and one Worker (1 core, 1 GiB) under a temp home."""
    home = tmp_path_factory.mktemp("spark-cluster")
    began = time.monotonic()
    try:
        cluster = start_cluster(home)
        print(f"\nSpark cluster {cluster.master_url} up in {time.monotonic() - began:.1f} s")
        yield cluster
    finally:
        began = time.monotonic()
        stop_cluster(home)
        print(f"\nSpark cluster stopped in {time.monotonic() - began:.1f} s")


def test_jobs_submitted_to_a_standalone_cluster_build_the_same_gold_rows(
    spark_cluster: SparkCluster, lake_settings: Settings
) -> None:
    settings = lake_settings
    store = lake_store(settings)
    events = shop()
    first_archive(store, events)
    second_archive(store, events)
    env = {"SOUK_HOME": str(settings.home), "SOUK_SPARK_MASTER": spark_cluster.master_url}

    began = time.monotonic()
    silver = spark_submit(
        spark_cluster.master_url,
        REPO_ROOT / "jobs" / "silver.py",
        ["--full"],
        env,
        conf=SHORT_JOB_CONF,  # short-lived JVMs: C1 JIT only
    )
    silver_s = time.monotonic() - began
    gold = spark_submit(
        spark_cluster.master_url,
        REPO_ROOT / "jobs" / "gold.py",
        ["--full", "--as-of", AS_OF.isoformat()],
        env,
        conf=SHORT_JOB_CONF,
    )
    print(f"silver {silver_s:.1f} s, gold {time.monotonic() - began - silver_s:.1f} s")

    archived = events.first + events.second + events.copied_first + events.copied_second
    assert f"silver: {len(archived)} rows in" in silver.stdout, silver.stdout
    assert "gold/trending_daily" in gold.stdout, gold.stdout
    assert_gold(store, events)
    # Both ran as applications of this cluster (not a local master).
    state = master_state(spark_cluster.web_url) or {}
    finished = {app["name"] for app in state.get("completedapps", [])}
    assert {"souk-silver", "souk-gold"} <= finished, state
