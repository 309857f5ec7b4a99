"""The Spark session of a batch job: ``local[*]`` by default, ``SOUK_SPARK_MASTER`` when set.

Under ``spark-submit`` the master and resources come from the command line; the builder's
``getOrCreate`` then returns that session and the settings here only fill what is unset.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from souk.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_session(settings: Settings, app_name: str) -> SparkSession:
    """A Spark session for ``app_name`` on the configured master (local[*] by default)."""
    # Workers must run this interpreter (pandas UDFs, MLlib's Python side): the venv's.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # Loopback, as every local server of the stack (the host name may resolve elsewhere).
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if "spark.master" not in os.environ.get("SPARK_SUBMIT_OPTS", "") and not _submitted():
        builder = builder.master(settings.spark_master or "local[*]")
    builder = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.local.dir", str(settings.state_dir / "spark-tmp"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if settings.spark_quick_jvm and not settings.spark_master and not _submitted():
        # A short-lived local JVM on small data (tests, the demo): the C1 JIT alone runs
        # its jobs ~1.5-3x faster than waiting for C2 to warm up; long jobs want C2.
        builder = builder.config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _submitted() -> bool:
    """True inside spark-submit (it sets the master through the JVM's system properties)."""
    return "SPARK_ENV_LOADED" in os.environ or "PYSPARK_GATEWAY_PORT" in os.environ
