"""Run a job: check its servers and topics, build its Flink environment, execute it.

`run` blocks until the job ends; the same entry point serves `python -m pipelines.<job>`,
`souk pipelines run NAME` (the local mini-cluster) and `flink run -py pipelines/<job>.py`
(a real cluster: PyFlink's environment is then the cluster's).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.common.checkpoints import latest_checkpoint
from pipelines.common.context import JobContext
from pipelines.common.environment import (
    execution_environment,
    flink_configuration,
    prepare_process_environment,
)
from pipelines.common.errors import PipelineError
from pipelines.common.job import Job
from souk.settings import Settings, get_settings
from souk.stack.endpoints import resolve_url
from souk.stack.errors import StackError

if TYPE_CHECKING:
    from pyflink.common import JobClient

_LOG = logging.getLogger("souk.pipelines")
#: How long the broker and Redis get to answer the pre-flight check.
PREFLIGHT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Servers:
    """The servers a job talks to."""

    kafka_bootstrap: str
    redis_url: str


def servers(settings: Settings) -> Servers:
    """The broker and Redis of ``settings`` (configured URLs, else the running local stack)."""
    try:
        return Servers(resolve_url(settings, "kafka"), resolve_url(settings, "redis"))
    except StackError as error:
        raise PipelineError(str(error)) from None


def preflight(job: Job, settings: Settings, where: Servers) -> None:
    """Fail fast, in one line, if the broker, a source topic or Redis is missing.

    Creates the job's sink topics when they are missing.
    """
    import redis

    from transactional.shared.kafka import create_topics, existing_topics

    try:
        present = existing_topics(where.kafka_bootstrap, timeout=PREFLIGHT_TIMEOUT_S)
    except Exception as error:
        raise PipelineError(
            f"{job.name}: Kafka at {where.kafka_bootstrap} is unreachable ({error})"
        ) from None
    wanted = [topic for topic in _source_topics(job, settings) if topic not in present]
    if wanted:
        raise PipelineError(
            f"{job.name}: missing source topic(s) {', '.join(wanted)} on "
            f"{where.kafka_bootstrap} (run `souk up`, which creates them)"
        )
    for topic, config in job.sink_topics(settings).items():
        if topic not in present:
            create_topics(
                where.kafka_bootstrap,
                [topic],
                partitions=settings.kafka_partitions,
                replication_factor=settings.kafka_replication_factor,
                config=config,
            )
    try:
        client = redis.Redis.from_url(where.redis_url, socket_timeout=PREFLIGHT_TIMEOUT_S)
        client.ping()
        client.close()
    except Exception as error:
        raise PipelineError(f"{job.name}: Redis is unreachable ({error})") from None


def _source_topics(job: Job, settings: Settings) -> list[str]:
    from schemas.registry import topic_for

    return [topic_for(d, r) for d in job.source_domains for r in settings.regions]


def submit(
    job: Job,
    settings: Settings,
    where: Servers | None = None,
    *,
    rest_port: int | None = None,
    resume: bool = True,
) -> JobClient:
    """Build ``job`` and submit it (mini-cluster, or the cluster `flink run` targets).

    Resumes from the job's latest retained checkpoint when there is one (``resume``).
    """
    where = where or servers(settings)
    preflight(job, settings, where)
    prepare_process_environment()
    from pyflink.table import StreamTableEnvironment

    resume_from = latest_checkpoint(settings, job.name) if resume else None
    if resume_from:
        _LOG.info("%s: resuming from %s", job.name, resume_from)
    conf = flink_configuration(settings, job.name, rest_port=rest_port, resume_from=resume_from)
    env = execution_environment(conf, settings)
    t_env = StreamTableEnvironment.create(env)
    ctx = JobContext(
        name=job.name,
        settings=settings,
        kafka_bootstrap=where.kafka_bootstrap,
        redis_url=where.redis_url,
        env=env,
        t_env=t_env,
        statements=t_env.create_statement_set(),
    )
    job.define(ctx)
    if ctx.has_datastream:
        ctx.statements.attach_as_datastream()
        return env.execute_async(f"souk-{job.name}")
    result = ctx.statements.execute()
    client = result.get_job_client()
    if client is None:
        raise PipelineError(f"{job.name}: Flink returned no job client")
    return client


def run(job: Job, settings: Settings, *, rest_port: int | None = None) -> None:
    """Submit ``job`` and block until it ends; raise PipelineError if it fails."""
    client = submit(job, settings, rest_port=rest_port)
    _LOG.info("%s: running as Flink job %s", job.name, client.get_job_id())
    try:
        client.get_job_execution_result().result()
    except Exception as error:
        raise PipelineError(f"{job.name}: the job failed: {_root_cause(error)}") from None


def _root_cause(error: BaseException) -> str:
    """The innermost Java cause of a Py4J error, in one line."""
    text = str(error)
    causes = [line for line in text.splitlines() if "Caused by:" in line]
    line = causes[-1].split("Caused by:", 1)[1].strip() if causes else text.splitlines()[0]
    return line[:500]


def main(job: Job, argv: list[str] | None = None) -> None:
    """Command line of a job module: ``python -m pipelines.<job> [--rest-port N]``."""
    parser = argparse.ArgumentParser(prog=f"pipelines.{job.name}", description=job.description)
    parser.add_argument("--rest-port", type=int, default=None, help="Mini-cluster REST port.")
    parser.add_argument(
        "--detached", action="store_true", help="Submit (to SOUK_FLINK_URL) and return at once."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.detached:
            client = submit(job, get_settings())
            print(f"{job.name}: submitted as Flink job {client.get_job_id()}")
            return
        run(job, get_settings(), rest_port=args.rest_port)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


__all__ = ["PipelineError", "Servers", "main", "preflight", "run", "servers", "submit"]
