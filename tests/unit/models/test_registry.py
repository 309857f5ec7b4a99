"""The file-based model registry in temp folders: versions, promotion, rollback, atomicity,
reloading of the promoted model; the artifacts it stores; the `souk models` commands."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.recommenders import load_artifact
from models.recommenders.artifact import ArtifactError, FactorModel, IdMap, top_n
from models.recommenders.fbt import FBTModel, train_fbt
from models.recommenders.item_knn import train_item_knn
from models.recommenders.popularity import train_popularity
from models.registry import (
    POINTER_FILE,
    ModelNotFound,
    ModelRegistry,
    PromotedModel,
    RegistryError,
)
from souk.settings import get_settings


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """An empty registry under a temp folder."""
    return ModelRegistry(tmp_path / "models")


def writer(text: str) -> object:
    """A build callable that writes one artifact file."""

    def build(folder: Path) -> None:
        (folder / "model.txt").write_text(text)

    return build


def register(registry: ModelRegistry, kind: str, text: str, **meta: object) -> str:
    """Register a one-file version; its id."""
    return registry.register(kind, writer(text), meta).id  # type: ignore[arg-type]


# -- versions ------------------------------------------------------------------------------


def test_register_writes_the_artifact_and_its_meta(registry: ModelRegistry) -> None:
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    version = registry.register(
        "als",
        writer("v1"),  # type: ignore[arg-type]
        {
            "data_start": start,
            "data_end": end.isoformat(),
            "params": {"factors": 64},
            "metrics": {"precision@10": 0.41},
            "trainer": "implicit",
        },
    )
    assert version.path == registry.root / "als" / version.id
    assert (version.path / "model.txt").read_text() == "v1"
    meta = json.loads((version.path / "meta.json").read_text())
    assert meta["id"] == version.id and meta["kind"] == "als"
    assert meta["params"] == {"factors": 64} and meta["metrics"] == {"precision@10": 0.41}
    assert meta["trainer"] == "implicit"
    again = registry.get("als", version.id)
    assert (again.data_start, again.data_end) == (start, end)
    assert again.created_at == version.created_at
    assert again.extra == {"trainer": "implicit"}


def test_register_copies_a_source_folder(registry: ModelRegistry, tmp_path: Path) -> None:
    source = tmp_path / "built"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    version = registry.register("item_knn", source)
    assert (version.path / "sub" / "weights.bin").read_bytes() == b"\x00\x01"
    assert (source / "sub" / "weights.bin").exists()  # copied, not moved


def test_list_is_oldest_first_per_kind(registry: ModelRegistry) -> None:
    ids = [register(registry, "als", f"v{n}") for n in range(3)]
    register(registry, "fbt", "other")
    assert [v.id for v in registry.list("als")] == ids
    assert registry.latest("als").id == ids[-1]  # type: ignore[union-attr]
    assert registry.kinds() == ["als", "fbt"]
    assert registry.list("popularity") == []
    assert registry.latest("popularity") is None


def test_a_failing_build_leaves_nothing_behind(registry: ModelRegistry) -> None:
    def broken(folder: Path) -> None:
        (folder / "half.npy").write_bytes(b"partial")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        registry.register("als", broken)
    assert registry.list("als") == []
    assert list((registry.root / "als").iterdir()) == []  # no temp folder left


def test_half_written_versions_are_invisible(registry: ModelRegistry) -> None:
    done = register(registry, "als", "complete")
    # What a crash in the middle of a registration leaves: a hidden temp folder.
    temp = registry.root / "als" / ".tmp-20260101T000000Z-abc-1234"
    temp.mkdir()
    (temp / "model.txt").write_text("half")
    (registry.root / "als" / "stray-folder-without-meta").mkdir()
    assert [v.id for v in registry.list("als")] == [done]


def test_the_final_folder_appears_only_by_rename(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_during_build: list[list[str]] = []

    def build(folder: Path) -> None:
        (folder / "model.txt").write_text("x")
        seen_during_build.append([v.id for v in registry.list("als")])

    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renames.append((Path(src).name, Path(dst).name))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    version = registry.register("als", build, version_id="v-fixed")
    assert seen_during_build == [[]]  # while building, nobody sees a version
    assert renames == [(renames[0][0], "v-fixed")] and renames[0][0].startswith(".tmp-")
    assert [v.id for v in registry.list("als")] == [version.id]


def test_names_and_duplicates_are_checked(registry: ModelRegistry) -> None:
    register(registry, "als", "a", params={})
    first = registry.list("als")[0].id
    with pytest.raises(RegistryError, match="already exists"):
        registry.register("als", writer("b"), version_id=first)  # type: ignore[arg-type]
    for bad in ("../escape", "ALS", "", "a/b"):
        with pytest.raises(RegistryError, match="invalid kind"):
            registry.register(bad, writer("x"))  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="may not set id"):
        registry.register("als", writer("x"), {"id": "mine"})  # type: ignore[arg-type]
    with pytest.raises(ModelNotFound):
        registry.get("als", "no-such-version")


# -- promotion and rollback ----------------------------------------------------------------


def test_promote_rollback_walks_the_history(registry: ModelRegistry) -> None:
    v1, v2, v3 = (register(registry, "als", f"v{n}") for n in range(3))
    assert registry.promoted("als") is None
    registry.promote("als", v1)
    registry.promote("als", v2)
    registry.promote("als", v2)  # a no-op: no history entry
    registry.promote("als", v3)
    assert registry.promoted("als").id == v3  # type: ignore[union-attr]
    assert registry.pointer("als").history == (v1, v2)  # type: ignore[union-attr]
    assert registry.rollback("als").id == v2
    assert registry.promoted("als").id == v2  # type: ignore[union-attr]
    assert registry.rollback("als").id == v1
    with pytest.raises(RegistryError, match="no earlier promoted version"):
        registry.rollback("als")
    assert registry.promoted("als").id == v1  # type: ignore[union-attr]


def test_rollback_skips_deleted_versions(registry: ModelRegistry) -> None:
    import shutil

    v1, v2, v3 = (register(registry, "als", f"v{n}") for n in range(3))
    for version in (v1, v2, v3):
        registry.promote("als", version)
    shutil.rmtree(registry.root / "als" / v2)
    assert registry.rollback("als").id == v1


def test_promote_and_rollback_errors(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFound):
        registry.promote("als", "missing")
    with pytest.raises(RegistryError, match="nothing promoted"):
        registry.rollback("als")


def test_the_pointer_is_replaced_atomically(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2 = (register(registry, "als", f"v{n}") for n in range(2))
    registry.promote("als", v1)
    pointer = registry.root / "als" / POINTER_FILE
    before = pointer.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    # A crash before the replace: the old pointer is intact and no temp file lingers.
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        registry.promote("als", v2)
    monkeypatch.undo()
    assert pointer.read_bytes() == before
    assert registry.promoted("als").id == v1  # type: ignore[union-attr]
    assert sorted(p.name for p in (registry.root / "als").iterdir() if p.is_file()) == [
        ".lock",
        POINTER_FILE,
    ]
    inode = pointer.stat().st_ino
    registry.promote("als", v2)
    assert pointer.stat().st_ino != inode  # a new file renamed over the old one, not rewritten


def test_a_pointer_to_a_vanished_version_is_an_error(registry: ModelRegistry) -> None:
    import shutil

    version = register(registry, "als", "v")
    registry.promote("als", version)
    shutil.rmtree(registry.root / "als" / version)
    with pytest.raises(RegistryError, match="no longer exists"):
        registry.promoted("als")


# -- the promoted model follows the pointer ------------------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_promoted_model_reloads_after_a_promotion(registry: ModelRegistry) -> None:
    loads: list[str] = []

    def loader(folder: Path) -> str:
        text = (folder / "model.txt").read_text()
        if text == "broken":
            raise ValueError("corrupt artifact")
        loads.append(text)
        return text

    clock = FakeClock()
    served = PromotedModel(registry, "als", loader, check_every_s=30, clock=clock)
    assert served.get() is None  # nothing promoted yet
    v1, v2, bad = (register(registry, "als", text) for text in ("one", "two", "broken"))
    registry.promote("als", v1)
    assert served.get() is None  # not due yet: the pointer is checked every 30 s
    clock.now += 30
    assert served.get() == "one"
    assert served.version.id == v1  # type: ignore[union-attr]

    registry.promote("als", v2)
    clock.now += 10
    assert served.get() == "one"
    clock.now += 20
    assert served.get() == "two"

    clock.now += 30
    assert served.get() == "two"
    assert loads == ["one", "two"]  # an unchanged pointer is not reloaded

    registry.promote("als", bad)  # a version that fails to load keeps the old one serving
    clock.now += 30
    assert served.get() == "two"

    registry.rollback("als")
    assert served.refresh() is False  # rolled back to v2: already served, nothing to load
    registry.rollback("als")
    assert served.refresh() is True
    assert served.get() == "one"


# -- the artifacts a registry stores -------------------------------------------------------


def tiny_factor_model() -> FactorModel:
    """Two users, three items, rank 2: user a likes x, user b likes z."""
    return FactorModel(
        IdMap.of(["a", "b"]),
        IdMap.of(["x", "y", "z"]),
        np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
        np.array([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]], dtype=np.float32),
        {"trainer": "test"},
    )


def test_factor_model_recommends_and_round_trips(registry: ModelRegistry) -> None:
    model = tiny_factor_model()
    assert [item for item, _ in model.recommend("a", 3)] == ["x", "y", "z"]
    assert [item for item, _ in model.recommend("a", 2, exclude=["x"])] == ["y", "z"]
    assert model.recommend("stranger", 3) == []
    assert model.recommend_many(["a", "b", "c"], 1, {"b": ["z"]}) == {
        "a": ["x"],
        "b": ["y"],
        "c": [],
    }
    assert model.similar_items("x", 1)[0][0] == "y"

    version = registry.register("als", model.save)
    loaded = load_artifact("als", version.path)
    assert isinstance(loaded, FactorModel)
    assert loaded.user_ids.tolist() == ["a", "b"] and loaded.item_ids.tolist() == ["x", "y", "z"]
    assert loaded.user_factors.dtype == np.float32
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
    assert loaded.params == {"trainer": "test"}
    assert loaded.recommend("b", 3) == model.recommend("b", 3)


def test_artifacts_refuse_another_format(tmp_path: Path) -> None:
    tiny_factor_model().save(tmp_path / "als")
    with pytest.raises(ArtifactError, match="format"):
        FBTModel.load(tmp_path / "als")
    with pytest.raises(ArtifactError, match=r"artifact\.json"):
        FactorModel.load(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown model kind"):
        load_artifact("nope", tmp_path / "als")


def test_other_artifacts_round_trip(tmp_path: Path) -> None:
    interactions = pd.DataFrame(
        {
            "customer_id": ["u1", "u1", "u2", "u2", "u3"],
            "product_id": ["x", "y", "x", "y", "z"],
            "strength": [1.0, 2.0, 1.0, 1.0, 3.0],
        }
    )
    knn = train_item_knn(interactions, neighbours=5)
    knn.save(tmp_path / "knn")
    assert load_artifact("item_knn", tmp_path / "knn").similar_items("x") == knn.similar_items("x")
    popularity = train_popularity(interactions)
    popularity.save(tmp_path / "pop")
    assert load_artifact("popularity", tmp_path / "pop").top(3) == popularity.top(3)
    fbt = train_fbt(
        pd.DataFrame({"product_a": ["x"], "product_b": ["y"], "orders": [4]}), min_orders=1
    )
    fbt.save(tmp_path / "fbt")
    assert load_artifact("fbt", tmp_path / "fbt").partners_of("y") == fbt.partners_of("y")


def test_top_n_orders_and_drops_masked_scores() -> None:
    scores = np.array([[0.1, 0.9, -np.inf, 0.5], [-np.inf, -np.inf, 0.2, -np.inf]])
    np.testing.assert_array_equal(top_n(scores, 3), [[1, 3, 0], [2, -1, -1]])
    np.testing.assert_array_equal(top_n(scores[0], 2), [1, 3])


# -- souk models list / promote / rollback -------------------------------------------------


@pytest.fixture
def souk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """SOUK_HOME for the CLI, with the cached settings reset around the test."""
    monkeypatch.setenv("SOUK_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_cli_lists_promotes_and_rolls_back(souk_home: Path) -> None:
    from souk.models_cli import models_app

    registry = ModelRegistry(souk_home / "models")
    v1 = register(registry, "als", "one", metrics={"precision@10": 0.42})
    v2 = register(registry, "als", "two")
    runner = CliRunner()

    result = runner.invoke(models_app, ["promote", "als", v1])
    assert result.exit_code == 0, result.output
    result = runner.invoke(models_app, ["promote", "als", v2])
    assert result.exit_code == 0, result.output
    result = runner.invoke(models_app, ["list", "als", "--json"])
    listed = json.loads(result.output)
    assert [(row["id"], row["promoted"]) for row in listed] == [(v1, False), (v2, True)]
    assert listed[0]["metrics"] == {"precision@10": 0.42}
    # (the table's width is the console's, fixed when the module was first imported)
    result = runner.invoke(models_app, ["list"])
    assert result.exit_code == 0 and "Model versions" in result.output and "als" in result.output

    result = runner.invoke(models_app, ["rollback", "als"])
    assert result.exit_code == 0 and v1 in result.output
    assert registry.promoted("als").id == v1  # type: ignore[union-attr]

    result = runner.invoke(models_app, ["promote", "als", "missing"])
    assert result.exit_code == 1
    result = runner.invoke(models_app, ["rollback", "fbt"])
    assert result.exit_code == 1
