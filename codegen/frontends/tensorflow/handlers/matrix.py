"""Matrix ops over the last two axes: MatrixDiag(V2/V3) (torch.diag_embed), MatrixDiagPart
(V2/V3) (torch.diagonal), MatrixSetDiag(V2/V3) (diagonal_scatter), MatrixBandPart (tril /
triu), MatMul of two run-time tensors (conv.py keeps x @ W as nn.Linear) and
BatchMatMulV3 (as einsum.py's BatchMatMulV2). One diagonal k at a time: a band of diagonals
(k a pair) is refused."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler
from codegen.frontends.tensorflow.handlers.einsum import batch_matmul


def _offset(ctx, index: int | None) -> int:
    """The one diagonal k names (0 for the V1 ops, which have no k)."""
    if index is None:
        return 0
    k = [int(value) for value in ctx.const(index).reshape(-1)]
    if len(k) == 2 and k[0] != k[1]:
        ctx.fail(f"a band of diagonals k = {k} is not supported (one diagonal only)")
    return k[0]


def _static_k(op) -> tuple[int, ...]:
    return tuple(range(1, len(op.inputs))) if op.type.endswith(("V2", "V3")) else ()


@handler("MatrixDiag", "MatrixDiagV2", "MatrixDiagV3", ir="matrix_diag", static=_static_k)
def matrix_diag(ctx) -> None:
    """A batch of square matrices with the input as diagonal k."""
    versioned = ctx.op.type != "MatrixDiag"
    k = _offset(ctx, 1 if versioned else None)
    if versioned:
        rows, cols, padding = (ctx.const(i).reshape(-1)[0] for i in (2, 3, 4))
        size = ctx.input_info(0).shape[-1]
        square = None if size is None else size + abs(k)
        if padding != 0 or {int(rows), int(cols)} - {-1, square}:
            ctx.fail("only the square diagonal matrix of zeros (default num_rows, num_cols, "
                     "padding_value) is supported")
    ctx.emit("matrix_diag", [ctx.input(0)], attrs={"offset": k})


@handler("MatrixDiagPart", "MatrixDiagPartV2", "MatrixDiagPartV3", ir="diagonal",
         static=_static_k)
def matrix_diag_part(ctx) -> None:
    k = _offset(ctx, 1 if ctx.op.type != "MatrixDiagPart" else None)
    ctx.emit("diagonal", [ctx.input(0)], attrs={"offset": k})


@handler("MatrixSetDiag", "MatrixSetDiagV2", "MatrixSetDiagV3", ir="set_diagonal",
         static=lambda op: (2,) if len(op.inputs) == 3 else ())
def matrix_set_diag(ctx) -> None:
    k = _offset(ctx, 2 if ctx.op.type != "MatrixSetDiag" else None)
    ctx.emit("set_diagonal", [ctx.input(0), ctx.input(1)], attrs={"offset": k})


@handler("MatrixBandPart", ir="band_part", static=(1, 2))
def matrix_band_part(ctx) -> None:
    """Keeps the entries with i - j <= num_lower and j - i <= num_upper (-1: all of them):
    x.triu(-num_lower).tril(num_upper)."""
    lower, upper = (int(ctx.const(i).reshape(-1)[0]) for i in (1, 2))
    if lower < 0 and upper < 0:
        ctx.emit("identity", [ctx.input(0)])
        return
    attrs = {key: value for key, value in (("lower", lower), ("upper", upper)) if value >= 0}
    ctx.emit("band_part", [ctx.input(0)], attrs=attrs)


def matmul_tensors(ctx) -> None:
    """a @ b of two tensors (either may be transposed first)."""
    ctx.emit("matmul", [ctx.input(0), ctx.input(1)],
             attrs={"adj_x": bool(ctx.attr("transpose_a")), "adj_y": bool(ctx.attr("transpose_b"))})


@handler("BatchMatMulV3", ir="matmul")
def batch_matmul_v3(ctx) -> None:
    if ctx.output_info(0).dtype != ctx.input_info(0).dtype or \
            ctx.input_info(0).dtype != ctx.input_info(1).dtype:
        ctx.fail("BatchMatMulV3 of mixed dtypes is not supported")
    batch_matmul(ctx)
