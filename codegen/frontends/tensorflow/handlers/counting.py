"""Counting and data-dependent partitions: Bincount / DenseBincount (TF's output length is
the given size, values beyond it are left out), DynamicPartition (one boolean-mask index per
partition) and DynamicStitch / ParallelDynamicStitch (rows written at their indices, the
later entry winning); their results have run-time lengths, which eager PyTorch allows."""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers import handler

COUNT_DTYPES = ("int32", "int64", "float32", "float64")


def _scalar(op) -> int | None:
    """The value of a Const holding one integer (as TF writes a scalar), else None."""
    if op.type != "Const":
        return None
    value = op.get_attr("value")
    numbers = list(value.int_val) or list(value.int64_val)
    return int(numbers[0]) if len(numbers) == 1 and not value.tensor_shape.dim else None


def pinned_size(op) -> int | None:
    """A size known at conversion: a Const, or tf.math.bincount's with minlength = maxlength
    = n (Minimum(n, Maximum(n, max(x) + 1)), always n); None for a run-time size."""
    size = op.inputs[1].op
    if size.type == "Const":
        return _scalar(size)
    if size.type != "Minimum" or size.inputs[1].op.type != "Maximum":
        return None
    high, low = _scalar(size.inputs[0].op), _scalar(size.inputs[1].op.inputs[0].op)
    return high if high is not None and low == high else None


@handler("Bincount", "DenseBincount", ir="bincount",
         static=lambda op: (1,) if pinned_size(op) is not None else ())
def bincount(ctx) -> None:
    """Bincount counts over all of its input; DenseBincount over a vector or each row of a
    matrix. An empty weights tensor means counts; binary_output ignores the weights. The
    size is a number where it is fixed (tf.math.bincount with minlength = maxlength),
    otherwise the run-time value (max(x) + 1 of tf.math.bincount)."""
    rank, dtype = ctx.rank(0), ctx.output_info(0).dtype
    if rank is None:
        ctx.fail(f"{ctx.op.type} of unknown rank is not supported")
    dense = ctx.op.type == "DenseBincount"
    if dense and rank not in (1, 2):
        ctx.fail(f"DenseBincount of a rank-{rank} tensor (TF takes a vector or a matrix)")
    if dtype not in COUNT_DTYPES:
        ctx.fail(f"{ctx.op.type} counting in {dtype} is not supported")
    binary = bool(ctx.attr("binary_output", False))
    weights = ctx.input_info(2).shape
    weighted = not binary and weights != [0]
    if weighted and weights != ctx.input_info(0).shape:
        ctx.fail("the weights must have the input's (known) shape or be empty")
    size = pinned_size(ctx.op)
    if size is None and ctx.is_const(1):
        size = int(ctx.const(1).reshape(-1)[0])
    inputs = [ctx.input(0)] + ([ctx.input(2)] if weighted else [])
    if size is None:
        if ctx.rank(1) != 0:
            ctx.fail("the size must be a scalar")
        inputs.append(ctx.input(1))
    ctx.emit("bincount", inputs, attrs={"size": size, "binary": binary, "weighted": weighted,
                                        "rows": dense and rank == 2})


@handler("DynamicPartition", ir="dynamic_partition")
def dynamic_partition(ctx) -> None:
    """Output i: the entries of data whose partition is i (`data[partitions == i]`)."""
    if ctx.rank(0) is None or ctx.rank(1) is None:
        ctx.fail("DynamicPartition needs data and partitions of known rank")
    count = int(ctx.attr("num_partitions"))
    outputs = [ctx.output_info(i) for i in range(count)]
    ctx.emit("dynamic_partition", [ctx.input(0), ctx.input(1)],
             attrs={"num_partitions": count}, outputs=outputs)


@handler("DynamicStitch", "ParallelDynamicStitch", ir="dynamic_stitch")
def dynamic_stitch(ctx) -> None:
    """merged[indices[i]] = data[i] (N indices, then N data), max index + 1 rows."""
    count = int(ctx.attr("N"))
    if any(ctx.rank(i) is None for i in range(2 * count)):
        ctx.fail(f"{ctx.op.type} needs indices and data of known rank")
    ctx.emit("dynamic_stitch", [ctx.input(i) for i in range(2 * count)],
             attrs={"count": count})
