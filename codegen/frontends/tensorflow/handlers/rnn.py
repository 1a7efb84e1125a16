"""Keras recurrent layers (LSTM, GRU, SimpleRNN): the `While` loop a layer traces to
becomes one `lstm`, `gru` or `rnn` IR node (nn.LSTM, nn.GRU, nn.RNN), batch first.

A loop is recognised by its body, never by its name: one step reads the input sequence
(a TensorList) at the loop's time index, multiplies it by the kernel and the previous
output by the recurrent kernel, and writes the new output to the output list. The gate
count (kernel columns / units) says which cell it is; any op a default Keras cell does not
have (a mask's select, another activation) refuses the loop with its name. The weights are
put in PyTorch's layout and gate order here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from codegen.frontends.tensorflow.context import tensor_info
from codegen.frontends.tensorflow.handlers import handler
from codegen.ir.graph import TensorInfo

LOOP_OPS = ("While", "StatelessWhile")
GATES = {4: "lstm", 3: "gru", 1: "rnn"}
# the ops of one step of a Keras cell with its default activations (tanh, sigmoid)
CELL_OPS = {"Placeholder", "Const", "Identity", "NoOp", "MatMul", "BiasAdd", "AddV2", "Add",
            "Mul", "Sub", "Split", "SplitV", "Unpack", "StridedSlice", "Squeeze", "Sigmoid", "Tanh",
            "TensorListGetItem", "TensorListSetItem", "ReadVariableOp", "Cast"}
ACTIVATIONS = {"lstm": {"Sigmoid": 3, "Tanh": 2}, "gru": {"Sigmoid": 2, "Tanh": 1},
               "rnn": {"Tanh": 1}}
# Keras GRU gates are (update z, reset r, candidate h); PyTorch's are (r, z, n)
GRU_TO_TORCH = (1, 0, 2)


@dataclass
class Loop:
    """What one loop of an RNN layer reads and writes (indices of the While's inputs)."""

    kind: str = ""
    sequence: int = -1  # the input sequence, a TensorList
    output: int = -1  # the list the step writes its output to
    states: list[int] = field(default_factory=list)  # h (and c): loop variables
    kernel: int = -1
    recurrent: int = -1
    bias: int | None = None  # Keras's one bias, a GRU's [2, 3 * units] or its input bias
    recurrent_bias: int | None = None  # a tf_keras GRU's recurrent bias, passed on its own
    units: int = 0
    nonlinearity: str = "tanh"  # a SimpleRNN's activation
    reset_after: bool = True  # a GRU's reset gate: after the recurrent kernel (as nn.GRU)
    mask: int | None = None  # a list of per-step masks
    initial_state: bool = False  # the states start at given tensors (initial_state=)
    carry: int | None = None  # with a mask: the last output, kept where the mask is false


@handler("While", "StatelessWhile", ir="lstm", reads=lambda op: _read_tensors(op))
def while_loop(ctx) -> None:
    loop = recognise(ctx)
    sequence = _batch_first_sequence(ctx, loop)
    time = [None]
    source = _unlisted(ctx.op.inputs[loop.sequence])[0]  # the batch-first [N, T, F] tensor
    batch = [source.shape[0]] if source.shape.rank == 3 else [None]
    units = loop.units
    outputs = [TensorInfo([*batch, *time, units], "float32")]
    outputs += [TensorInfo([*batch, units], "float32") for _ in loop.states]
    weights = _torch_weights(ctx, loop)
    attrs = {"hidden_size": units, "one_bias": loop.bias is not None
             and len(ctx.input_info(loop.bias).shape) == 1 and loop.recurrent_bias is None}
    if loop.kind == "rnn":
        attrs["nonlinearity"] = loop.nonlinearity
    if loop.kind == "gru" and not loop.reset_after:
        attrs.update(reset_after=False, one_bias=False)  # its cell has no recurrent bias
    inputs = [sequence] if loop.mask is None else [sequence, _batch_first_mask(ctx, loop)]
    attrs["masked"] = loop.mask is not None
    if loop.initial_state:  # h0 (and c0) after the sequence and the mask
        attrs["initial_state"] = True
        inputs += [ctx.ref_of(_through_identity(ctx.op.inputs[state])) for state in loop.states]
    name = ctx.emit(loop.kind, inputs, attrs=attrs, weights=weights,
                    outputs=outputs, suffix=loop.kind).rpartition(":")[0]
    ctx.alias(ctx.op.outputs[loop.output], f"{name}:0")
    for position, state in enumerate(loop.states, start=1):
        ctx.alias(ctx.op.outputs[state], f"{name}:{position}")


@handler("TensorListFromTensor", ir="identity", static=(1,))
def list_from_tensor(ctx) -> None:
    """The input sequence of a loop: read by the loop's handler, nothing of its own."""
    ctx.alias(ctx.op.outputs[0], ctx.input(0))


@handler("TensorListStack", ir="transpose", static=(1,))
def list_stack(ctx) -> None:
    """The outputs of a recognised RNN loop as TF stacks them: time major."""
    ctx.emit("transpose", [ctx.input(0)], attrs={"perm": [1, 0, 2]})


# -- recognising the loop --------------------------------------------------------------------
def body_graph(op):
    """The loop body as a graph whose placeholders are the While's inputs, in order."""
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph

    function = op.graph._get_function(op.get_attr("body").name)
    return function_def_to_graph(function.cached_definition)


def recognise(ctx) -> Loop:
    """The Keras cell behind this loop; refuses (naming the loop) anything else."""
    body = body_graph(ctx.op)
    args = {tensor.op.name: index for index, tensor in enumerate(body.inputs)}

    def arg(tensor) -> int | None:
        while tensor.op.type in ("Identity", "ReadVariableOp") and tensor.op.inputs:
            tensor = tensor.op.inputs[0]
        return args.get(tensor.op.name)

    ops = body.get_operations()
    loop = Loop()
    reads = [op for op in ops if op.type == "TensorListGetItem"]
    writes = [op for op in ops if op.type == "TensorListSetItem"]
    # the input sequence is the list whose step is multiplied by the kernel; a second list
    # read per step is a mask (Keras keeps state and output where it is false)
    reads.sort(key=lambda read: not any(r.type == "MatMul" for r in read.outputs[0].consumers()))
    if not 1 <= len(reads) <= 2 or len(writes) != 1:
        _refuse(ctx, f"it reads {len(reads)} and writes {len(writes)} lists per step (an RNN "
                "layer reads its input sequence, and maybe a mask, and writes its outputs)")
    loop.sequence, loop.output = arg(reads[0].inputs[0]), arg(writes[0].inputs[0])
    step_input = reads[0].outputs[0]
    if len(reads) == 2:
        loop.mask = arg(reads[1].inputs[0])
        written = _through_identity(writes[0].inputs[2])  # where(mask, output, last output)
        if written.op.type not in ("SelectV2", "Select"):
            _refuse(ctx, "it reads a second list that is not a mask of its steps")
        loop.carry = arg(written.op.inputs[2])
    products = []  # (MatMul, the weight it reads) other than x_t @ kernel and h @ recurrent
    for matmul in (op for op in ops if op.type == "MatMul"):
        left, right = matmul.inputs[0], matmul.inputs[1]
        while right.op.type == "StridedSlice":  # a GRU with reset_after=False slices its gates
            right = right.op.inputs[0]
        weight = arg(right)
        if weight is None or ctx.kind_of(ctx.op.inputs[weight]) not in ("constant", "weight"):
            _refuse(ctx, f"its MatMul {matmul.name!r} does not read a weight")
        if left is step_input:
            loop.kernel = weight
        elif arg(left) is not None:
            loop.recurrent, loop.states = weight, [arg(left)]
        else:
            products.append((matmul, weight))
    if loop.kernel < 0 or loop.recurrent < 0:
        _refuse(ctx, "no input kernel and recurrent kernel found in its step")
    kernel, recurrent = (ctx.input_info(i).shape for i in (loop.kernel, loop.recurrent))
    loop.units = recurrent[0]
    loop.kind = GATES.get(kernel[1] // loop.units if loop.units else 0, "")
    if not loop.kind or kernel[1] % loop.units or recurrent[1] != kernel[1]:
        _refuse(ctx, f"a kernel {kernel} and recurrent kernel {recurrent} of no known cell")
    _check_ops(ctx, loop, ops)
    weights = {loop.kernel, loop.recurrent}
    others = [index for index, tensor in enumerate(ctx.op.inputs) if index not in weights
              and ctx.kind_of(tensor) in ("constant", "weight") and tensor.shape.rank
              and tensor.dtype.is_floating]
    biases = [index for index in others if ctx.input_info(index).shape[-1] == kernel[1]]
    if len(biases) == 2:  # tf_keras unstacks a GRU's [2, 3 * units] bias before the loop
        recurrent_side = _added_to(body, body.inputs[biases[0]], loop.recurrent, arg)
        loop.bias, loop.recurrent_bias = biases[::-1] if recurrent_side else biases
    elif len(biases) > 2:
        _refuse(ctx, f"{len(biases)} bias-like inputs")
    else:
        loop.bias = biases[0] if biases else None
    two_biases = loop.recurrent_bias is not None or loop.bias is not None and len(
        ctx.input_info(loop.bias).shape) == 2
    # reset_after=False: the reset gate scales h before its part of the recurrent kernel,
    # a third product (r * h) @ recurrent[:, 2u:]; then Keras has one bias
    loop.reset_after = not products
    if products and (loop.kind != "gru" or len(products) != 1 or two_biases
                     or products[0][1] != loop.recurrent):
        _refuse(ctx, f"its step has a product {products[0][0].name!r} no Keras cell has")
    if loop.kind == "gru" and loop.reset_after and loop.bias is not None and not two_biases:
        _refuse(ctx, "a GRU with one bias that applies its reset gate after the recurrent kernel")
    if loop.kind == "lstm":
        loop.states += [_cell_state(ctx, body, loop)]
    if loop.carry is not None and not _is_zeros(ctx, ctx.op.inputs[loop.carry]):
        _refuse(ctx, "the output it keeps at masked steps does not start at zero")
    given = [not _is_zeros(ctx, ctx.op.inputs[state]) for state in loop.states]
    loop.initial_state = any(given)  # Keras's initial_state= gives every state or none
    if loop.initial_state and not all(given):
        _refuse(ctx, "some of its initial states are zeros and some are not")
    return loop


def _added_to(body, bias, recurrent: int, arg) -> bool:
    """Whether the bias placeholder `bias` is added to the product with the recurrent
    kernel (while loop input `recurrent`)."""
    readers = list(bias.consumers())
    while readers:
        op = readers.pop()
        if op.type in ("Identity", "ReadVariableOp"):
            readers.extend(op.outputs[0].consumers())
        elif op.type in ("BiasAdd", "AddV2", "Add"):
            return any(t.op.type == "MatMul" and arg(t.op.inputs[1]) == recurrent
                       for t in op.inputs)
    return False


def _check_ops(ctx, loop: Loop, ops) -> None:
    counts = {kind: sum(op.type == kind for op in ops) for kind in ("Sigmoid", "Tanh", "Relu")}
    if loop.kind == "rnn" and counts == {"Sigmoid": 0, "Tanh": 0, "Relu": 1}:
        loop.nonlinearity = "relu"  # SimpleRNN(activation="relu"): nn.RNN has it too
    found = {op.type for op in ops} - CELL_OPS - ({"Relu"} if loop.nonlinearity == "relu" else set())
    if loop.mask is not None:  # the mask's step, broadcast to the units, selects
        found -= {"Tile", "SelectV2", "Select"}
    if found:
        _refuse(ctx, f"its step has {', '.join(sorted(found))}, which a {loop.kind.upper()} "
                "with the default activations (tanh, sigmoid) and no mask does not have")
    expected = {kind: ACTIVATIONS[loop.kind].get(kind, 0) for kind in counts}
    if loop.nonlinearity == "relu":
        expected.update(Tanh=0, Relu=1)
    if counts != expected:
        _refuse(ctx, f"its step has {counts['Sigmoid']} sigmoid and {counts['Tanh']} tanh, a "
                f"{loop.kind.upper()} with its default activations has {expected['Sigmoid']} "
                f"and {expected['Tanh']}")


def _cell_state(ctx, body, loop: Loop) -> int:
    """An LSTM's cell state: the float loop variable of the units' size that is not h."""
    for index, tensor in enumerate(ctx.op.inputs):
        if index not in (loop.states[0], loop.sequence, loop.output, loop.carry) \
                and tensor.dtype.is_floating \
                and ctx.kind_of(tensor) not in ("constant", "weight") and tensor.shape.rank == 2:
            return index
    _refuse(ctx, "no cell state found")
    return -1


def _through_identity(tensor):
    """The tensor behind Identity ops (an inlined function passes its arguments through one)."""
    while tensor.op.type == "Identity" and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return tensor


def _is_zeros(ctx, tensor) -> bool:
    """A state TF fills with zeros (`zeros([batch, units])`, the batch read from a shape)."""
    tensor = _through_identity(tensor)
    op = tensor.op
    if op.type == "Fill":
        value = op.inputs[1]
        return ctx.kind_of(value) == "constant" and not np.any(ctx.value_of(value))
    if op.type in ("ZerosLike",):
        return True
    return ctx.kind_of(tensor) == "constant" and not np.any(ctx.value_of(tensor))


def _read_tensors(op) -> list:
    """What a loop reads at run time: the batch-first tensor behind each list it steps
    through (Keras's input sequence, and mask). Counters, lengths, weights and zero states
    are read at conversion time."""
    lists = [_unlisted(tensor)[0] for tensor in op.inputs
             if tensor.op.type == "TensorListFromTensor"]
    return lists + [state for state in map(_through_identity, op.inputs) if _given_state(state)]


def _given_state(tensor) -> bool:
    """A loop input that looks like a state given to the layer (initial_state=): [N, units]
    floats that are neither a weight nor zeros made from a shape."""
    made = ("Const", "Fill", "ZerosLike", "Zeros", "VarHandleOp", "VariableV2", "ReadVariableOp")
    return (tensor.dtype.is_floating and tensor.shape.rank == 2 and tensor.op.type not in made
            and tensor.shape[0] is None)


def _unlisted(tensor):
    """(the batch-first tensor, its time-major transpose, reversed?) behind a TensorList
    Keras makes of it: list(transpose(x, [1, 0, 2])), reversed in time for go_backwards;
    a mask [N, T] is expanded to [N, T, 1] first. (tensor, None, False) for anything else."""
    list_input = _through_identity(tensor.op.inputs[0])
    reverse = list_input.op.type == "ReverseV2"
    transposed = _through_identity(list_input.op.inputs[0]) if reverse else list_input
    if transposed.op.type != "Transpose":
        return tensor, None, False
    source = _through_identity(transposed.op.inputs[0])
    if source.op.type in ("ExpandDims", "Reshape") and source.shape.rank == 3 \
            and source.op.inputs[0].shape.rank == 2 and source.dtype.is_bool:
        source = source.op.inputs[0]  # a mask [N, T] -> [N, T, 1]
    return source, transposed, reverse


def _refuse(ctx, reason: str) -> None:
    ctx.fail(f"while loop {ctx.name!r} is not recognised as a Keras LSTM, GRU, SimpleRNN or "
             f"TimeDistributed: {reason}")


# -- inputs and weights -----------------------------------------------------------------------
def _batch_first_sequence(ctx, loop: Loop) -> str:
    """The IR ref of the sequence as [N, T, F] (a flip of it for go_backwards)."""
    return _batch_first(ctx, ctx.op.inputs[loop.sequence], "sequence", rank=3)


def _batch_first_mask(ctx, loop: Loop) -> str:
    """The IR ref of the mask as [N, T] booleans (a flip of it for go_backwards)."""
    return _batch_first(ctx, ctx.op.inputs[loop.mask], "mask", rank=2)


def _batch_first(ctx, list_tensor, what: str, rank: int) -> str:
    source, transposed, reverse = _unlisted(list_tensor)
    if transposed is None or ctx.value_of(transposed.op.inputs[1]).tolist() != [1, 0, 2]:
        _refuse(ctx, f"its {what} is not a batch-first tensor transposed to time major")
    if reverse and ctx.value_of(list_tensor.op.inputs[0].op.inputs[1]).reshape(-1).tolist() != [0]:
        _refuse(ctx, f"its {what} is reversed along another axis than time")
    if source.shape.rank != rank or (what == "mask" and source.dtype.name != "bool"):
        _refuse(ctx, f"its {what} is {source.dtype.name} of rank {source.shape.rank}")
    ref = ctx.ref_of(source)
    if reverse:
        ref = ctx.emit("flip", [ref], attrs={"axes": [1]}, suffix=f"reversed_{what}",
                       outputs=[tensor_info(source)])
    return ref


def _torch_weights(ctx, loop: Loop) -> dict[str, str]:
    """nn.LSTM/GRU/RNN's parameters: [gates * units, in] matrices in PyTorch's gate order.
    Keras has one bias where PyTorch has two (input and recurrent), except a GRU with
    reset_after, whose bias is [2, 3 * units]: the other one is zero (and stays zero)."""
    units, gates = loop.units, {"lstm": 4, "gru": 3, "rnn": 1}[loop.kind]
    order = GRU_TO_TORCH if loop.kind == "gru" else tuple(range(gates))

    def matrix(index: int) -> str:
        rows = ctx.input_info(index).shape[0]
        steps = [("reshape", (rows, gates, units)), ("take", (1, *order)),
                 ("reshape", (rows, gates * units)), ("transpose", (1, 0))]
        return ctx.weight(index, steps)

    def vector(index: int, row: tuple = ()) -> str:  # (row: one row of a [2, gates * units])
        steps = [("reshape", (2, gates, units)), ("take", (0, *row))] if row else []
        steps += [("reshape", (gates, units)), ("take", (0, *order)), ("reshape", (gates * units,))]
        return ctx.weight(index, steps)

    weights = {"weight_ih": matrix(loop.kernel), "weight_hh": matrix(loop.recurrent)}
    if loop.bias is None:
        return weights
    if loop.recurrent_bias is not None:  # GRU reset_after, the two rows passed apart
        return {**weights, "bias_ih": vector(loop.bias), "bias_hh": vector(loop.recurrent_bias)}
    if len(ctx.input_info(loop.bias).shape) == 2:  # GRU reset_after: [input bias, recurrent bias]
        return {**weights, "bias_ih": vector(loop.bias, (0,)), "bias_hh": vector(loop.bias, (1,))}
    weights["bias_ih"] = vector(loop.bias)
    if not loop.reset_after:  # GRUResetBefore has the input bias only
        return weights
    weights["bias_hh"] = ctx.new_weight(f"{ctx.name}/{loop.kind}/zero_recurrent_bias",
                                        np.zeros(gates * units, np.float32))
    return weights


@handler("ReverseV2", ir="flip")
def reverse(ctx) -> None:
    """tf.reverse: the entries along the given axes in reverse order (a backward layer's
    time axis)."""
    rank = ctx.rank(0)
    axes = sorted(int(axis) % rank for axis in ctx.const(1).reshape(-1))
    ctx.emit("flip", [ctx.input(0)], attrs={"axes": axes})
