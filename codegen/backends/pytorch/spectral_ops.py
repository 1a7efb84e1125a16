"""Renderers of the spectral ops: torch.fft transforms and the complex tensors around them
(torch.complex, .real, .imag; a real tensor made complex is x.to(torch.complex64))."""

from __future__ import annotations

from codegen.backends.pytorch.registry import Expr, renderer
from codegen.ir.graph import Graph, Node

SPECTRAL = "ops/spectral.py.jinja"


@renderer("fft")
def fft(node: Node, graph: Graph) -> Expr:
    """torch.fft.<function>(x), with n= (one axis) or s= (two) where TF's fft_length is not
    the default length."""
    function, n = node.attrs["function"], node.attrs.get("n")
    if n is not None:
        n = tuple(n) if function.endswith("2") else n[0]
    return Expr(SPECTRAL, {"kind": "fft", "function": function, "n": n,
                           "size": "s" if function.endswith("2") else "n"}, hint="spectrum")


@renderer("complex", "real", "imag")
def complex_part(node: Node, graph: Graph) -> Expr:
    return Expr(SPECTRAL, {"kind": node.op}, hint="x")
