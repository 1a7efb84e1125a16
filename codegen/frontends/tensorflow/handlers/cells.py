"""Recurrent cells TF keeps in one op: LSTMBlockCell (TF1 contrib's fused LSTM cell, one time
step; a static_rnn unrolls one per step) becomes one `lstm_block_cell` node, the generated
helper of the same name computing TF's arithmetic (gate order i, ci, f, o; forget_bias;
peepholes; cell_clip). Its weights stay inputs, as TF passes them: variables and constants
become the model's tensors through `ctx.input`."""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler


@handler("LSTMBlockCell", ir="lstm_block_cell")
def lstm_block_cell(ctx) -> None:
    if ctx.input_info(0).dtype != "float32":
        ctx.fail(f"{ctx.input_info(0).dtype} LSTMBlockCell is not supported (float32 only)")
    if ctx.rank(0) != 2 or ctx.rank(3) != 2:
        ctx.fail("x must be [batch, input] and w [input + units, 4 * units]")
    attrs = {"forget_bias": float(str(np.float32(ctx.attr("forget_bias", 1.0)))),
             "use_peephole": bool(ctx.attr("use_peephole", False))}
    cell_clip = float(np.float32(ctx.attr("cell_clip", 3.0)))
    if cell_clip > 0.0:  # TF clips only with a positive bound
        attrs["cell_clip"] = float(str(np.float32(cell_clip)))
    outputs = [ctx.output_info(i) for i in range(7)]
    ctx.emit("lstm_block_cell", [ctx.input(i) for i in range(8)], attrs=attrs, outputs=outputs)
