"""TF graph -> IR: find what the outputs need, run one handler per op, stream weights.

Every tensor that feeds the requested outputs is one of four kinds:
- input: a Placeholder;
- weight: a variable read (VariableV2 + Identity, or VarHandleOp + ReadVariableOp);
- constant: a Const, or an op computed only from constants (folded here);
- compute: anything else, translated by the handler registered for its op type.
Unsupported ops are all collected before anything is written.
"""

from __future__ import annotations

import difflib
from collections import Counter
from typing import Any

import numpy as np

from codegen.errors import InputError, UnsupportedOpsError, UsageError
from codegen.frontends.tensorflow.bn_decay import DEFAULT_BN_DECAY, layer_of
from codegen.frontends.tensorflow.context import Context, WeightSource
from codegen.frontends.tensorflow.handlers import load_handlers
from codegen.frontends.tensorflow.loader import TFModel
from codegen.frontends.tensorflow.refused import refused_family
from codegen.frontends.tensorflow.rewrites import READS, load_rewrites
from codegen.ir.graph import Graph, GraphInput, GraphOutput, Node
from codegen.resources import op_catalogue

VARIABLE_OPS = {"VarHandleOp", "VariableV2", "Variable"}
PASSTHROUGH_OPS = {"Identity", "IdentityN", "StopGradient", "Snapshot", "PreventGradient",
                   "CheckNumerics", "EnsureShape"}
STATEFUL_SOURCES = {"Placeholder", "PlaceholderWithDefault", *VARIABLE_OPS}
RANDOM_OPS = {"RandomUniform", "RandomStandardNormal", "TruncatedNormal"}
# a lowered (TF1) while loop: a cycle Enter -> Merge -> Switch -> NextIteration -> Merge, left by Exit
LOWERED_LOOP_OPS = {"Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond"}


def find_ops(model: TFModel, names: list[str]) -> list[Any]:
    """TF operations for --dst-node names (':0' suffixes allowed); suggest on a typo."""
    ops = []
    all_names = [op.name for op in model.graph.get_operations()]
    for raw in names:
        name = raw.split(":")[0]
        try:
            ops.append(model.graph.get_operation_by_name(name))
        except KeyError:
            close = difflib.get_close_matches(name, all_names, n=3, cutoff=0.5)
            hint = (f"; did you mean {', '.join(close)}?" if close else
                    f"; 'codegen inspect {model.model_path}' lists the candidate output nodes")
            raise InputError(f"{model.model_path}: no node named {name!r}{hint}") from None
    return ops


class Converter:
    """Converts the part of a TF graph that `outputs` need into an IR `Graph`."""

    def __init__(self, model: TFModel, *, bn_decay: float | None = None) -> None:
        self.model = model
        self.bn_decay = bn_decay  # --bn-decay: every BatchNorm's, whatever the model records
        self.bn_assumed: set[str] = set()  # batch_norm nodes the model records no decay for
        self.handlers = load_handlers()
        self.rewrites = load_rewrites()
        self.refs: dict[str, str] = {}  # TF tensor name -> IR tensor ref
        self.nodes: dict[str, Node] = {}
        self.inputs: dict[str, GraphInput] = {}
        self.weight_sources: dict[str, WeightSource] = {}  # IR weight name -> source
        self.source_names = model.source_names  # Const op -> variable's own name (TF2)
        self._kinds: dict[str, str] = {}
        self._reads: dict[str, list[str]] = {}  # op -> the ops its handler reads past plumbing
        self._session = None  # for runs with inputs fed
        self._sampled = None  # the graph it runs (_session_graph)
        self._zeroed = False  # whether the session's variables are set (sample_run)
        self._folded: dict[str, np.ndarray] = {}  # tensor name -> value (not Consts)
        self.warnings: list[str] = []

    # -- classification ------------------------------------------------------------
    def kind(self, tensor) -> str:
        """'input', 'weight', 'constant' or 'compute' (memoised, iterative). An op on a
        cycle (a TF1 while loop: Merge <- NextIteration) is 'compute': the walk never loops."""
        stack, walking = [tensor.op], {tensor.op.name}
        while stack:
            op = stack[-1]
            if op.name in self._kinds:
                walking.discard(stack.pop().name)
                continue
            pending = [t.op for t in op.inputs if t.op.name not in self._kinds]
            if any(p.name in walking for p in pending):
                self._kinds[op.name] = "compute"
            elif op.type in STATEFUL_SOURCES or op.type == "Const" or not pending:
                self._kinds[op.name] = self._classify(op)
            else:
                stack.extend(pending)
                walking.update(p.name for p in pending)
                continue
            walking.discard(stack.pop().name)
        return self._kinds[tensor.op.name]

    def _classify(self, op) -> str:
        if op.type in ("Placeholder", "PlaceholderWithDefault"):
            return "input"
        if op.type in VARIABLE_OPS:
            return "variable"
        if op.type == "Const":
            return "constant"
        kinds = {self._kinds[t.op.name] for t in op.inputs}
        if op.type in PASSTHROUGH_OPS | {"ReadVariableOp"} and kinds <= {"variable", "weight"}:
            return "weight"
        if kinds == {"constant"} and op.type not in RANDOM_OPS:
            return "constant"
        return "compute"

    # -- traversal -------------------------------------------------------------------
    def compute_ops(self, outputs: list[Any]) -> list[Any]:
        """Compute ops the outputs depend on, in a topological order of the TF graph."""
        order = {op.name: i for i, op in enumerate(self.model.graph.get_operations())}
        needed: dict[str, Any] = {}
        stack = [op for op in outputs]
        while stack:
            op = stack.pop()
            if op.name in needed:
                continue
            needed[op.name] = op
            handler = self.handlers.get(op.type)
            pattern = next((tensors for reads in READS.get(op.type, ())
                            if (tensors := reads(op)) is not None), None)
            if pattern is not None:  # a multi-node pattern ending here reads these
                tensors = pattern
                self._reads[op.name] = [tensor.op.name for tensor in tensors]
            elif handler is not None and handler.reads is not None:  # past plumbing
                tensors = handler.reads(op)
                self._reads[op.name] = [tensor.op.name for tensor in tensors]
            else:
                static = handler.static if handler is not None else ()
                static = static(op) if callable(static) else static
                tensors = [t for index, t in enumerate(op.inputs) if index not in static]
            for tensor in tensors:
                if self.kind(tensor) == "compute":
                    stack.append(tensor.op)
                elif self.kind(tensor) == "input":
                    self._add_input(tensor.op)
        # a functional While goes to its handler (an RNN layer, or refused by name with the
        # other problems); a lowered TF1 loop is a cycle no handler can take
        loops = sorted({op.get_attr("frame_name").decode()
                        for op in needed.values() if op.type == "Enter"})
        if loops or any(op.type in LOWERED_LOOP_OPS for op in needed.values()):
            raise UnsupportedOpsError(
                f"{self.model.model_path}: the outputs need {len(loops) or 'a'} while loop(s) "
                f"that codegen does not recognise as a layer: {', '.join(loops) or 'While'}; "
                "nothing was written: pick an earlier --dst-node ('codegen inspect' lists "
                "candidates)", details=[f"while loop {name!r}" for name in loops])
        return _toposort(list(needed.values()), order, self._reads)

    def _add_input(self, op) -> None:
        if op.name not in self.inputs:
            tensor = op.outputs[0]
            if tensor.shape.rank is None:  # an IR input has a rank: sizes may be unknown
                raise UnsupportedOpsError(
                    f"input {op.name!r} has an unknown rank; nothing was written: export it "
                    "with a shape whose rank is known (e.g. tf.TensorSpec([None, 3]))")
            shape = tensor.shape.as_list()
            self.inputs[op.name] = GraphInput(op.name, shape, tensor.dtype.name, tf_name=op.name)
            self.refs[tensor.name] = f"{op.name}:0"

    def convert(self, output_ops: list[Any], input_names: list[str] | None = None) -> Graph:
        unsupported: dict[str, list[str]] = {}
        refused: list[UnsupportedOpsError] = []  # ops of a known type in a form we refuse
        failed: set[str] = set()  # ops not converted, and what only they feed
        for op in self.compute_ops(output_ops):
            known = op.type in self.handlers or op.type in PASSTHROUGH_OPS
            if known and any(tensor.op.name in failed for tensor in op.inputs):
                failed.add(op.name)  # not converted for want of its inputs: no problem of its own
            elif op.type in PASSTHROUGH_OPS and op.inputs:
                for index, tensor in enumerate(op.outputs):  # IdentityN has several
                    self.refs[tensor.name] = Context(self, op).input(index)
            elif op.type in self.handlers:
                ctx = Context(self, op)  # a multi-node pattern ending here, else the op alone
                try:
                    if not any(match(ctx) for match in self.rewrites.get(op.type, ())):
                        self.handlers[op.type].convert(ctx)
                except UnsupportedOpsError as exc:
                    refused.append(exc)
                    failed.add(op.name)
            elif refused_family(op.type) is not None:  # no PyTorch meaning: say why
                refused.append(UnsupportedOpsError(
                    f"node {op.name!r} ({op.type}): {refused_family(op.type).reason}"))
                failed.add(op.name)
            else:
                unsupported.setdefault(op.type, []).append(op.name)
                failed.add(op.name)
            if op.name in failed:  # keep going to find every problem
                for tensor in op.outputs:
                    self.refs.setdefault(tensor.name, f"{op.name}:{tensor.value_index}")
        if len(refused) == 1 and not unsupported:
            raise refused[0]
        if unsupported or refused:
            raise _unsupported_error(self.model.model_path, unsupported, refused)
        outputs = []
        for op in output_ops:
            if op.outputs[0].name not in self.refs:
                raise InputError(f"output node {op.name!r} does not depend on any input")
            outputs.append(GraphOutput(op.name, self.refs[op.outputs[0].name], tf_name=op.name))
        self._prune([output.source for output in outputs])
        self._complete_shapes()
        self._check_weights()
        return Graph(
            inputs=self._ordered_inputs(input_names),
            outputs=outputs,
            nodes=self.nodes,
            weights={},
            layout="NHWC",
        )

    def convert_now(self, tensor) -> None:
        """Convert what computes `tensor` (a handler's `static` operand it could not read at
        conversion time, e.g. a reshape's sizes known only at run time) before the op that
        reads it; ops converted already are kept. A problem is the reading op's."""
        for op in self.compute_ops([tensor.op]):
            if all(t.name in self.refs for t in op.outputs):
                continue
            if op.type in PASSTHROUGH_OPS and op.inputs:
                for index, out in enumerate(op.outputs):
                    self.refs[out.name] = Context(self, op).input(index)
            elif op.type in self.handlers:
                ctx = Context(self, op)
                if not any(match(ctx) for match in self.rewrites.get(op.type, ())):
                    self.handlers[op.type].convert(ctx)
            else:
                reason = refused_family(op.type)
                raise UnsupportedOpsError(
                    f"node {op.name!r} ({op.type}): "
                    + (reason.reason if reason is not None else "no handler for this op type")
                    + f" (it computes sizes read by {tensor.op.name!r})")

    def _ordered_inputs(self, names: list[str] | None) -> list[GraphInput]:
        """The inputs in the order `forward` takes them: as named by --input, else in the
        source's order (a Keras model's `model.inputs`), else in the graph's node order."""
        if names:
            names = [name.split(":")[0] for name in names]
            unknown = [name for name in names if name not in self.inputs]
            missing = [name for name in self.inputs if name not in names]
            if unknown or missing or len(set(names)) != len(names):
                problem = (f"{unknown[0]!r} is not an input the outputs read" if unknown else
                           f"{missing[0]!r} is missing" if missing else "a name is repeated")
                raise UsageError(f"--input: {problem}; name each of the inputs "
                                 f"{', '.join(map(repr, self.inputs))} once, in the order "
                                 "forward should take them")
            return [self.inputs[name] for name in names]
        source = {name: index for index, name in enumerate(self.model.inputs)}
        graph = {op.name: index for index, op in enumerate(self.model.graph.get_operations())}
        order = sorted(self.inputs, key=lambda name: (source.get(name, len(source)), graph[name]))
        return [self.inputs[name] for name in order]

    def _complete_shapes(self) -> None:
        """Fill the sizes TF's static shapes leave unknown (after a crop or a run-time
        reshape) by running the graph once at batch 1; the batch stays unknown. Sizes
        read from values (catalogue `data_dependent`: bincount's max + 1) stay unknown,
        in the op and in what follows from it."""
        from_values = self._after_data_dependent()
        unknown = [node for node in self.nodes.values() if node.tf_name == node.name
                   and any(None in info.shape[1:] for info in node.outputs)
                   and node.name not in from_values]
        if not unknown or any(None in i.shape[1:] for i in self.inputs.values()):
            return
        from tensorflow.python.ops.array_ops import shape as tf_shape

        graph = self._session_graph()
        with graph.as_default():
            shapes = [[tf_shape(t) for t in graph.get_operation_by_name(node.name).outputs]
                      for node in unknown]
        feeds = {f"{i.name}:0": np.zeros([1, *i.shape[1:]], i.dtype) for i in self.inputs.values()}
        values = self._session_run(shapes, feeds)
        for node, node_shapes in zip(unknown, values):
            for info, shape in zip(node.outputs, node_shapes):
                info.shape = [info.shape[0], *(int(size) for size in shape[1:])]

    def _after_data_dependent(self) -> set[str]:
        """The nodes whose sizes may follow from values: data-dependent ops and their readers."""
        catalogue = op_catalogue()
        found = {name for name, node in self.nodes.items()
                 if catalogue.get(node.op, {}).get("data_dependent")}
        while True:
            more = {name for name, node in self.nodes.items() if name not in found
                    and any(ref.rpartition(":")[0] in found for ref in node.inputs)}
            if not more:
                return found
            found |= more

    def bn_momentum(self, node: str, variables: list[str]) -> float:
        """PyTorch's momentum (1 - decay) of the BatchNorm `node` that reads `variables`
        (their own names): --bn-decay, else the decay the model records for their layer,
        else TF-slim's default (and `node` is listed in `bn_assumed`)."""
        decay = self.bn_decay
        if decay is None:
            decays = self.model.bn_decays
            decay = next((decays[layer_of(name)] for name in variables
                          if layer_of(name) in decays), None)
        if decay is None:
            self.bn_assumed.add(node)
            decay = DEFAULT_BN_DECAY
        return round(1.0 - decay, 10)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def ref_of(self, tensor) -> str:
        """The IR ref of a TF tensor that is already converted."""
        return self.refs[tensor.name]

    def _prune(self, output_refs: list[str]) -> None:
        """Drop nodes no output needs (what a fused pattern, e.g. batch norm, left behind)."""
        needed, stack = set(), [ref.rpartition(":")[0] for ref in output_refs]
        while stack:
            name = stack.pop()
            if name in needed or name not in self.nodes:
                continue
            needed.add(name)
            stack.extend(ref.rpartition(":")[0] for ref in self.nodes[name].inputs)
        self.nodes = {name: node for name, node in self.nodes.items() if name in needed}
        used = {weight for node in self.nodes.values() for weight in node.weights.values()}
        self.weight_sources = {k: v for k, v in self.weight_sources.items() if k in used}

    def _check_weights(self) -> None:
        """Every variable the graph reads is in the checkpoint with the right shape."""
        reader = self.model.reader
        shapes = reader.get_variable_to_shape_map() if reader else {}
        problems = []
        for source in self.weight_sources.values():
            if source.kind != "variable":
                continue
            key, shape = source.key, source.shape
            if key not in shapes:
                problems.append(f"variable {key!r} is not in the checkpoint")
            elif shape is not None and list(shapes[key]) != list(shape):
                problems.append(f"variable {key!r} is {shapes[key]} in the checkpoint, {shape} in the graph")
        if problems:
            raise InputError(
                f"{self.model.weights_path}: the checkpoint does not match the graph: "
                f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                + "; pass the checkpoint saved with this graph (-w PREFIX)",
                details=problems,
            )

    def fold(self, tensor) -> np.ndarray:
        """Evaluate a tensor computed only from constants: a Const is read from its
        NodeDef; anything else runs as a graph of its own ancestors alone. (A session on
        the whole graph copies the whole graph, weights included, for every new fetch, and
        keeps each copy: 124 folds of BERT took 19 s and several GB.)"""
        if tensor.op.type == "Const":
            return self.const_value(tensor.op)
        if tensor.name not in self._folded:
            self._folded[tensor.name] = self._run_alone(tensor)
        return self._folded[tensor.name].copy()

    def const_value(self, op) -> np.ndarray:
        """A Const's value (from `model.aside` where the loader set it aside)."""
        if op.name in self.model.aside:
            return self.model.aside[op.name]
        from tensorflow.python.framework.tensor_util import MakeNdarray as make_ndarray

        return make_ndarray(op.get_attr("value"))

    def _run_alone(self, tensor) -> np.ndarray:
        from codegen.frontends.tensorflow.compat import import_tf_core

        tf = import_tf_core()
        needed, stack = {}, [tensor.op]
        while stack:
            op = stack.pop()
            if op.name not in needed:
                needed[op.name] = op
                stack.extend(t.op for t in op.inputs)
        graph_def = tf.GraphDef()
        graph_def.versions.CopyFrom(self.model.graph.graph_def_versions)
        for op in needed.values():
            node = graph_def.node.add()
            node.CopyFrom(op.node_def)
            if op.name in self.model.aside:  # its value, in place of the one zero
                value = node.attr["value"].tensor
                value.ClearField("float_val")
                value.tensor_content = self.model.aside[op.name].tobytes()
            kept = [ref for ref in node.input if not ref.startswith("^")]
            del node.input[:]
            node.input.extend(kept)
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
        with tf.Session(graph=graph) as session:
            return np.asarray(session.run(tensor.name))

    def _run(self, tensor, feeds: dict | None = None) -> np.ndarray:
        return np.asarray(self._session_run(tensor, feeds))

    def _session_run(self, fetches, feeds: dict | None = None):
        """Run `fetches` (tensors or ops of the model's graph or of `_session_graph()`, by
        name) in the one session of every evaluation with inputs fed; `feeds` by name."""
        from tensorflow.python.util import nest

        graph = self._session_graph()
        fetches = nest.map_structure(lambda f: graph.as_graph_element(f.name), fetches)
        return self._session.run(fetches, feeds)

    def _session_graph(self):
        """The graph the evaluation session runs: the model's, each weight the loader set
        aside (a Const of one zero repeated to its shape) made a Fill of that zero. Every
        executor of a session (one per new set of fetches and feeds) builds its own Consts
        at full size, so sampling a 4-layer Llama's sizes 16 times kept 626 MB of zeros,
        growing with depth; a Fill's zeros live only while a run needs them. Constant
        folding is off (it would make the Fills Consts again); the runs are tiny. Each Fill
        waits for the other inputs of the ops that read it (`_just_in_time`): else every
        Fill, having no inputs, runs first, and a run holds all the weights at once."""
        from codegen.frontends.tensorflow.compat import import_tf_core

        tf = import_tf_core()
        if self._session is None and self._sampled is not None:
            self._session = tf.Session(graph=self._sampled, config=self._session_config())
        if self._session is not None:
            return self._session.graph

        graph_def, filled = self.model.graph.as_graph_def(), set()
        for node in list(graph_def.node):
            if node.op != "Const" or node.name not in self.model.aside:
                continue
            filled.add(node.name)
            tensor = node.attr["value"].tensor
            dims = [dim.size for dim in tensor.tensor_shape.dim]
            shape, zero = graph_def.node.add(), graph_def.node.add()
            shape.name, zero.name = f"{node.name}/codegen_shape", f"{node.name}/codegen_zero"
            shape.op = zero.op = "Const"
            shape.attr["dtype"].type = 3  # int32
            shape.attr["value"].tensor.dtype = 3
            shape.attr["value"].tensor.tensor_shape.dim.add(size=len(dims))
            shape.attr["value"].tensor.int_val.extend(dims)
            zero.attr["dtype"].type = tensor.dtype
            zero.attr["value"].tensor.CopyFrom(tensor)
            zero.attr["value"].tensor.ClearField("tensor_shape")
            node.op = "Fill"
            node.ClearField("attr")
            node.attr["T"].type = tensor.dtype
            node.attr["index_type"].type = 3
            node.input[:] = [shape.name, zero.name, *node.input]
        _just_in_time(graph_def, filled)
        self._sampled = tf.Graph()
        with self._sampled.as_default():
            tf.import_graph_def(graph_def, name="")
        return self._session_graph()

    @staticmethod
    def _session_config():
        from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

        off = rewriter_config_pb2.RewriterConfig.OFF
        return config_pb2.ConfigProto(graph_options=config_pb2.GraphOptions(
            optimizer_options=config_pb2.OptimizerOptions(
                do_constant_folding=False, opt_level=config_pb2.OptimizerOptions.L0),
            rewrite_options=rewriter_config_pb2.RewriterConfig(
                constant_folding=off, disable_meta_optimizer=True)))

    def _close_session(self) -> None:
        """Close the evaluation session where nothing is lost with it (no variables it set):
        it keeps an executor, a copy of the graph up to the fetches, for every new set of
        fetches (~15 KB a node: 1.1 B Llama's 44 samplings of sizes would keep ~1 GB)."""
        if self._session is not None and not any(
                op.type in ("VarHandleOp", "VariableV2", "Variable")
                for op in self._session.graph.get_operations()):
            self._session.close()
            self._session = None

    def runtime_shape(self, tensor) -> list[int]:
        """A shape operand computed at run time (e.g. Tensordot's [N*H*W, C]) as a reshape
        target: evaluated at batch 1 and batch 2; the dimension that scales with the batch
        becomes -1. Needs inputs whose sizes are known except the batch."""
        values = []
        for batch in (1, 2):
            feeds = {}
            for graph_input in self.inputs.values():
                shape = [batch if i == 0 else size for i, size in enumerate(graph_input.shape)]
                if None in shape:
                    raise UnsupportedOpsError(
                        f"{tensor.op.name}: its shape is computed at run time from input "
                        f"{graph_input.name!r}, whose size is unknown; give the model a fixed "
                        "input size")
                feeds[f"{graph_input.name}:0"] = np.zeros(shape, graph_input.dtype)
            values.append(self._run(tensor, feeds).reshape(-1).tolist())
        one, two = values
        return [-1 if a != b else int(a) for a, b in zip(one, two)]

    def sample_run(self, tensors, shapes_of=()) -> list[list[np.ndarray]] | None:
        """Values of `tensors`, then the shapes of `shapes_of`, run twice with the graph's
        inputs as zeros of two sample sizes (an unknown size of axis i is the same in every
        input, as `codegen verify` draws them); None if the graph does not run so."""
        from tensorflow.python.ops.array_ops import shape as tf_shape

        graph = self._session_graph()
        with graph.as_default():
            fetches = [*tensors, *(tf_shape(graph.as_graph_element(t.name)) for t in shapes_of)]
        self._zero_variables()
        runs = []
        for sizes in ((2, 3, 5, 7, 11, 13), (3, 7, 11, 5, 13, 17)):
            feeds = {}
            for graph_input in self.inputs.values():
                shape = [sizes[axis % len(sizes)] if size is None else size
                         for axis, size in enumerate(graph_input.shape)]
                feeds[f"{graph_input.name}:0"] = np.zeros(shape, graph_input.dtype)
            try:
                runs.append([np.asarray(v) for v in self._session_run(fetches, feeds)])
            except Exception:  # noqa: BLE001 - the graph needs other values or inputs
                self._close_session()
                return None
        self._close_session()
        return runs

    def _zero_variables(self) -> None:
        """Set every variable of the folding session to zeros, once (for `sample_run`,
        which reads only shapes; the values come from the checkpoint, never from here)."""
        if self._zeroed:
            return
        from tensorflow.python.ops import array_ops, resource_variable_ops, state_ops

        assigns = []
        graph = self._session_graph()
        with graph.as_default():
            for op in list(graph.get_operations()):
                if op.type == "VarHandleOp":
                    shape = [dim.size for dim in op.get_attr("shape").dim]
                    if any(size < 0 for size in shape):
                        continue
                    zeros = array_ops.zeros(shape, op.get_attr("dtype"))
                    assigns.append(resource_variable_ops.assign_variable_op(op.outputs[0], zeros))
                elif op.type in ("VariableV2", "Variable") and op.outputs[0].shape.is_fully_defined():
                    zeros = array_ops.zeros(op.outputs[0].shape, op.outputs[0].dtype.base_dtype)
                    assigns.append(state_ops.assign(op.outputs[0], zeros).op)
        self._session_run(assigns)
        self._zeroed = True

    def read_source(self, source: WeightSource) -> np.ndarray:
        """The value of a weight's source as TF stores it, read from the checkpoint tensor
        by tensor (an IR weight's transforms are applied when the backend writes it)."""
        if source.kind == "variable":
            try:
                return self.model.reader.get_tensor(source.key)
            except Exception as exc:  # noqa: BLE001 - TF raises IndexError, OpError, ...
                raise _damaged_data(self.model.weights_path, source.key, exc) from None
        if source.aside:
            return np.asarray(self.model.aside[source.aside])
        return np.asarray(source.value)


PASS_THROUGH = ("Identity", "ReadVariableOp", "Cast")


def _just_in_time(graph_def, fills: set[str]) -> None:
    """Give each node of `fills` a control input on the producers of the other inputs of the
    ops that read it (through Identity/Cast), so that it runs when they are ready, not at
    the start of a run. Left as it was if that would make a cycle."""
    nodes = {node.name: node for node in graph_def.node}
    readers: dict[str, list] = {}
    for node in graph_def.node:
        for ref in node.input:
            readers.setdefault(ref.lstrip("^").split(":")[0], []).append(node)
    added = []
    for name in fills:
        chain, stack, uses = {name}, [name], []
        while stack:
            for reader in readers.get(stack.pop(), ()):
                if reader.op in PASS_THROUGH and reader.name not in chain:
                    chain.add(reader.name)
                    stack.append(reader.name)
                elif reader.op not in PASS_THROUGH:
                    uses.append(reader)
        waits = {ref.split(":")[0] for use in uses for ref in use.input
                 if not ref.startswith("^") and ref.split(":")[0] not in chain}
        waits = {w for w in waits if w in nodes and nodes[w].op != "Const"}
        if waits:
            nodes[name].input.extend(f"^{w}" for w in sorted(waits))
            added.append((nodes[name], len(waits)))
    if added and not _acyclic(graph_def):
        for node, count in added:
            del node.input[-count:]


def _acyclic(graph_def) -> bool:
    inputs = {node.name: {ref.lstrip("^").split(":")[0] for ref in node.input} for node in graph_def.node}
    state: dict[str, int] = {}  # 1: being visited, 2: done
    for start, first in inputs.items():
        if state.get(start):
            continue
        stack, state[start] = [(start, iter(first))], 1
        while stack:
            name, pending = stack[-1]
            following = next(pending, None)
            if following is None:
                state[name] = 2
                stack.pop()
            elif following in inputs and state.get(following) == 1:
                return False
            elif following in inputs and not state.get(following):
                state[following] = 1
                stack.append((following, iter(inputs[following])))
    return True


def _damaged_data(prefix, key: str, exc: Exception) -> InputError:
    files = sorted(prefix.parent.glob(prefix.name + ".data-*"))
    where = files[0] if len(files) == 1 else f"{prefix}.data-*"
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
    return InputError(f"{where}: truncated or damaged, variable {key!r} cannot be read ({reason}); "
                      "download or save the checkpoint again")


def _toposort(ops: list[Any], order: dict[str, int], reads: dict[str, list[str]]) -> list[Any]:
    import networkx as nx

    graph = nx.DiGraph()
    names = {op.name: op for op in ops}
    graph.add_nodes_from(names)
    for op in ops:
        for name in [tensor.op.name for tensor in op.inputs] + reads.get(op.name, []):
            if name in names:
                graph.add_edge(name, op.name)
    return [names[n] for n in nx.lexicographical_topological_sort(graph, key=order.__getitem__)]


def _unsupported_error(path, unsupported: dict[str, list[str]],
                       refused: list[UnsupportedOpsError] = ()) -> UnsupportedOpsError:
    """Every problem at once: op types without a handler (with counts and node names) and
    ops of known types in a form codegen refuses (with the reason)."""
    counts = Counter({op: len(names) for op, names in unsupported.items()})
    summary = ", ".join(f"{op} x{count}" for op, count in counts.most_common())
    details = [f"{op}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
               for op, names in unsupported.items()]
    details += [exc.message for exc in refused]
    parts = [f"{sum(counts.values())} node(s) of op types codegen cannot convert: {summary}"
             ] if counts else []
    if refused:
        parts.append(f"{len(refused)} node(s) in a form it refuses ({refused[0].message}"
                     + (" and more)" if len(refused) > 1 else ")"))
    return UnsupportedOpsError(
        f"{path}: {'; '.join(parts)}; nothing was written: pick an earlier --dst-node "
        "('codegen inspect' lists candidates)",
        details=details,
    )
