"""Files shipped with the package: the IR JSON Schema and the Jinja templates.

In the source tree they live at the repository root (`ir_schema/`, `templates/`); the
wheel maps them to the packages `codegen.ir_schema` and `codegen.templates`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _data_dir(folder: str) -> Path:
    """The folder in a source checkout (editable installs), else the installed package."""
    in_checkout = _SOURCE_ROOT / folder
    if (in_checkout / ".codegen-data").is_file():
        return in_checkout
    return Path(str(resources.files(f"codegen.{folder}")))


def templates_dir() -> Path:
    return _data_dir("templates")


def schema_dir() -> Path:
    return _data_dir("ir_schema")


@cache
def graph_schema() -> dict[str, Any]:
    return json.loads((schema_dir() / "graph.schema.json").read_text())


@cache
def op_catalogue() -> dict[str, Any]:
    """IR op name -> {doc, inputs, weights, attrs}; '$'-prefixed keys are not ops."""
    return json.loads((schema_dir() / "ops.json").read_text())
