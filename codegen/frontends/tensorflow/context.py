"""What a handler sees of one TF operation: its inputs, attributes, and a way to emit IR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from codegen.errors import UnsupportedOpsError
from codegen.ir.graph import Node, TensorInfo
from codegen.ir.sizes import gives_size, reads_numbers
from codegen.ir.weights import transform_name


def tensor_info(tensor) -> TensorInfo:
    shape = tensor.shape.as_list() if tensor.shape.rank is not None else []
    return TensorInfo(shape, tensor.dtype.base_dtype.name)


class Context:
    """The one interface handlers and rewrites see: this op, the graph around it (read
    only), and `emit`. The converter behind it (converter.py) is not theirs to touch."""

    def __init__(self, converter: Any, op) -> None:
        self.converter = converter
        self.op = op

    # -- the TF op ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.op.name

    @property
    def scope(self) -> str:
        return self.op.name.rpartition("/")[0]

    def attr(self, name: str, default: Any = None) -> Any:
        try:
            value = self.op.get_attr(name)
        except ValueError:
            return default
        return value.decode() if isinstance(value, bytes) else value

    def rank(self, index: int) -> int | None:
        return self.op.inputs[index].shape.rank

    def output_info(self, index: int = 0) -> TensorInfo:
        return tensor_info(self.op.outputs[index])

    def input_info(self, index: int) -> TensorInfo:
        return tensor_info(self.op.inputs[index])

    def fail(self, reason: str) -> None:
        raise UnsupportedOpsError(f"node {self.name!r} ({self.op.type}): {reason}")

    # -- the rest of the graph (what patterns look at) --------------------------------------
    def kind_of(self, tensor) -> str:
        """'input', 'weight', 'variable', 'constant' or 'compute' for any TF tensor."""
        return self.converter.kind(tensor)

    def value_of(self, tensor) -> np.ndarray:
        """The value of a tensor computed from constants only."""
        return self.converter.fold(tensor)

    def ref_of(self, tensor) -> str:
        """The IR ref of a TF tensor converted before this op."""
        return self.converter.ref_of(tensor)

    def ir_op(self, ref: str) -> str | None:
        """The IR op that produces `ref` (None for a graph input)."""
        node = self.converter.nodes.get(ref.rpartition(":")[0])
        return node.op if node is not None else None

    def alias(self, tensor, ref: str) -> None:
        """Let `tensor` (an output of this op) stand for the IR value `ref`."""
        self.converter.refs[tensor.name] = ref

    def rescope(self, tf_names: set[str], old: str, new: str) -> None:
        """Nodes emitted for the TF ops `tf_names` under scope `old` move to `new` (a
        scope level a TF construct adds, e.g. vectorized_map's loop body, dropped)."""
        for node in self.converter.nodes.values():
            if node.tf_name in tf_names and (node.scope + "/").startswith(old + "/"):
                node.scope = new + node.scope[len(old):]

    def of(self, op) -> Context:
        """The context of another op of a pattern, e.g. to register the weight one of its
        inputs reads (`ctx.of(matmul).weight(1)`)."""
        return Context(self.converter, op)

    def runtime_shape(self, tensor) -> list[int]:
        return self.converter.runtime_shape(tensor)

    def sample_run(self, tensors, shapes_of=()) -> list[list[np.ndarray]] | None:
        """`tensors`' values and `shapes_of`'s shapes with the inputs at two sample sizes
        (zeros), to check at conversion what a shape read from another tensor amounts to."""
        return self.converter.sample_run(tensors, shapes_of)

    def run_fed(self, tensors, feeds: dict) -> list[np.ndarray] | None:
        """`tensors`' values with some tensors fed ({tensor: value}), e.g. a size that TF
        computes from a layer's input, read with that input at a chosen size; None if the
        values need more than what is fed."""
        try:
            return [np.asarray(v) for v in self.converter._session_run(
                list(tensors), {tensor.name: value for tensor, value in feeds.items()})]
        except Exception:  # noqa: BLE001 - the tensors depend on more than the feeds
            return None

    def from_variable(self, tensor) -> bool:
        """Whether `tensor` reads a source variable: a checkpoint's, or a SavedModel's that
        loading froze into a Const (which stays a weight: a parameter or buffer)."""
        if self.converter.kind(tensor) in ("weight", "variable"):
            return True
        return _constant_op(tensor)[0].name in self.converter.source_names

    def variable_names(self) -> set[str]:
        return self.converter.model.variable_names()

    def warn(self, message: str) -> None:
        self.converter.warn(message)

    def bn_momentum(self, weights: dict[str, str]) -> float:
        """PyTorch's momentum (1 - TF decay) of the batch norm with these IR weights (role ->
        name): its layer's own, found through the variables they were read from."""
        sources = [self.converter.weight_sources[name] for name in weights.values()]
        names = self.converter.source_names
        return self.converter.bn_momentum(self.name, [names.get(source.key, source.key)
                                                      for source in sources])

    # -- inputs ---------------------------------------------------------------------------
    def kind(self, index: int) -> str:
        return self.converter.kind(self.op.inputs[index])

    def is_const(self, index: int) -> bool:
        return self.kind(index) == "constant"

    def const(self, index: int) -> np.ndarray:
        """The value of a constant input (folded from constants if needed)."""
        tensor = self.op.inputs[index]
        if self.converter.kind(tensor) != "constant":
            self.fail(f"input {index} must be a constant, it is computed at run time")
        if tensor.op.type == "Const":
            return self.converter.const_value(tensor.op)
        return self.converter.fold(tensor)

    def input(self, index: int) -> str:
        """The IR ref of a data input; constants and weights become `constant` nodes."""
        tensor = self.op.inputs[index]
        if tensor.name in self.converter.refs:
            return self.converter.refs[tensor.name]
        kind = self.converter.kind(tensor)
        if kind not in ("constant", "weight"):
            raise KeyError(f"{tensor.name} was not converted before {self.name}")
        weight = self.weight(index)
        node = Node(
            name=tensor.op.name,
            op="constant",
            inputs=[],
            outputs=[tensor_info(tensor)],
            weights={"value": weight},
            tf_name=tensor.op.name,
            scope=self.scope,  # where it is used: captured constants live outside the model
        )
        self.converter.nodes[node.name] = node
        self.converter.refs[tensor.name] = f"{node.name}:0"
        return f"{node.name}:0"

    def input_or_scalar(self, index: int, integers: bool = False) -> str:
        """Input `index` of an elementwise op; a one-element floating-point constant that
        leaves the other operand's shape as it is becomes a `scalar` node, so the code
        reads `x * 0.5` rather than a buffer (`integers`: an integer one too, `ids != 0`)."""
        tensor, other = self.op.inputs[index], self.op.inputs[1 - index]
        number = tensor.dtype.is_floating or (integers and tensor.dtype.is_integer)
        if (tensor.name in self.converter.refs or self.converter.kind(tensor) != "constant"
                or not number or tensor.shape.num_elements() != 1
                or other.shape.rank is None or self.op.outputs[0].shape.rank != other.shape.rank):
            return self.input(index)
        value = self.const(index).reshape(())
        if not np.isfinite(value):
            return self.input(index)
        node = Node(
            name=f"{self.name}/scalar{index}",
            op="scalar",
            inputs=[],
            outputs=[TensorInfo([], tensor.dtype.base_dtype.name)],
            # the shortest decimal of its own dtype (an integer stays one)
            attrs={"value": int(value) if tensor.dtype.is_integer else float(str(value[()]))},
            tf_name=tensor.op.name,
            scope=self.scope,
        )
        self.converter.nodes[node.name] = node
        return f"{node.name}:0"

    def weight(self, index: int, transforms: list[tuple[str, tuple]] | None = None) -> str:
        """Register the variable or constant feeding input `index`; return its IR name.

        One variable (or one Const, however many Identity ops read it) is one source,
        written once. `transforms` ("reshape", shape) / ("transpose", perm) give the layout
        this op reads it in; readers with equal transforms share one IR weight.
        """
        tensor = self.op.inputs[index]
        if tensor.dtype.name == "string":
            self.fail(f"input {index} ({tensor.op.name!r}) holds strings, which PyTorch "
                      "tensors cannot hold (preprocess outside the model)")
        kind = self.converter.kind(tensor)
        if kind in ("weight", "variable"):  # a read, or the handle itself (ResourceGather)
            variable = _variable_op(tensor)
            key = variable.get_attr("shared_name").decode() if variable.type == "VarHandleOp" else ""
            key = key or variable.name
            if tensor.op is variable and variable.type == "VarHandleOp":  # the handle itself
                shape = [dim.size for dim in variable.get_attr("shape").dim]
            else:
                shape = tensor.shape.as_list() if tensor.shape.rank is not None else None
            source = WeightSource("variable", key, shape)
        elif kind == "constant":
            const, reshaped = _constant_op(tensor)
            table = self._whole_table(tensor)
            if table is not None:  # a trainable table read whole (ViT's learned positions)
                const, reshaped = table, True
            row = _unstacked_row(const, tensor)
            if row is not None:  # one row of a Const (tf_keras unstacks a GRU's two biases)
                const, axis, position = row
                transforms = [("take", (axis, position)), ("reshape", tuple(tensor.shape.as_list())),
                              *(transforms or ())]
            # a Const's value is read as it is; anything else is folded (one source per output)
            key = const.name if len(const.outputs) == 1 else f"{const.name}:{tensor.value_index}"
            source = self._constant_source(key, const) if const.type == "Const" else \
                WeightSource("constant", key, None, value=self.const(index))
            if reshaped:  # read through Reshape/Squeeze: the same values in another shape
                transforms = [("reshape", tuple(tensor.shape.as_list())), *(transforms or ())]
        else:
            self.fail(f"input {index} must be a weight (variable or constant)")
        return self._register(source, transforms or ())

    def _whole_table(self, tensor):
        """The trainable Const a gather reads every row of, in order (a learned position
        table indexed by range(length) with length its size: its value folds to the table
        itself, which must stay the trainable variable, not become a constant copy)."""
        op = tensor.op
        while op.type in PASS_VALUES + PASS_SHAPES and op.inputs:
            op = op.inputs[0].op
        if op.type not in ("GatherV2", "Gather") or not tensor.shape.is_fully_defined():
            return None
        table, reshaped = _constant_op(op.inputs[0])
        if table.type != "Const" or reshaped or table.name not in self.converter.model.trainable:
            return None
        if op.type == "GatherV2" and int(self.converter.fold(op.inputs[2])) != 0:
            return None
        rows = table.outputs[0].shape.as_list()[0]
        indices = np.asarray(self.converter.fold(op.inputs[1])).reshape(-1)
        return table if np.array_equal(indices, np.arange(rows)) else None

    def _constant_source(self, key: str, const) -> WeightSource:
        """A Const's value as a weight source; a large one the loader keeps aside (a
        SavedModel's variable still in its checkpoint) is read only when it is written, so
        the converter never holds all weights at once."""
        if const.name in self.converter.model.aside:
            return WeightSource("constant", key, None, aside=const.name)
        return WeightSource("constant", key, None, value=self.converter.const_value(const))

    def _register(self, source: WeightSource, steps) -> str:
        """Record `source` read through `steps`; its IR name says both (equal names, equal
        tensors)."""
        source.transforms = tuple((step, tuple(argument)) for step, argument in steps)
        source.trainable = source.key in self.converter.model.trainable
        name = transform_name(source.key, source.transforms)
        self.converter.weight_sources[name] = source
        return name

    def channel_weight(self, tensor, value: np.ndarray, name: str) -> str:
        """A weight a pattern computed (`value`, e.g. a batch norm's mean read back from
        its arithmetic): the Const behind `tensor` when it holds exactly these values, so
        the weight keeps its variable's name and is shared by every reader; else a new
        weight `name`."""
        const, _ = _constant_op(tensor) if tensor is not None else (None, False)
        if const is not None and const.type != "Const":  # a bfloat16 weight read in float32?
            const = _behind_float_casts(tensor)
        if const is not None and const.type == "Const":
            stored = self.converter.const_value(const)
            narrow = stored.dtype.name in ("bfloat16", "float16")  # read through a cast
            if (stored.dtype == value.dtype or narrow) and stored.size == value.size \
                    and np.array_equal(stored.reshape(value.shape).astype(value.dtype), value):
                steps = [("reshape", tuple(value.shape))] if stored.shape != value.shape else []
                return self._register(self._constant_source(const.name, const), steps)
        return self.new_weight(name, value)

    def checkpoint_weight(self, key: str) -> str:
        """A checkpoint variable that is not an input of this op (e.g. moving statistics)."""
        shape = self.converter.model.reader.get_variable_to_shape_map()[key]
        self.converter.weight_sources[key] = WeightSource("variable", key, list(shape))
        return key

    def new_weight(self, name: str, value: np.ndarray) -> str:
        """A weight the handler makes itself (e.g. a per-channel copy of a scalar)."""
        self.converter.weight_sources[name] = WeightSource("constant", name, None, value=value)
        return name

    # -- sizes known only at run time (codegen/ir/sizes.py) --------------------------------
    def converted(self, tensor) -> str | None:
        """The IR ref of a TF tensor if it is converted already, else None."""
        return self.converter.refs.get(tensor.name)

    def ir_node(self, ref: str) -> Node | None:
        """The IR node that produces `ref` (None for a graph input), read only."""
        return self.converter.nodes.get(ref.rpartition(":")[0])

    def sizes_unknown_beyond_batch(self) -> bool:
        """Whether some graph input has an unknown size other than its batch."""
        return any(None in graph_input.shape[1:]
                   for graph_input in self.converter.inputs.values())

    def is_size_ref(self, ref: str) -> bool:
        """Whether the IR value `ref` is a size (Python), not a tensor."""
        name, _, index = ref.rpartition(":")
        node = self.converter.nodes.get(name)
        return node is not None and node.outputs[int(index)].size

    def is_size(self, index: int) -> bool:
        """Whether input `index` is a size computed at run time (converted before this op)."""
        ref = self.converter.refs.get(self.op.inputs[index].name)
        return ref is not None and self.is_size_ref(ref)

    def size_input(self, index: int) -> str:
        """The IR ref of input `index`, a size or shape vector computed at run time, for a
        handler that reads it statically where it can (`static=`) and as a value where it
        cannot: what computes it is converted now, if it was not yet."""
        tensor = self.op.inputs[index]
        if tensor.name not in self.converter.refs:
            self.converter.convert_now(tensor)
        ref = self.converter.refs[tensor.name]
        if not self.is_size_ref(ref):
            self.fail(f"input {index} ({tensor.op.name!r}) is a tensor computed at run time, "
                      "not a size read from shapes")
        return ref

    def size_tensor(self, ref: str) -> str:
        """`torch.tensor(seq_len, device=x.device)`: the size `ref` as a tensor, for an op
        that reads tensors only."""
        from codegen.frontends.tensorflow.handlers.sizes import device_of

        info = self.converter.nodes[ref.rpartition(":")[0]].outputs[int(ref.rpartition(":")[2])]
        device = device_of(self, [ref])
        name = ref.replace(":", "/") + "/tensor"
        node = Node(name=name, op="size_tensor", inputs=[ref] + ([device] if device else []),
                    outputs=[TensorInfo(list(info.shape), info.dtype)],
                    attrs={"dtype": info.dtype}, tf_name=self.name, scope=self.scope)
        self.converter.nodes[name] = node
        return f"{name}:0"

    # -- emitting IR -------------------------------------------------------------------------
    def emit(
        self,
        op: str,
        inputs: list[str],
        *,
        attrs: dict[str, Any] | None = None,
        weights: dict[str, str] | None = None,
        suffix: str = "",
        outputs: list[TensorInfo] | None = None,
        scope: str | None = None,
    ) -> str:
        """Add an IR node; without `suffix` it stands for this TF op's outputs."""
        name = f"{self.name}/{suffix}" if suffix else self.name
        outputs = outputs or [self.output_info(0)]
        sizes = [(self.is_size_ref(ref), self.ir_op(ref) == "scalar") for ref in inputs]
        if gives_size(op, sizes):
            outputs = [TensorInfo(info.shape, info.dtype, size=True) for info in outputs]
        elif any(size for size, _ in sizes) and not reads_numbers(op):  # sqrt(seq_len)
            inputs = [self.size_tensor(ref) if self.is_size_ref(ref) else ref for ref in inputs]
        node = Node(
            name=name,
            op=op,
            inputs=list(inputs),
            outputs=outputs,
            attrs=attrs or {},
            weights=weights or {},
            tf_name=self.name,
            scope=self.scope if scope is None else scope,
        )
        self.converter.nodes[name] = node
        if not suffix:
            for index in range(len(node.outputs)):
                self.converter.refs[self.op.outputs[index].name] = f"{name}:{index}"
        return f"{name}:0"


@dataclass
class WeightSource:
    """Where an IR weight comes from: a checkpoint variable or a constant's value."""

    kind: str  # "variable" | "constant"
    key: str  # checkpoint key or TF op name
    shape: list[int] | None  # the graph's static shape of a variable
    transforms: tuple[tuple[str, tuple], ...] = ()  # how the IR weight reads the source
    value: np.ndarray | None = None
    trainable: bool = False  # a trainable variable of the source (not a constant, not BN state)
    aside: str = ""  # a Const whose value the loader keeps aside: read only when written


PASS_VALUES = ("Identity", "Snapshot", "StopGradient")  # the same tensor
PASS_SHAPES = ("Reshape", "Squeeze", "ExpandDims")  # the same values in another shape


def _float_cast(op) -> bool:
    """Whether `op` casts between floating dtypes (a bfloat16 model computing in float32)."""
    return op.type == "Cast" and op.inputs[0].dtype.is_floating and op.outputs[0].dtype.is_floating


def _behind_float_casts(tensor):
    """The Const behind `tensor` through identities, reshapes and float casts, else None."""
    op = tensor.op
    while (op.type in PASS_VALUES + PASS_SHAPES or _float_cast(op)) and op.inputs:
        op = op.inputs[0].op
    return op if op.type == "Const" else None


def _constant_op(tensor) -> tuple[Any, bool]:
    """(the op that holds a constant's value, whether it is read in another shape): a
    Const behind Identity ops (a frozen TF2 function reads one Const through one Identity
    per use, and Keras reshapes a bias per call), else the tensor's own op."""
    op, reshaped = tensor.op, False
    while op.type in PASS_VALUES + PASS_SHAPES and op.inputs:
        reshaped = reshaped or op.type in PASS_SHAPES
        op = op.inputs[0].op
    if op.type != "Const" or (reshaped and not tensor.shape.is_fully_defined()):
        return tensor.op, False
    return op, reshaped


def _unstacked_row(op, tensor) -> tuple[Any, int, int] | None:
    """(the Const, axis, index) when `tensor` is one output of an Unpack of a Const (of
    known shape)."""
    if op.type != "Unpack" or tensor.op is not op or not tensor.shape.is_fully_defined():
        return None
    const, _ = _constant_op(op.inputs[0])
    if const.type != "Const" or const.outputs[0].shape != op.inputs[0].shape:
        return None
    return const, op.get_attr("axis") % op.inputs[0].shape.rank, tensor.value_index


def _variable_op(tensor):
    op = tensor.op
    while op.type not in ("VarHandleOp", "VariableV2", "Variable"):
        op = op.inputs[0].op
    return op
