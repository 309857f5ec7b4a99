"""The exported Airflow DAG file: it compiles, and run against a stub ``airflow`` package
(Airflow 2's and Airflow 3's module layouts) it builds the DAG the definitions describe."""

from __future__ import annotations

import ast
import runpy
import shlex
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer.main

from jobs.airflow_export import export_airflow, most_frequent_schedule, souk_entry_file
from jobs.definitions import DEFINITIONS
from jobs.schedule import JobDefinition
from souk.jobs_cli import NOT_DUE_EXIT, jobs_app
from souk.settings import Settings

# A stand-in for the part of Airflow the DAG file touches. Like Airflow, it refuses keyword
# arguments it does not know (Airflow 3 dropped schedule_interval, for one) and records the
# DAG, its tasks and the edges ``>>`` draws.
STUB_CORE = """
import datetime

DAGS = []
_ACTIVE = []
_DAG_ARGS = {"dag_id", "description", "schedule", "start_date", "catchup", "max_active_runs",
             "default_args", "tags", "doc_md"}
_TASK_ARGS = {"task_id", "bash_command", "trigger_rule", "skip_on_exit_code", "doc_md", "env",
              "retries", "retry_delay", "execution_timeout"}
_DEFAULT_ARGS = {"owner", "depends_on_past", "retries", "retry_delay", "execution_timeout"}
_TRIGGER_RULES = {"all_success", "all_failed", "all_done", "one_success", "one_failed",
                  "none_failed", "none_skipped", "none_failed_min_one_success", "always"}


class DAG:
    def __init__(self, dag_id, **kwargs):
        unknown = set(kwargs) - _DAG_ARGS
        if unknown:
            raise TypeError(f"DAG got unexpected arguments {sorted(unknown)}")
        if set(kwargs.get("default_args", {})) - _DEFAULT_ARGS:
            raise TypeError("unknown default_args")
        if not isinstance(kwargs.get("start_date"), datetime.datetime):
            raise TypeError("start_date must be a datetime")
        if kwargs["start_date"].tzinfo is None:
            raise TypeError("start_date must be timezone-aware")
        self.dag_id = dag_id
        self.kwargs = kwargs
        self.tasks = {}
        DAGS.append(self)

    def __enter__(self):
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc_info):
        _ACTIVE.pop()


class BashOperator:
    def __init__(self, *, task_id, bash_command, **kwargs):
        unknown = set(kwargs) - _TASK_ARGS
        if unknown:
            raise TypeError(f"BashOperator got unexpected arguments {sorted(unknown)}")
        if kwargs.get("trigger_rule", "all_success") not in _TRIGGER_RULES:
            raise ValueError(f"unknown trigger rule {kwargs['trigger_rule']}")
        if not _ACTIVE:
            raise RuntimeError("BashOperator outside a DAG")
        self.dag = _ACTIVE[-1]
        if task_id in self.dag.tasks:
            raise ValueError(f"duplicate task id {task_id}")
        self.dag.tasks[task_id] = self
        self.task_id = task_id
        self.bash_command = bash_command
        self.kwargs = kwargs
        self.upstream = set()

    def __rshift__(self, other):
        for task in other if isinstance(other, list) else [other]:
            if task.dag is not self.dag:
                raise ValueError("edge across DAGs")
            task.upstream.add(self.task_id)
        return other
"""

LAYOUTS = {
    "airflow2": ["airflow/operators/__init__.py", "airflow/operators/bash.py"],
    "airflow3": [
        "airflow/providers/__init__.py",
        "airflow/providers/standard/__init__.py",
        "airflow/providers/standard/operators/__init__.py",
        "airflow/providers/standard/operators/bash.py",
    ],
}


def _forget_airflow() -> None:
    for name in [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]:
        del sys.modules[name]


@pytest.fixture(params=sorted(LAYOUTS))
def stub_airflow(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A stub ``airflow`` package on sys.path (this test only), in one Airflow version's layout."""
    root = tmp_path / "stub"
    (root / "airflow").mkdir(parents=True)
    (root / "airflow" / "_stub.py").write_text(STUB_CORE)
    # Only what real Airflow exports where it exports it: DAG at the top, BashOperator in
    # the version's own module.
    (root / "airflow" / "__init__.py").write_text("from airflow._stub import DAG, DAGS\n")
    for module in LAYOUTS[request.param]:
        path = root / module
        path.parent.mkdir(parents=True, exist_ok=True)
        bash = module.endswith("bash.py")
        path.write_text("from airflow._stub import BashOperator\n" if bash else "")
    _forget_airflow()
    monkeypatch.syspath_prepend(str(root))
    yield request.param
    _forget_airflow()


def run_dag_file(text: str, tmp_path: Path) -> Any:
    """Execute the DAG file as Airflow's DagBag would (a fresh module); the one DAG it made."""
    path = tmp_path / "souk_lake.py"
    path.write_text(text)
    runpy.run_path(str(path), run_name="souk_lake_dag")
    import airflow  # the stub

    assert len(airflow.DAGS) == 1
    return airflow.DAGS[0]


def definition(
    name: str, *depends_on: str, schedule: str = "15 * * * *", spark: bool = False
) -> JobDefinition:
    return JobDefinition(
        name=name,
        description=f"{name} does 'quoted' things\nover two lines",
        schedule=schedule,
        target=f"tests.jobs:{name}",
        inputs=(f"in/{name}",),
        outputs=(f"out/{name}",),
        depends_on=depends_on,
        spark=spark,
    )


TEST_DEFINITIONS = (
    definition("silver", spark=True),
    definition("gold", "silver", spark=True),
    definition("train", "gold", schedule="15 2 * * *"),
    definition("embed", "train", schedule="15 2 * * *"),
    definition("features", "gold"),
    definition("weekly", "gold", "features", schedule="0 3 * * 1"),
)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_file_parses_compiles_and_imports_only_airflow(settings: Settings) -> None:
    text = export_airflow(TEST_DEFINITIONS, settings)
    tree = ast.parse(text)
    compile(tree, "souk_lake.py", "exec")
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {
        "__future__",
        "datetime",
        "airflow",
        "airflow.operators.bash",
        "airflow.providers.standard.operators.bash",
    }
    assert export_airflow(TEST_DEFINITIONS, settings) == text  # deterministic: diffable


def test_the_dag_matches_the_definitions(
    stub_airflow: str, settings: Settings, tmp_path: Path
) -> None:
    dag = run_dag_file(export_airflow(TEST_DEFINITIONS, settings), tmp_path)
    bash_module = {
        "airflow2": "airflow.operators.bash",
        "airflow3": "airflow.providers.standard.operators.bash",
    }[stub_airflow]
    assert bash_module in sys.modules

    assert dag.dag_id == "souk_lake"
    assert dag.kwargs["schedule"] == "15 * * * *"
    assert dag.kwargs["catchup"] is False
    assert dag.kwargs["max_active_runs"] == 1
    defaults = dag.kwargs["default_args"]
    assert defaults["retries"] >= 1
    assert isinstance(defaults["retry_delay"], timedelta) and defaults["retry_delay"] > timedelta(0)

    assert list(dag.tasks) == ["silver", "gold", "train", "embed", "features", "weekly"]
    commands = {name: task.bash_command for name, task in dag.tasks.items()}
    assert commands == {
        "silver": "souk jobs run silver",  # no spark master: spark jobs run in-process too
        "gold": "souk jobs run gold",
        "train": "souk jobs run train --if-due",  # not the DAG's cron: gated by its own
        "embed": "souk jobs run embed --if-due",
        "features": "souk jobs run features",
        "weekly": "souk jobs run weekly --if-due",
    }
    upstream = {name: task.upstream for name, task in dag.tasks.items()}
    assert upstream == {d.name: set(d.depends_on) for d in TEST_DEFINITIONS}
    for task in dag.tasks.values():
        # Not due → exit 99 → skipped; a skipped upstream must not block a due job.
        assert task.kwargs["skip_on_exit_code"] == NOT_DUE_EXIT
        assert task.kwargs["trigger_rule"] == "none_failed"
    assert "over two lines" in dag.tasks["train"].kwargs["doc_md"]
    assert "15 2 * * *" in dag.tasks["train"].kwargs["doc_md"]


def test_spark_jobs_go_through_spark_submit_when_a_master_is_set(
    stub_airflow: str, tmp_path: Path
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, spark_master="spark://spark master:7077", spark_driver_memory="2g"
    )
    dag = run_dag_file(export_airflow(TEST_DEFINITIONS, settings), tmp_path)
    argv = shlex.split(dag.tasks["gold"].bash_command)
    assert argv[:4] == ["spark-submit", "--master", "spark://spark master:7077", "--name"]
    assert argv[argv.index("--driver-memory") + 1] == "2g"
    entry = argv.index(souk_entry_file())
    assert Path(argv[entry]).is_file() and argv[entry].endswith("souk/__main__.py")
    assert argv[entry + 1 :] == ["jobs", "run", "gold"]
    assert dag.tasks["train"].bash_command == "souk jobs run train --if-due"  # not Spark


def test_every_generated_command_is_one_the_cli_accepts(settings: Settings) -> None:
    text = export_airflow(DEFINITIONS, settings)
    commands = [
        node.value.value
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.keyword)
        and node.arg == "bash_command"
        and isinstance(node.value, ast.Constant)
    ]
    assert len(commands) == len(DEFINITIONS)
    group = typer.main.get_command(jobs_app)
    for command in commands:
        souk, jobs, *args = shlex.split(command)
        assert (souk, jobs) == ("souk", "jobs")
        subcommand = group.commands[args[0]]  # type: ignore[attr-defined]
        context = subcommand.make_context(args[0], args[1:])  # parses, runs nothing
        assert context.params["name"] in {d.name for d in DEFINITIONS}


def test_the_platform_definitions_export_with_their_edges(
    stub_airflow: str, settings: Settings, tmp_path: Path
) -> None:
    dag = run_dag_file(export_airflow(DEFINITIONS, settings), tmp_path)
    assert set(dag.tasks) == {d.name for d in DEFINITIONS}
    assert {n: t.upstream for n, t in dag.tasks.items()} == {
        d.name: set(d.depends_on) for d in DEFINITIONS
    }
    assert dag.kwargs["schedule"] == most_frequent_schedule(DEFINITIONS)


def test_the_most_frequent_cron_wins_ties_go_to_the_first() -> None:
    crons = ["0 3 * * *", "0 * * * *", "*/5 * * * *", "30 * * * *"]
    assert (
        most_frequent_schedule([definition(f"j{i}", schedule=c) for i, c in enumerate(crons)])
        == "*/5 * * * *"
    )
    hourly = [definition("a", schedule="30 * * * *"), definition("b", schedule="0 * * * *")]
    assert most_frequent_schedule(hourly) == "30 * * * *"
    monthly_vs_weekly = [
        definition("m", schedule="0 0 1 * *"),
        definition("w", schedule="0 0 * * 0"),
    ]
    assert most_frequent_schedule(monthly_vs_weekly) == "0 0 * * 0"


def test_stub_really_checks_what_the_file_passes(stub_airflow: str, tmp_path: Path) -> None:
    # The stub must refuse what real Airflow refuses, or the tests above prove nothing.
    bad = textwrap.dedent(
        """
        import datetime
        from airflow import DAG
        with DAG(dag_id="x", schedule_interval="@daily",
                 start_date=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)):
            pass
        """
    )
    with pytest.raises(TypeError, match="schedule_interval"):
        run_dag_file(bad, tmp_path)
