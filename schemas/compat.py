"""Backward-compatibility checks between a committed JSON Schema and the current one.

Rules (a violation is a change that breaks existing producers or consumers):
- removing a property;
- changing a property's type, at any depth (``$ref`` into ``$defs`` resolved on both
  sides); widening to a union that still contains the old type is allowed;
- adding a *required* property, or making an optional property required;
- narrowing an enum (removing allowed values) or restricting a field to an enum;
- tightening a constraint (``minimum``, ``maxLength``, ``pattern``, ``format``...), which
  would reject values that used to be valid;
- forbidding or restricting additional properties that used to be allowed.
Allowed: adding optional properties, relaxing required -> optional, widening enums and
constraints, and any change to annotations (title, description, default, examples).

``python -m schemas.compat [--dir DIR | --git-ref REF]`` checks the registry against a
baseline (default: the committed ``schemas/json/``) and exits non-zero on violations.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from schemas.envelope import Envelope
from schemas.export import ENVELOPE_FILENAME, JSON_DIR, schema_for
from schemas.registry import REGISTRY, SchemaRegistry

__all__ = [
    "check_against",
    "check_backward_compatible",
    "load_schema_dir",
    "load_schemas_from_git",
]

Schema = Mapping[str, Any]

_FILE_RE = re.compile(r"^(?P<event_type>.+)\.v(?P<version>[1-9][0-9]*)\.json$")
_MAX_REF_DEPTH = 64

# (keyword, direction): "min" constraints are tightened when raised, "max" when lowered.
_BOUNDS = (
    ("minimum", "min"),
    ("exclusiveMinimum", "min"),
    ("minLength", "min"),
    ("minItems", "min"),
    ("minProperties", "min"),
    ("maximum", "max"),
    ("exclusiveMaximum", "max"),
    ("maxLength", "max"),
    ("maxItems", "max"),
    ("maxProperties", "max"),
)
# Must be equal (or absent on the new side) to stay compatible.
_EXACT = ("pattern", "format", "multipleOf")


def check_backward_compatible(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Return human-readable violations of ``new`` against ``old`` (empty = compatible)."""
    return _Checker(old, new).check()


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Checker:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self._roots = (old_root, new_root)
        # Pairs of $refs already compared (or being compared): terminates recursive types
        # and reports a shared definition once, at the first path that reaches it.
        self._seen: set[tuple[str | None, str | None]] = set()

    def check(self) -> list[str]:
        return self._compare(self._roots[0], self._roots[1], "$")

    # -- $ref resolution ---------------------------------------------------------------

    @staticmethod
    def _pointer(root: Schema, ref: str) -> Schema:
        if not ref.startswith("#"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        node: Any = root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or key not in node:
                raise ValueError(f"unresolvable $ref {ref!r}")
            node = node[key]
        if not isinstance(node, Mapping):
            raise ValueError(f"$ref {ref!r} does not point at a schema")
        return node

    def _resolve(self, node: Schema, side: int) -> tuple[Schema, str | None]:
        ref_name: str | None = None
        for _ in range(_MAX_REF_DEPTH):
            ref = node.get("$ref")
            if not isinstance(ref, str):
                return node, ref_name
            ref_name = ref
            node = self._pointer(self._roots[side], ref)
        raise ValueError(f"$ref chain deeper than {_MAX_REF_DEPTH} at {ref_name!r}")

    # -- variants: a schema node as a list of single-JSON-type alternatives -------------

    def _variants(self, node: Schema, side: int) -> list[tuple[str, Schema, str | None]]:
        node, ref = self._resolve(node, side)
        alternatives = node.get("anyOf") or node.get("oneOf")
        if isinstance(alternatives, list):
            out = []
            for alternative in alternatives:
                out.extend(self._variants(alternative, side))
            return out
        all_of = node.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            return self._variants(all_of[0], side)
        enum = node.get("enum")
        if enum is None and "const" in node:
            enum = [node["const"]]
        declared = node.get("type")
        if isinstance(declared, str):
            types = [declared]
        elif isinstance(declared, list):
            types = [str(item) for item in declared]
        elif isinstance(enum, list):
            types = list(dict.fromkeys(_json_type(value) for value in enum))
        else:
            return [("any", node, ref)]
        out = []
        for kind in types:
            variant = {**node, "type": kind}
            if isinstance(enum, list):
                variant["enum"] = [value for value in enum if _json_type(value) == kind]
            out.append((kind, variant, ref))
        return out

    # -- comparison --------------------------------------------------------------------

    def _compare(self, old: Schema, new: Schema, path: str) -> list[str]:
        old_variants = self._variants(old, 0)
        new_variants = self._variants(new, 1)
        if any(kind == "any" for kind, _, _ in new_variants):
            return []  # the new side accepts anything
        violations: list[str] = []
        type_changed = False
        for kind, old_variant, old_ref in old_variants:
            candidates = [(n, ref) for k, n, ref in new_variants if k == kind]
            if not candidates:
                type_changed = True
                continue
            best: list[str] | None = None
            for new_variant, new_ref in candidates:
                found = self._compare_same_type(
                    kind, old_variant, old_ref, new_variant, new_ref, path
                )
                if best is None or len(found) < len(best):
                    best = found
                if not found:
                    break
            violations.extend(best or [])
        if type_changed:
            violations.insert(
                0,
                f"{path}: type changed from {_describe(old_variants)} to {_describe(new_variants)}",
            )
        return violations

    def _compare_same_type(
        self,
        kind: str,
        old: Schema,
        old_ref: str | None,
        new: Schema,
        new_ref: str | None,
        path: str,
    ) -> list[str]:
        if old_ref is not None or new_ref is not None:
            pair = (old_ref, new_ref)
            if pair in self._seen:
                return []
            self._seen.add(pair)
        violations = self._compare_enum(old, new, path)
        violations += self._compare_constraints(old, new, path)
        if kind == "object":
            violations += self._compare_object(old, new, path)
        elif kind == "array":
            violations += self._compare_array(old, new, path)
        return violations

    @staticmethod
    def _compare_enum(old: Schema, new: Schema, path: str) -> list[str]:
        new_enum = new.get("enum")
        if new_enum is None:
            return []
        old_enum = old.get("enum")
        if old_enum is None:
            return [f"{path}: now restricted to enum {new_enum!r}"]
        removed = [value for value in old_enum if value not in new_enum]
        if removed:
            return [f"{path}: enum narrowed, removed {removed!r}"]
        return []

    @staticmethod
    def _compare_constraints(old: Schema, new: Schema, path: str) -> list[str]:
        violations = []
        for keyword, direction in _BOUNDS:
            if keyword not in new:
                continue
            new_bound = new[keyword]
            old_bound = old.get(keyword)
            tightened = old_bound is None or (
                new_bound > old_bound if direction == "min" else new_bound < old_bound
            )
            if tightened:
                violations.append(
                    f"{path}: constraint {keyword} tightened from {old_bound!r} to {new_bound!r}"
                )
        for keyword in _EXACT:
            if keyword in new and new[keyword] != old.get(keyword):
                violations.append(
                    f"{path}: {keyword} changed from {old.get(keyword)!r} to {new[keyword]!r}"
                )
        return violations

    def _compare_object(self, old: Schema, new: Schema, path: str) -> list[str]:
        violations: list[str] = []
        old_props: Mapping[str, Schema] = old.get("properties", {})
        new_props: Mapping[str, Schema] = new.get("properties", {})
        old_required = set(old.get("required", []))
        new_required = set(new.get("required", []))
        for name, old_prop in old_props.items():
            if name not in new_props:
                violations.append(f"{path}.{name}: property removed")
                continue
            if name in new_required and name not in old_required:
                violations.append(f"{path}.{name}: optional property became required")
            violations += self._compare(old_prop, new_props[name], f"{path}.{name}")
        for name in new_props:
            if name not in old_props and name in new_required:
                violations.append(f"{path}.{name}: new required property")
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            violations.append(f"{path}: additional properties are no longer allowed")
        elif isinstance(new_extra, Mapping):
            if isinstance(old_extra, Mapping):
                violations += self._compare(old_extra, new_extra, f"{path}.*")
            elif old_extra is True:
                violations.append(f"{path}: additional property values are now restricted")
        return violations

    def _compare_array(self, old: Schema, new: Schema, path: str) -> list[str]:
        violations: list[str] = []
        old_prefix: list[Schema] = old.get("prefixItems", [])
        new_prefix: list[Schema] = new.get("prefixItems", [])
        if len(old_prefix) != len(new_prefix):
            violations.append(
                f"{path}: tuple length changed from {len(old_prefix)} to {len(new_prefix)}"
            )
        for index, (old_item, new_item) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            violations += self._compare(old_item, new_item, f"{path}[{index}]")
        old_items = old.get("items")
        new_items = new.get("items")
        if isinstance(old_items, Mapping) and isinstance(new_items, Mapping):
            violations += self._compare(old_items, new_items, f"{path}[]")
        elif isinstance(new_items, Mapping) and old_items is None and not old_prefix:
            violations += self._compare({}, new_items, f"{path}[]")
        return violations


def _describe(variants: Iterable[tuple[str, Schema, str | None]]) -> str:
    return " | ".join(dict.fromkeys(kind for kind, _, _ in variants))


# -- baselines: a directory of committed files, or a git revision ----------------------


def load_schema_dir(directory: Path) -> dict[str, dict[str, Any]]:
    """Load every ``*.json`` schema in ``directory``: file name -> parsed schema."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


def load_schemas_from_git(
    ref: str = "HEAD", directory: Path = JSON_DIR
) -> dict[str, dict[str, Any]]:
    """Load the schema files committed at ``ref`` (empty if git or the path is unavailable)."""
    try:
        top = subprocess.run(
            ["git", "-C", str(directory.parent), "rev-parse", "--show-toplevel"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        relative = directory.resolve().relative_to(Path(top).resolve()).as_posix()
        names = subprocess.run(
            ["git", "-C", top, "ls-tree", "--name-only", ref, f"{relative}/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        out = {}
        for name in names:
            if not name.endswith(".json"):
                continue
            blob = subprocess.run(
                ["git", "-C", top, "show", f"{ref}:{name}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            out[Path(name).name] = json.loads(blob)
        return out
    except (OSError, ValueError, subprocess.CalledProcessError):
        return {}


def check_against(
    baseline: Mapping[str, dict[str, Any]], registry: SchemaRegistry = REGISTRY
) -> list[str]:
    """Check the registry's current schemas against baseline files (name -> schema)."""
    violations = []
    for name, committed in sorted(baseline.items()):
        if name == ENVELOPE_FILENAME:
            current = msgspec.json.schema(Envelope)
        else:
            match = _FILE_RE.match(name)
            if match is None:
                violations.append(f"{name}: not a schema file name (<event_type>.v<N>.json)")
                continue
            event_type, version = match["event_type"], int(match["version"])
            spec = next((s for s in registry.specs() if s.key == (event_type, version)), None)
            if spec is None:
                violations.append(
                    f"{name}: {event_type} v{version} is committed but no longer registered"
                )
                continue
            current = schema_for(spec)
        violations += [f"{name}: {v}" for v in check_backward_compatible(committed, current)]
    return violations


def main(argv: list[str] | None = None) -> int:
    """CLI: check current schemas against a directory or a git revision."""
    parser = argparse.ArgumentParser(prog="python -m schemas.compat")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dir", type=Path, default=None, help="baseline directory")
    source.add_argument("--git-ref", default=None, help="baseline git revision, e.g. origin/main")
    args = parser.parse_args(argv)
    if args.git_ref is not None:
        baseline = load_schemas_from_git(args.git_ref)
    else:
        baseline = load_schema_dir(args.dir or JSON_DIR)
    violations = check_against(baseline)
    for violation in violations:
        print(violation)
    print(f"{len(baseline)} baseline schemas checked, {len(violations)} violation(s)")
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
