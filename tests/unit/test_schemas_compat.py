"""Schema evolution: committed JSON Schemas are current and the code stays backward compatible.

The committed files under ``schemas/json/`` are the contract other teams consume. Two
baselines are checked: the working tree (catches "changed a struct, forgot to export") and
git ``HEAD`` (catches "changed a struct incompatibly, then re-exported to hide it").
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest

from schemas.common import LineItem
from schemas.compat import (
    check_against,
    check_backward_compatible,
    load_schema_dir,
    load_schemas_from_git,
    main,
)
from schemas.export import (
    ENVELOPE_FILENAME,
    JSON_DIR,
    current_schemas,
    expected_files,
    export_all,
    filename_for,
)
from schemas.orders import OrderPlaced
from schemas.payments import PaymentFailed
from schemas.registry import REGISTRY

# -- the committed files ----------------------------------------------------------------


def test_every_registered_event_has_a_committed_schema_file() -> None:
    committed = {path.name for path in JSON_DIR.glob("*.json")}
    missing = {filename_for(spec) for spec in REGISTRY.specs()} - committed
    assert not missing, f"run `python -m schemas.export` and commit: {sorted(missing)}"
    assert ENVELOPE_FILENAME in committed


def test_committed_schema_files_match_what_export_generates_now() -> None:
    stale = [
        name
        for name, text in expected_files().items()
        if not (JSON_DIR / name).exists() or (JSON_DIR / name).read_text(encoding="utf-8") != text
    ]
    assert not stale, (
        f"schemas changed; check compatibility, then `python -m schemas.export`: {stale}"
    )


def test_current_schemas_are_backward_compatible_with_the_committed_files() -> None:
    baseline = load_schema_dir(JSON_DIR)
    assert baseline, "no committed schemas found"
    assert check_against(baseline) == []


def test_current_schemas_are_backward_compatible_with_git_head() -> None:
    # Re-exporting the files cannot hide a breaking change: HEAD's copies are the baseline.
    baseline = load_schemas_from_git("HEAD")
    assert baseline, "no schemas/json at git HEAD (is this a git checkout with git installed?)"
    assert check_against(baseline) == []


def test_every_committed_file_is_checked_against_a_registered_spec() -> None:
    names = set(load_schema_dir(JSON_DIR))
    assert names == set(current_schemas())  # no orphaned (unregistered) versions


def test_export_all_writes_canonical_files(tmp_path: Path) -> None:
    paths = export_all(tmp_path)
    assert {path.name for path in paths} == set(expected_files())
    text = (tmp_path / "order.placed.v1.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.startswith('{\n  "$defs"')
    assert export_all(tmp_path) == paths  # idempotent


def test_check_against_reports_orphans_and_bad_names() -> None:
    schema = current_schemas()["order.paid.v1.json"]
    problems = check_against({"order.paid.v7.json": schema, "notes.json": schema})
    assert problems == [
        "notes.json: not a schema file name (<event_type>.v<N>.json)",
        "order.paid.v7.json: order.paid v7 is committed but no longer registered",
    ]


def test_compat_cli_passes_on_the_committed_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(JSON_DIR)]) == 0
    assert "0 violation(s)" in capsys.readouterr().out


def test_compat_cli_fails_on_a_breaking_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export_all(tmp_path)
    path = tmp_path / "order.paid.v1.json"
    path.write_text(
        path.read_text(encoding="utf-8").replace('"payment_id"', '"payment_ref"'), encoding="utf-8"
    )
    assert main(["--dir", str(tmp_path)]) == 1
    assert "order.paid.v1.json: $.payment_ref: property removed" in capsys.readouterr().out


# -- the checker on synthetic schemas ---------------------------------------------------


def obj(
    properties: dict[str, Any], required: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], **extra}


BASE = obj(
    {
        "id": {"type": "string", "minLength": 1},
        "qty": {"type": "integer", "minimum": 1},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "status": {"enum": ["a", "b", "c"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    ["id", "qty", "status"],
)


def changed(**properties: Any) -> dict[str, Any]:
    new = copy.deepcopy(BASE)
    for name, schema in properties.items():
        if schema is None:
            del new["properties"][name]
        else:
            new["properties"][name] = schema
    return new


def test_identical_schemas_are_compatible() -> None:
    assert check_backward_compatible(BASE, copy.deepcopy(BASE)) == []


def test_removing_a_property_is_a_violation() -> None:
    new = changed(note=None)
    assert check_backward_compatible(BASE, new) == ["$.note: property removed"]


def test_removing_a_required_property_is_a_violation() -> None:
    new = changed(qty=None)
    new["required"].remove("qty")
    assert check_backward_compatible(BASE, new) == ["$.qty: property removed"]


def test_changing_a_property_type_is_a_violation() -> None:
    new = changed(qty={"type": "string"})
    assert check_backward_compatible(BASE, new) == ["$.qty: type changed from integer to string"]


def test_integer_to_number_counts_as_a_type_change() -> None:
    new = changed(qty={"type": "number", "minimum": 1})
    assert check_backward_compatible(BASE, new) == ["$.qty: type changed from integer to number"]


def test_adding_a_required_property_is_a_violation() -> None:
    new = changed(colour={"type": "string"})
    new["required"].append("colour")
    assert check_backward_compatible(BASE, new) == ["$.colour: new required property"]


def test_making_an_optional_property_required_is_a_violation() -> None:
    new = copy.deepcopy(BASE)
    new["required"].append("note")
    assert check_backward_compatible(BASE, new) == ["$.note: optional property became required"]


def test_adding_an_optional_property_is_compatible() -> None:
    new = changed(colour={"type": "string", "default": "red"})
    assert check_backward_compatible(BASE, new) == []


def test_relaxing_required_to_optional_is_compatible() -> None:
    new = copy.deepcopy(BASE)
    new["required"].remove("qty")
    assert check_backward_compatible(BASE, new) == []


def test_narrowing_an_enum_is_a_violation() -> None:
    new = changed(status={"enum": ["a", "c"]})
    assert check_backward_compatible(BASE, new) == ["$.status: enum narrowed, removed ['b']"]


def test_widening_an_enum_is_compatible() -> None:
    assert check_backward_compatible(BASE, changed(status={"enum": ["a", "b", "c", "d"]})) == []


def test_restricting_a_free_string_to_an_enum_is_a_violation() -> None:
    new = changed(id={"type": "string", "minLength": 1, "enum": ["x"]})
    assert check_backward_compatible(BASE, new) == ["$.id: now restricted to enum ['x']"]


def test_annotations_do_not_matter() -> None:
    new = changed(id={"type": "string", "minLength": 1, "description": "new words", "title": "Id"})
    assert check_backward_compatible(BASE, new) == []


def test_dropping_null_from_an_optional_is_a_violation() -> None:
    new = changed(note={"type": "string"})
    assert check_backward_compatible(BASE, new) == [
        "$.note: type changed from string | null to string"
    ]


def test_widening_to_a_union_is_compatible() -> None:
    new = changed(qty={"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]})
    assert check_backward_compatible(BASE, new) == []


def test_array_item_type_change_is_a_violation() -> None:
    new = changed(tags={"type": "array", "items": {"type": "integer"}})
    assert check_backward_compatible(BASE, new) == ["$.tags[]: type changed from string to integer"]


def test_tightening_constraints_is_a_violation_and_relaxing_is_not() -> None:
    tighter = changed(qty={"type": "integer", "minimum": 2}, id={"type": "string", "minLength": 3})
    assert check_backward_compatible(BASE, tighter) == [
        "$.id: constraint minLength tightened from 1 to 3",
        "$.qty: constraint minimum tightened from 1 to 2",
    ]
    looser = changed(qty={"type": "integer", "minimum": 0}, id={"type": "string"})
    assert check_backward_compatible(BASE, looser) == []
    pattern = changed(id={"type": "string", "minLength": 1, "pattern": "^[a-z]+$"})
    assert check_backward_compatible(BASE, pattern) == [
        "$.id: pattern changed from None to '^[a-z]+$'"
    ]


def test_forbidding_additional_properties_is_a_violation() -> None:
    new = copy.deepcopy(BASE)
    new["additionalProperties"] = False
    assert check_backward_compatible(BASE, new) == [
        "$: additional properties are no longer allowed"
    ]


def test_map_value_type_change_is_a_violation() -> None:
    old = obj({"attrs": {"type": "object", "additionalProperties": {"type": "string"}}})
    new = obj({"attrs": {"type": "object", "additionalProperties": {"type": "integer"}}})
    assert check_backward_compatible(old, new) == ["$.attrs.*: type changed from string to integer"]


def with_defs(root: dict[str, Any], **defs: dict[str, Any]) -> dict[str, Any]:
    return {"$ref": "#/$defs/Root", "$defs": {"Root": root, **defs}}


def test_refs_are_resolved_on_both_sides_for_nested_changes() -> None:
    money = obj({"amount": {"type": "integer"}, "currency": {"type": "string"}}, ["amount"])
    old = with_defs(obj({"price": {"$ref": "#/$defs/Money"}}, ["price"]), Money=money)
    # The new side inlines the object and renames nothing else: still compatible...
    inlined = {"$defs": {}, **obj({"price": copy.deepcopy(money)}, ["price"])}
    assert check_backward_compatible(old, inlined) == []
    # ...but a nested retype behind a renamed $def is found.
    retyped = copy.deepcopy(money)
    retyped["properties"]["amount"] = {"type": "string"}
    new = with_defs(obj({"price": {"$ref": "#/$defs/Price"}}, ["price"]), Price=retyped)
    assert check_backward_compatible(old, new) == [
        "$.price.amount: type changed from integer to string"
    ]


def test_recursive_schemas_terminate() -> None:
    node = obj(
        {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
        },
        ["name"],
    )
    tree: dict[str, Any] = {"$ref": "#/$defs/Node", "$defs": {"Node": node}}
    assert check_backward_compatible(tree, copy.deepcopy(tree)) == []
    broken = copy.deepcopy(tree)
    broken["$defs"]["Node"]["properties"]["name"] = {"type": "integer"}
    assert check_backward_compatible(tree, broken) == [
        "$.name: type changed from string to integer"
    ]


def test_unresolvable_ref_raises() -> None:
    with pytest.raises(ValueError, match="unresolvable"):
        check_backward_compatible({"$ref": "#/$defs/Missing"}, BASE)


# -- the checker on structs derived from real payloads ----------------------------------


def derive(
    base: type[msgspec.Struct],
    *,
    drop: tuple[str, ...] = (),
    retype: dict[str, Any] | None = None,
    add: tuple[tuple[Any, ...], ...] = (),
) -> type[msgspec.Struct]:
    """A copy of ``base`` with fields dropped, retyped or added (same name, new struct)."""
    retype = retype or {}
    fields: list[Any] = []
    for field in msgspec.structs.fields(base):
        if field.name in drop:
            continue
        annotation = retype.get(field.name, field.type)
        if field.default is not msgspec.NODEFAULT:
            fields.append((field.name, annotation, field.default))
        elif field.default_factory is not msgspec.NODEFAULT:
            fields.append(
                (field.name, annotation, msgspec.field(default_factory=field.default_factory))
            )
        else:
            fields.append((field.name, annotation))
    fields.extend(add)
    return msgspec.defstruct(
        f"{base.__name__}_{uuid.uuid4().hex[:6]}", fields, kw_only=True, frozen=True
    )


def schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    return msgspec.json.schema(struct)


ORDER_PLACED = schema(OrderPlaced)


def test_an_unchanged_derived_struct_is_compatible() -> None:
    assert check_backward_compatible(ORDER_PLACED, schema(derive(OrderPlaced))) == []


def test_derived_struct_removing_a_field_fails() -> None:
    new = schema(derive(OrderPlaced, drop=("customer_id",)))
    assert check_backward_compatible(ORDER_PLACED, new) == ["$.customer_id: property removed"]


def test_derived_struct_retyping_a_field_fails() -> None:
    new = schema(derive(OrderPlaced, retype={"customer_id": int}))
    assert check_backward_compatible(ORDER_PLACED, new) == [
        "$.customer_id: type changed from string to integer"
    ]


def test_derived_struct_retyping_a_nested_line_field_fails() -> None:
    line = derive(LineItem, retype={"quantity": str})
    new = schema(derive(OrderPlaced, retype={"lines": list[line]}))  # type: ignore[valid-type]
    assert "$.lines[].quantity: type changed from integer to string" in check_backward_compatible(
        ORDER_PLACED, new
    )


def test_derived_struct_adding_a_required_field_fails() -> None:
    new = schema(derive(OrderPlaced, add=(("gift_wrap", bool),)))
    assert check_backward_compatible(ORDER_PLACED, new) == ["$.gift_wrap: new required property"]


def test_derived_struct_adding_an_optional_field_passes() -> None:
    new = schema(
        derive(OrderPlaced, add=(("gift_wrap", bool, False), ("gift_note", str | None, None)))
    )
    assert check_backward_compatible(ORDER_PLACED, new) == []


def test_derived_struct_making_an_optional_field_required_fails() -> None:
    new = derive(OrderPlaced, drop=("checkout_id",), add=(("checkout_id", str),))
    assert check_backward_compatible(ORDER_PLACED, schema(new)) == [
        "$.checkout_id: optional property became required",
        "$.checkout_id: type changed from string | null to string",
    ]


def test_derived_struct_narrowing_an_enum_fails() -> None:
    old = schema(PaymentFailed)
    new = schema(derive(PaymentFailed, retype={"stage": Literal["authorization"]}))
    assert check_backward_compatible(old, new) == ["$.stage: enum narrowed, removed ['capture']"]


def test_every_registered_payload_is_compatible_with_itself() -> None:
    for spec in REGISTRY.specs():
        assert check_backward_compatible(schema(spec.payload_type), schema(spec.payload_type)) == []


def test_load_schemas_from_git_reads_a_committed_revision(tmp_path: Path) -> None:
    git = shutil.which("git")
    assert git is not None, "git is required to check schemas against committed revisions"
    json_dir = tmp_path / "schemas" / "json"
    export_all(json_dir)

    def run(*args: str) -> None:
        subprocess.run(
            [
                git,
                "-C",
                str(tmp_path),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                *args,
            ],
            check=True,
            capture_output=True,
        )

    run("init", "-q")
    run("add", ".")
    run("commit", "-q", "-m", "baseline")
    (json_dir / "order.paid.v1.json").write_text("{}", encoding="utf-8")  # uncommitted edit
    baseline = load_schemas_from_git("HEAD", json_dir)
    assert set(baseline) == set(expected_files())
    assert baseline == current_schemas()  # HEAD content, not the working tree
    assert load_schemas_from_git("no-such-ref", json_dir) == {}
