"""Activations: Relu, Relu6, Sigmoid, Tanh, Elu, Selu, Softsign, Softmax, LogSoftmax."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler

UNARY = {"Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "Elu": "elu",
         "Selu": "selu", "Softsign": "softsign"}


def _unary(ctx) -> None:
    ctx.emit(UNARY[ctx.op.type], [ctx.input(0)])


for _tf_op, _ir_op in UNARY.items():
    handler(_tf_op, ir=_ir_op)(_unary)


@handler("Softmax", ir="softmax")
def softmax(ctx) -> None:
    ctx.emit("softmax", [ctx.input(0)], attrs={"axis": ctx.rank(0) - 1})


@handler("LogSoftmax", ir="log_softmax")
def log_softmax(ctx) -> None:
    ctx.emit("log_softmax", [ctx.input(0)], attrs={"axis": ctx.rank(0) - 1})
