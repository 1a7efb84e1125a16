"""Fake quantization: FakeQuantWithMinMaxArgs / Vars / VarsPerChannel and
QuantizeAndDequantizeV2 / V3 / V4, written as TF's own arithmetic (generated helpers
`fake_quant` and `quantize_dequantize`) so the numbers are TF's, rounding included:

| TF op | range | rounding |
| --- | --- | --- |
| FakeQuantWithMinMax* | [min, max] nudged so that 0 is on the grid, 2 ** num_bits steps (one fewer with narrow_range) | half up |
| QuantizeAndDequantizeV2 / V4 | [min, max] (range_given) or the input's own min and max, widened on one side so 0 stays exact; signed_input, narrow_range | round_mode: HALF_TO_EVEN or HALF_UP |
| QuantizeAndDequantizeV3 | as V2, num_bits a (constant) input | half to even |

min/max that are constants become numbers in the code; variables stay parameters (trainable
only where the source trains them). The gradient is straight through (FakeQuant and V4 with
a given range: only inside the range, as TF's gradients are).
"""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler

ROUND_MODES = ("HALF_TO_EVEN", "HALF_UP")


def _number(value) -> float:
    """A float32 value as the shortest decimal that reads back as it (6.0, 0.1)."""
    return float(str(np.float32(value)))


def _bounds(ctx, first: int, attrs: dict) -> list[str]:
    """Inputs `first` and `first + 1` (min, max): numbers in attrs where both are scalar
    constants, else IR inputs (a variable, a per-channel vector)."""
    bounds = (first, first + 1)
    scalar = all(ctx.rank(i) == 0 for i in bounds)
    if scalar and all(ctx.is_const(i) and not ctx.from_variable(ctx.op.inputs[i]) for i in bounds):
        attrs["min"], attrs["max"] = (_number(ctx.const(i)) for i in (first, first + 1))
        return []
    return [ctx.input(first), ctx.input(first + 1)]


def _float32(ctx) -> None:
    if ctx.input_info(0).dtype != "float32":
        ctx.fail(f"fake quantization of {ctx.input_info(0).dtype} is not supported (float32 only)")


@handler("FakeQuantWithMinMaxArgs", ir="fake_quant")
def fake_quant_args(ctx) -> None:
    _float32(ctx)
    attrs = {"num_bits": int(ctx.attr("num_bits", 8)), "narrow_range": bool(ctx.attr("narrow_range")),
             "min": _number(ctx.attr("min", -6.0)), "max": _number(ctx.attr("max", 6.0))}
    ctx.emit("fake_quant", [ctx.input(0)], attrs=attrs)


@handler("FakeQuantWithMinMaxVars", ir="fake_quant")
def fake_quant_vars(ctx) -> None:
    _float32(ctx)
    attrs = {"num_bits": int(ctx.attr("num_bits", 8)), "narrow_range": bool(ctx.attr("narrow_range"))}
    ctx.emit("fake_quant", [ctx.input(0), *_bounds(ctx, 1, attrs)], attrs=attrs)


@handler("FakeQuantWithMinMaxVarsPerChannel", ir="fake_quant_per_channel")
def fake_quant_per_channel(ctx) -> None:
    """min and max hold one value per channel of the last axis (kept in TF's layout)."""
    _float32(ctx)
    attrs = {"num_bits": int(ctx.attr("num_bits", 8)), "narrow_range": bool(ctx.attr("narrow_range"))}
    ctx.emit("fake_quant_per_channel", [ctx.input(0), ctx.input(1), ctx.input(2)], attrs=attrs)


def _num_bits(ctx) -> int:
    if ctx.op.type == "QuantizeAndDequantizeV3":
        if not ctx.is_const(3):
            ctx.fail("num_bits must be a constant")
        return int(ctx.const(3))
    return int(ctx.attr("num_bits", 8))


@handler("QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3", "QuantizeAndDequantizeV4",
         ir="quantize_dequantize", static=lambda op: (3,) if op.type.endswith("V3") else ())
def quantize_dequantize(ctx) -> None:
    if ctx.input_info(0).dtype != "float32":
        ctx.fail(f"{ctx.input_info(0).dtype} input is not supported (float32 only)")
    round_mode = ctx.attr("round_mode", "HALF_TO_EVEN")
    if round_mode not in ROUND_MODES:
        ctx.fail(f"round_mode {round_mode!r} is not supported (HALF_TO_EVEN, HALF_UP)")
    num_bits = _num_bits(ctx)
    if not 1 < num_bits <= 32:  # (TF's own check for signed input; 2 bits keeps both signs)
        ctx.fail(f"num_bits {num_bits} is out of range")
    attrs = {"num_bits": num_bits, "signed": bool(ctx.attr("signed_input", True)),
             "narrow_range": bool(ctx.attr("narrow_range", False)),
             "half_to_even": round_mode == "HALF_TO_EVEN"}
    rank, axis = ctx.rank(0), int(ctx.attr("axis", -1))
    inputs = [ctx.input(0)]
    if ctx.attr("range_given", False):
        inputs += _bounds(ctx, 1, attrs)
        attrs["range_given"] = True
        if ctx.op.type.endswith("V4"):  # its gradient is zero outside the range
            attrs["clip_gradient"] = True
    if axis == -1:
        ctx.emit("quantize_dequantize", inputs, attrs=attrs)
        return
    if rank is None:
        ctx.fail("a per-axis range needs an input of known rank")
    attrs["axis"] = axis % rank
    if len(inputs) == 1 and attrs.get("range_given"):  # (scalar constants: one channel)
        ctx.fail("a per-axis range needs one min and max per channel")
    ctx.emit("quantize_dequantize_per_channel", inputs, attrs=attrs)
