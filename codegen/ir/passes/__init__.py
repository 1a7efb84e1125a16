"""IR -> IR passes, run by `codegen build` before the backend."""

from __future__ import annotations

from codegen.ir.graph import Graph
from codegen.ir.passes.fold import (
    drop_float_casts,
    drop_identities,
    drop_neutral_arithmetic,
    fold_bias,
    fold_pad,
)
from codegen.ir.passes.hoist import hoist_input_masks
from codegen.ir.passes.layout import to_nchw
from codegen.ir.passes.names import drop_tracer_suffixes, scopes_from_variables
from codegen.ir.passes.padding import resolve_padding
from codegen.ir.passes.pointwise import dense_as_conv
from codegen.ir.passes.residuals import absorb_residual_adds
from codegen.ir.passes.rotary import hoist_rotary
from codegen.ir.passes.size_reads import sizes_from_inputs
from codegen.ir.passes.tidy import compose_transposes, keepdim_reductions

DEFAULT_PASSES = (dense_as_conv, to_nchw, drop_identities, drop_float_casts,
                  drop_neutral_arithmetic, compose_transposes, keepdim_reductions,
                  fold_bias, resolve_padding, fold_pad, sizes_from_inputs,
                  hoist_input_masks, hoist_rotary, drop_tracer_suffixes,
                  scopes_from_variables, absorb_residual_adds)


def run_passes(graph: Graph, passes=DEFAULT_PASSES) -> Graph:
    for apply in passes:
        graph = apply(graph)
    return graph
