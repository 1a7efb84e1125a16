"""The frontend's boundaries hold: handlers and rewrites talk only to their Context, and
the context does not import the converter (data flows converter -> context -> handler)."""

from __future__ import annotations

import re
from pathlib import Path

FRONTEND = Path(__file__).resolve().parent.parent / "codegen" / "frontends" / "tensorflow"


def test_handlers_and_rewrites_use_only_the_context():
    for folder in ("handlers", "rewrites"):
        for path in sorted((FRONTEND / folder).glob("*.py")):
            text = path.read_text()
            assert ".converter" not in text, f"{path.name}: use the Context's methods"
            assert "import converter" not in text and "converter import" not in text, path.name


def test_context_does_not_import_the_converter():
    text = (FRONTEND / "context.py").read_text()
    assert not re.search(r"^\s*from codegen\.frontends\.tensorflow\.converter import", text, re.MULTILINE)
