"""The README's op table is the one the handler registry gives."""

from __future__ import annotations

import re
from pathlib import Path

from codegen.tools.support import BEGIN, END, op_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_op_table_is_current() -> None:
    text = README.read_text()
    table = re.search(re.escape(BEGIN) + "\n(.*?)" + re.escape(END), text, re.DOTALL).group(1)
    assert table == op_table(), "run: python -m codegen.tools.support --update README.md"


def test_every_registered_op_has_a_catalogue_entry_and_a_renderer() -> None:
    from codegen.backends.pytorch.ops import RENDERERS
    from codegen.frontends.tensorflow.handlers import load_handlers
    from codegen.resources import op_catalogue

    catalogue = op_catalogue()
    for handler in load_handlers().values():
        assert handler.ir_op in catalogue, handler
        assert handler.ir_op in RENDERERS, handler
    assert "Conv2D, DepthwiseConv2dNative, SpaceToBatchND | `conv2d` |" in op_table()
