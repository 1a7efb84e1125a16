"""Sizes known only at run time as values (codegen/ir/sizes.py): Shape and Size give a
size (Python: `x.shape`, `x.numel()`); a StridedSlice, GatherV2, Pack or ConcatV2 of sizes,
and integer arithmetic and casts of them, stay sizes; Range, Fill, Tile, Reshape and
BroadcastTo by a size computed at run time read one. The handlers of StridedSlice, GatherV2,
ConcatV2, the binary ops and Cast call the `*_of_sizes` functions here when their input is
a size; Reshape, Fill, Tile and BroadcastTo fall back to `sized_*` when what they read at
conversion time (`static=`) is not enough."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler
from codegen.ir.graph import TensorInfo


@handler("Shape", ir="shape")
def shape(ctx) -> None:
    """tf.shape(x): x.shape, a tuple of ints (the static sizes stay readable from it)."""
    if ctx.rank(0) is None:
        ctx.fail("the shape of a tensor of unknown rank")
    ctx.emit("shape", [ctx.input(0)])


@handler("Size", ir="numel")
def size(ctx) -> None:
    ctx.emit("numel", [ctx.input(0)])


def _number(ctx, index: int) -> float | int:
    value = ctx.const(index).reshape(-1)
    if value.size != 1:
        ctx.fail(f"input {index} must be one number")
    return value[0].item()


def device_of(ctx, refs: list[str]) -> str | None:
    """A tensor the sizes `refs` were read from (its device is the result's): walked back
    through the IR to a `shape` / `numel` node."""
    stack, seen = list(refs), set()
    while stack:
        ref = stack.pop()
        node = ctx.ir_node(ref)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op in ("shape", "numel"):
            return node.inputs[0]
        stack.extend(node.inputs)
    return None


@handler("Range", ir="range")
def range_(ctx) -> None:
    """tf.range(start, limit, delta) with sizes known only at run time:
    torch.arange(seq_len, device=x.device)."""
    attrs, inputs = {}, []
    for index, key in enumerate(("start", "limit", "delta")):
        if ctx.is_const(index):
            attrs[key] = _number(ctx, index)
        elif ctx.is_size(index):
            attrs[key] = None
            inputs.append(ctx.input(index))
        else:
            ctx.fail(f"a range whose {key} is a tensor computed at run time (not a size)")
    device = device_of(ctx, inputs)
    attrs.update(dtype=ctx.output_info(0).dtype, device=device is not None)
    ctx.emit("range", inputs + ([device] if device is not None else []), attrs=attrs)


@handler("Pack", ir="stack")
def pack(ctx) -> None:
    """tf.stack of sizes: a shape vector (batch, seq_len, 4, 8); of tensors: torch.stack."""
    count = len(ctx.op.inputs)
    if any(ctx.is_size(i) for i in range(count)):
        parts, inputs = [], []
        for index in range(count):
            if ctx.is_size(index) and ctx.input_info(index).rank == 0:
                parts.append("item")
                inputs.append(ctx.input(index))
            elif ctx.is_const(index) and ctx.input_info(index).rank == 0:
                parts.append(int(_number(ctx, index)))
            else:
                ctx.fail("a stack of sizes and tensors")
        if ctx.attr("axis") not in (0, -1):
            ctx.fail("a stack of sizes along axis != 0")
        ctx.emit("sizes", inputs, attrs={"parts": parts})
        return
    rank = ctx.output_info(0).rank
    ctx.emit("stack", [ctx.input(i) for i in range(count)],
             attrs={"axis": ctx.attr("axis") % rank})


def constant_sizes(ctx, index: int) -> str:
    """A constant shape vector read as sizes (e.g. the multiples of a Tile)."""
    values = [int(v) for v in ctx.const(index).reshape(-1)]
    info = TensorInfo([len(values)], ctx.input_info(index).dtype)
    return ctx.emit("sizes", [], attrs={"parts": values}, suffix=f"sizes{index}", outputs=[info])


def sizes_operand(ctx, index: int) -> str:
    """Input `index`, a shape vector: a constant one, or one computed at run time."""
    return constant_sizes(ctx, index) if ctx.is_const(index) else ctx.size_input(index)


# -- ops on sizes, called by the handlers of the same TF ops on tensors ----------------------
def slice_of_sizes(ctx) -> None:
    """shape[1] (shrink) or shape[a:b:s] of a shape vector."""
    for mask in ("ellipsis_mask", "new_axis_mask"):
        if ctx.attr(mask):
            ctx.fail(f"a strided slice of sizes with {mask}")
    begin, end, strides = (ctx.const(i).reshape(-1).tolist() for i in (1, 2, 3))
    if len(begin) != 1:
        ctx.fail("a strided slice of sizes must have one axis")
    if ctx.attr("shrink_axis_mask") & 1:
        ctx.emit("size_item", [ctx.input(0)], attrs={"index": int(begin[0])})
        return
    start = None if ctx.attr("begin_mask") & 1 else int(begin[0])
    stop = None if ctx.attr("end_mask") & 1 else int(end[0])
    if int(strides[0]) <= 0:
        ctx.fail("a strided slice of sizes with a negative stride")
    ctx.emit("size_slice", [ctx.input(0)],
             attrs={"start": start, "stop": stop, "step": int(strides[0])})


def gather_of_sizes(ctx) -> None:
    """tf.gather(shape, i): shape[i]; tf.gather(shape, [i, j]): (shape[i], shape[j])."""
    if not ctx.is_const(1) or int(ctx.const(2).reshape(-1)[0]) != 0:
        ctx.fail("a gather of sizes by indices computed at run time")
    indices = ctx.const(1)
    if indices.ndim == 0:
        ctx.emit("size_item", [ctx.input(0)], attrs={"index": int(indices)})
        return
    dtype = ctx.output_info(0).dtype
    items = [ctx.emit("size_item", [ctx.input(0)], attrs={"index": int(i)}, suffix=f"item{n}",
                      outputs=[TensorInfo([], dtype)]) for n, i in enumerate(indices.reshape(-1))]
    ctx.emit("sizes", items, attrs={"parts": ["item"] * len(items)})


def concat_of_sizes(ctx) -> None:
    """tf.concat([shape[:-1], [4, 8]], 0): (*x.shape[:-1], 4, 8)."""
    parts, inputs = [], []
    for index in range(len(ctx.op.inputs) - 1):
        node = ctx.ir_node(ctx.input(index)) if ctx.is_size(index) else None
        if node is not None and node.op == "sizes":  # [seq_len * 2]: its parts, inline
            parts += node.attrs["parts"]
            inputs += node.inputs
        elif node is not None and node.op == "size_slice" and _one_item(node.attrs) is not None:
            parts.append("item")  # shape[:1] -> shape[0]
            inputs.append(ctx.emit("size_item", node.inputs, attrs={"index": _one_item(node.attrs)},
                                   suffix=f"item{index}",
                                   outputs=[TensorInfo([], ctx.input_info(index).dtype)]))
        elif ctx.is_size(index):
            parts.append("splat")
            inputs.append(ctx.input(index))
        elif ctx.is_const(index):
            parts += [int(v) for v in ctx.const(index).reshape(-1)]
        else:
            ctx.fail("a concatenation of sizes and tensors")
    ctx.emit("sizes", inputs, attrs={"parts": parts})


def _one_item(attrs: dict) -> int | None:
    """The index of a slice of sizes that takes exactly one (shape[:1], shape[2:3])."""
    start = attrs["start"] or 0
    if attrs["stop"] is None or start < 0 or attrs["stop"] != start + 1:
        return None
    return start


def binary_of_sizes(ctx, ir_op: str) -> None:
    """seq_len - 1, batch * heads, max(a, b): Python arithmetic on sizes."""
    for index in (0, 1):
        if ctx.is_size(index) and ctx.input_info(index).rank != 0:
            ctx.fail("arithmetic on a whole shape vector (use its sizes one by one)")
    ctx.emit(ir_op, [ctx.input_or_scalar(0, True), ctx.input_or_scalar(1, True)])


# -- ops whose sizes are known only at run time --------------------------------------------
def sized_reshape(ctx) -> None:
    """x.reshape(batch, seq_len, -1): a shape vector computed at run time."""
    ctx.emit("reshape_to", [ctx.input(0), ctx.size_input(1)])


def sized_broadcast(ctx) -> None:
    ctx.emit("expand_to", [ctx.input(0), sizes_operand(ctx, 1)])


def sized_tile(ctx) -> None:
    """x.repeat(2, 1) (constant multiples) or x.repeat(batch, 1) (sizes)."""
    if ctx.is_const(1):
        multiples = [int(v) for v in ctx.const(1).reshape(-1)]
        ctx.emit("tile", [ctx.input(0)], attrs={"multiples": multiples})
        return
    ctx.emit("tile", [ctx.input(0), ctx.size_input(1)])


def sized_fill(ctx) -> None:
    """torch.full(shape, value, device=x.device) of a shape computed at run time."""
    if not ctx.is_const(1):
        ctx.fail("a fill with a value computed at run time")
    value = ctx.const(1).reshape(-1)[0].item()
    dtype = ctx.output_info(0).dtype
    value = bool(value) if dtype == "bool" else value
    shape_ref = sizes_operand(ctx, 0)
    device = device_of(ctx, [shape_ref])
    ctx.emit("fill", [shape_ref] + ([device] if device is not None else []),
             attrs={"value": value, "dtype": dtype, "device": device is not None})

