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
    x.triu(-num_lower).tril(num_upper). A bound may be a size known only at run time
    (Qwen3's sliding window: min(key_len, window - 1)) when it cannot be negative."""
    attrs, inputs = {}, [ctx.input(0)]
    for index, key in ((1, "lower"), (2, "upper")):
        if ctx.is_const(index):
            value = int(ctx.const(index).reshape(-1)[0])
            if value >= 0:
                attrs[key] = value
            continue
        ref = ctx.size_input(index)
        if not _non_negative(ctx, ref):
            ctx.fail(f"a band bound ({key}) computed at run time that may be negative "
                     "(TF: keep all)")
        attrs[key] = None  # the next input
        inputs.append(ref)
    if not attrs:
        ctx.emit("identity", [ctx.input(0)])
        return
    ctx.emit("band_part", inputs, attrs=attrs)


SIZE_OPS = {"shape", "numel", "size_item", "size_slice", "sizes"}  # read off shapes: >= 0
CLOSED = {"add", "mul", "minimum", "maximum", "floor_div", "cast"}  # >= 0 of >= 0 operands


def _non_negative(ctx, ref: str) -> bool:
    """Whether the size `ref` is >= 0 by construction: read off a shape, or sums, products,
    minima and quotients of such sizes and constants >= 0."""
    node = ctx.ir_node(ref)
    if node is None:
        return False
    if node.op in SIZE_OPS:
        return True
    if node.op == "scalar":
        return node.attrs["value"] >= 0
    return node.op in CLOSED and all(_non_negative(ctx, r) for r in node.inputs)


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
