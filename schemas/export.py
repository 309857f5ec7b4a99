"""Export every registered payload's JSON Schema to ``schemas/json/`` (kept under git).

The committed files are the compatibility baseline: tests compare them with what the code
generates now (see :mod:`schemas.compat`). Regenerate with ``python -m schemas.export``.
Files are never deleted here: a retired version's file stays as history until removed
deliberately.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import msgspec

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, SchemaRegistry
from schemas.spec import EventSpec

__all__ = [
    "ENVELOPE_FILENAME",
    "JSON_DIR",
    "current_schemas",
    "expected_files",
    "export_all",
    "filename_for",
    "render_schema",
    "schema_for",
]

JSON_DIR = Path(__file__).resolve().parent / "json"
ENVELOPE_FILENAME = "envelope.json"


def filename_for(spec: EventSpec) -> str:
    """File name of a spec's schema: ``<event_type>.v<version>.json``."""
    return f"{spec.event_type}.v{spec.version}.json"


def schema_for(spec: EventSpec) -> dict[str, Any]:
    """The JSON Schema (as a dict) of a spec's payload struct."""
    return msgspec.json.schema(spec.payload_type)


def render_schema(schema: dict[str, Any]) -> str:
    """Canonical text of a schema: sorted keys, 2-space indent, trailing newline."""
    # Canonical formatting keeps diffs of the committed files minimal and reviewable.
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def current_schemas(registry: SchemaRegistry = REGISTRY) -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema dict for every registered spec, plus the envelope."""
    schemas = {filename_for(spec): schema_for(spec) for spec in registry.specs()}
    schemas[ENVELOPE_FILENAME] = msgspec.json.schema(Envelope)
    return schemas


def expected_files(registry: SchemaRegistry = REGISTRY) -> dict[str, str]:
    """File name -> file content that an export would write now."""
    return {name: render_schema(schema) for name, schema in current_schemas(registry).items()}


def export_all(target_dir: Path, registry: SchemaRegistry = REGISTRY) -> list[Path]:
    """Write one schema file per registered (event type, version) plus ``envelope.json``."""
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(expected_files(registry).items()):
        path = target_dir / name
        # Only touch files whose content changed, so mtimes/git status stay quiet.
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m schemas.export [--target DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__)
    parser.add_argument("--target", type=Path, default=JSON_DIR, help="output directory")
    args = parser.parse_args(argv)
    paths = export_all(args.target)
    print(f"wrote {len(paths)} schema files to {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
