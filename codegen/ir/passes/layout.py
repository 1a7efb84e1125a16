"""NHWC -> NCHW, once, for the whole graph.

Rank-4 tensors become NCHW and rank-5 ones NCDHW; kernels become OIHW / OIDHW and dense
kernels [out, in]; every axis-bearing attribute (pads, reduction/squeeze/concat/softmax
axes, transpose perms) is rewritten. A sequence [N, T, C] becomes [N, C, T] only where an op
that works channels-first (catalogue flag `channels_first`: conv1d, 1-D pooling) reads it:
one transpose in front of the first such op, and the sequence stays [N, C, T] through the
ops that follow it until one needs [N, T, C] again (a Dense, a graph output). Where an op cannot follow the new layout (a reshape that mixes spatial and
channel axes, or an op this pass does not know) exact transposes are inserted around it,
so the result is always equivalent, never approximate.
"""

from __future__ import annotations

from codegen.ir.graph import Graph, Node, TensorInfo
from codegen.ir.passes.layout_conv import ConvRules, axis_to_first, to_first, to_last
from codegen.ir.passes.layout_slicing import SlicingRules
from codegen.resources import op_catalogue

TO_NCHW = to_first(4)  # nchw = nhwc.transpose(TO_NCHW)
TO_NHWC = to_last(4)
AXIS_TO_NCHW = axis_to_first(4)  # an NHWC axis -> its NCHW position
VOLUME_OPS = ("conv3d", "conv_transpose3d", "max_pool3d", "avg_pool3d")


def spatial_ranks(graph: Graph) -> tuple[int, ...]:
    """The ranks that are channels-first everywhere: images (4), and volumes (5) where a 3-D
    op reads them (a rank-5 clip of images under TimeDistributed keeps NTHWC)."""
    volumes = any(node.op in VOLUME_OPS for node in graph.nodes.values())
    return (4, 5) if volumes else (4,)
LAST_NAMES = {3: "to_ntc", 4: "to_nhwc", 5: "to_ndhwc"}  # the transposes' node names
FIRST_NAMES = {4: "to_nchw", 5: "to_ncdhw"}

# How each IR op follows the layout is its catalogue entry's "layout" (ir_schema/ops.json):
FOLLOWS = {"elementwise", "per_channel", "pooling"}  # NCHW in, NCHW out, nothing to change
HEADS = ("attention", "unflatten")  # ops whose rank-4 outputs are [N, T, heads, size]
RULES = {"axes", "weights"}  # a visit_<op> rule below; "weights" runs even on NHWC inputs


def layout_class(op: str) -> str:
    return op_catalogue()[op]["layout"]


def channels_first(op: str) -> bool:
    return bool(op_catalogue()[op].get("channels_first"))


def _nchw(shape: list) -> list:
    return [shape[axis] for axis in to_first(len(shape))]


def has_images(graph: Graph) -> bool:
    """An image input or a 2-D/3-D conv or pooling: rank-4 (5) tensors are images, made NCHW
    (NCDHW); without one they are [N, T, heads, size] or plain arrays and keep their layout."""
    spatial = spatial_ranks(graph)
    return (any(len(graph_input.shape) in spatial for graph_input in graph.inputs)
            or any(node.op in ("conv2d", "conv3d", "max_pool_with_argmax")
                   or layout_class(node.op) == "pooling"
                   for node in graph.nodes.values()))


class LayoutPass(ConvRules, SlicingRules):
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.permuted: set[str] = set()  # refs of rank-4 tensors now in NCHW
        # a model that takes no image (token ids, sequences) has no NHWC tensors: its rank-4
        # tensors are [N, T, heads, size] and keep their layout
        self.spatial = spatial_ranks(graph)
        self.images = has_images(graph)

    def run(self) -> None:
        graph = self.graph
        if graph.layout == "NCHW":
            return
        for graph_input in graph.inputs:
            if len(graph_input.shape) in self.spatial:
                graph_input.shape = _nchw(graph_input.shape)
                self.permuted.add(f"{graph_input.name}:0")
        for node in graph.topological_order():
            self.visit(node)
        for output in graph.outputs:  # a sequence leaves as the source gives it: [N, T, C]
            if self.is_permuted(output.source) and self.rank(output.source) == 3:
                producer = graph.nodes[output.source.rpartition(":")[0]]
                output.source = self.insert_transpose(output.source, to_last(3), producer, "to_ntc")
        graph.layout = "NCHW"
        graph.reorder()

    # -- helpers ------------------------------------------------------------------------
    def is_permuted(self, ref: str) -> bool:
        return ref in self.permuted

    def rank(self, ref: str) -> int:
        return self.graph.tensor(ref).rank

    def mark_output(self, node: Node) -> None:
        """The node's rank-4 (rank-5) output is NCHW (NCDHW), or its sequence output is
        [N, C, T]: record it and fix its static shape."""
        rank = node.outputs[0].rank
        if rank in self.spatial or (rank == 3 and (channels_first(node.op) or any(
                self.is_permuted(ref) and self.rank(ref) == 3 for ref in node.inputs))):
            node.outputs[0].shape = _nchw(node.outputs[0].shape)
            self.permuted.add(f"{node.name}:0")

    def insert_transpose(self, ref: str, perm: tuple[int, ...], before: Node, suffix: str) -> str:
        info = self.graph.tensor(ref)
        name = self.graph.unique_name(f"{before.name}/{suffix}")
        shape = [info.shape[axis] for axis in perm]
        node = Node(name, "transpose", [ref], [TensorInfo(shape, info.dtype)],
                    attrs={"perm": list(perm)}, tf_name=before.tf_name, scope=before.scope)
        self.graph.nodes[name] = node
        return f"{name}:0"

    # -- rules --------------------------------------------------------------------------
    def visit(self, node: Node) -> None:
        permuted_inputs = [self.is_permuted(ref) for ref in node.inputs]
        kind = layout_class(node.op)
        if node.op == "constant":
            if self.images:
                self.visit_constant(node)
        elif channels_first(node.op):  # takes [N, C, T] whatever it is given
            getattr(self, f"visit_{node.op}")(node)
        elif node.op == "batch_norm" and node.outputs[0].rank == 3:  # nn.BatchNorm1d: [N, C, T]
            self.visit_sequence(node)
        elif node.op == "bias_add" and self.is_permuted(node.inputs[0]) and self.rank(
                node.inputs[0]) == 3 and not self.folds_into(node):
            self.fallback(node)  # BiasAdd adds along the last dim: give it [N, T, C]
        elif not any(permuted_inputs) and node.outputs[0].rank in self.spatial and self.images:
            self.visit_new_rank4(node)
        elif not any(permuted_inputs) and kind != "weights":
            return  # no rank-4 NCHW input: nothing changes
        elif kind in FOLLOWS:
            self.mark_output(node)
        elif kind == "broadcast":
            self.visit_binary(node)
        elif kind in RULES:
            getattr(self, f"visit_{node.op}")(node)
        else:
            self.fallback(node)

    def visit_new_rank4(self, node: Node) -> None:
        """A rank-4 (NHWC) tensor made from smaller ones, e.g. squeeze-excite's
        reshape([N, C] -> [N, 1, 1, C]): make it NCHW right away."""
        shape = node.outputs[0].shape
        if node.op in HEADS:  # [N, T, heads, size] of a transformer, not an image
            return
        if node.op == "reshape" and all(size == 1 for size in shape[1:-1]):
            node.attrs["shape"] = _nchw(node.attrs["shape"])
            self.mark_output(node)
        else:
            self.fallback(node)

    def visit_constant(self, node: Node) -> None:
        # rank-4 constants follow the layout; smaller ones are fixed by their consumer.
        if node.outputs[0].rank in self.spatial:
            self.graph.transform_weight(node, "value", ("transpose", to_first(node.outputs[0].rank)))
            self.mark_output(node)

    def visit_conv2d(self, node: Node) -> None:
        self.graph.transform_weight(node, "kernel", ("transpose", (3, 2, 0, 1)))  # HWIO -> OIHW
        self.mark_output(node)

    # a transposed conv's kernel HWOI becomes [I, O, H, W]: the same permutation
    visit_conv_transpose2d = visit_conv2d

    def visit_linear(self, node: Node) -> None:
        self.graph.transform_weight(node, "kernel", ("transpose", (1, 0)))  # [in, out] -> [out, in]
        if any(self.is_permuted(ref) for ref in node.inputs):
            self.fallback(node)

    def visit_binary(self, node: Node) -> None:
        for position, ref in enumerate(node.inputs):
            if self.is_permuted(ref) or self.rank(ref) == 0:
                continue
            producer = self.graph.nodes.get(ref.rpartition(":")[0])
            if producer is None or producer.op != "constant":
                return self.fallback(node)
            # a smaller constant broadcast against NCHW: align it as TF would, then permute
            entry = self.graph.weights[producer.weights["value"]]
            rank = node.outputs[0].rank
            shape = [1] * (rank - len(entry.out_shape)) + entry.out_shape
            self.graph.transform_weight(producer, "value", ("reshape", tuple(shape)),
                                        ("transpose", to_first(rank)))
            producer.outputs[0].shape = _nchw(shape)
            self.permuted.add(ref)
        self.mark_output(node)

    def visit_pad(self, node: Node) -> None:
        pads = node.attrs["pads"]
        node.attrs["pads"] = _nchw(pads)
        self.mark_output(node)

    def visit_concat(self, node: Node) -> None:
        if not all(self.is_permuted(ref) for ref in node.inputs):
            return self.fallback(node)
        node.attrs["axis"] = axis_to_first(node.outputs[0].rank)[node.attrs["axis"]]
        self.mark_output(node)

    def visit_expand(self, node: Node) -> None:
        """Sizes read from an NCHW tensor: its axes move; the expanded tensor keeps its own."""
        if self.is_permuted(node.inputs[0]):
            return self.fallback(node)
        moved = axis_to_first(self.rank(node.inputs[1]))
        node.attrs["axes"] = [None if axis is None else moved[axis] for axis in node.attrs["axes"]]

    def visit_cumsum(self, node: Node) -> None:
        if node.outputs[0].rank != 4:
            return self.fallback(node)
        node.attrs["axis"] = AXIS_TO_NCHW[node.attrs["axis"]]
        self.mark_output(node)

    def visit_repeat_interleave(self, node: Node) -> None:
        if node.outputs[0].rank != 4:
            return self.fallback(node)
        node.attrs["axis"] = AXIS_TO_NCHW[node.attrs["axis"]]
        self.mark_output(node)

    def visit_space_to_depth(self, node: Node) -> None:
        self.mark_output(node)  # the op is defined with TF's channel order in either layout

    def visit_depth_to_space(self, node: Node) -> None:
        """TF's channel order (DCR) as the op's own; where a conv (and its bias, and
        elementwise ops) alone feeds it, the conv's output channels are permuted into
        pixel_shuffle's order (CRD) once, at conversion, and the op is a plain pixel_shuffle."""
        self.mark_output(node)
        chain, ref = [], node.inputs[0]
        while True:
            producer = self.graph.nodes.get(ref.rpartition(":")[0])
            readers = [n for n in self.graph.nodes.values() if ref in n.inputs]
            if (producer is None or len(readers) != 1 or len(producer.inputs) != 1
                    or any(output.source == ref for output in self.graph.outputs)):
                return
            chain.append(producer)
            passes_channels = producer.op == "bias_add" or layout_class(producer.op) == "elementwise"
            if not passes_channels:  # the conv, or an op the permutation cannot pass
                break
            ref = producer.inputs[0]
        if chain[-1].op != "conv2d":
            return
        channels, block = node.outputs[0].shape[1], node.attrs["block_size"]
        order = [depth * channels + channel for channel in range(channels)
                 for depth in range(block * block)]  # CRD position -> DCR channel
        for producer in chain:
            for role in ("kernel", "bias"):
                if role in producer.weights:
                    self.graph.transform_weight(producer, role, ("take", (0, *order)))
        chain[-1].attrs["channel_order"] = order  # (verify --per-layer reads TF's so)
        node.attrs["crd"] = True

    def visit_layer_norm(self, node: Node) -> None:
        node.attrs["axis"] = axis_to_first(node.outputs[0].rank)[node.attrs["axis"]]
        self.mark_output(node)

    visit_softmax = visit_log_softmax = visit_layer_norm

    def visit_mean(self, node: Node) -> None:
        self._reduce(node, keep=node.attrs["keepdims"])

    visit_reduce_max = visit_reduce_sum = visit_reduce_any = visit_mean
    visit_reduce_min = visit_reduce_prod = visit_reduce_all = visit_euclidean_norm = visit_mean
    visit_argmax = visit_argmin = visit_mean

    def visit_slice(self, node: Node) -> None:
        node.attrs["axes"] = _nchw(node.attrs["axes"])
        self.mark_output(node)

    def visit_squeeze(self, node: Node) -> None:
        self._reduce(node, keep=False)

    def _reduce(self, node: Node, keep: bool) -> None:
        axes, rank = node.attrs["axes"], self.rank(node.inputs[0])
        moved = axis_to_first(rank)
        node.attrs["axes"] = sorted(moved[axis] for axis in axes)
        if keep:
            return self.mark_output(node)
        kept = [axis for axis in range(rank) if axis not in axes]  # NHWC order, as TF returns
        ours = sorted(kept, key=moved.__getitem__)  # the order we return
        if ours != kept:
            perm = tuple(ours.index(axis) for axis in kept)
            self._restore_order(node, perm)

    def _restore_order(self, node: Node, perm: tuple[int, ...]) -> None:
        info = node.outputs[0]
        ours = [None] * len(perm)
        for position, axis in enumerate(perm):
            ours[axis] = info.shape[position]
        info.shape = ours
        old = f"{node.name}:0"
        self.graph.replace_uses(old, self.insert_transpose(old, perm, node, "restore_order"))

    def visit_transpose(self, node: Node) -> None:
        perm = node.attrs["perm"]
        if len(perm) != self.rank(node.inputs[0]):
            return self.fallback(node)
        from_nchw = [to_last(len(perm))[axis] for axis in perm]
        node.attrs["perm"] = _nchw(from_nchw)
        self.mark_output(node)

    def visit_reshape(self, node: Node) -> None:
        shape = self.graph.tensor(node.inputs[0]).shape
        if len(shape) == 4 and shape[1:3] == [1, 1] and node.outputs[0].rank != 4:
            return  # [N, C, 1, 1] and [N, 1, 1, C] flatten alike
        if self.flatten_into_dense(node, shape):
            return
        self.fallback(node)

    def flatten_into_dense(self, node: Node, shape: list) -> bool:
        """Flatten -> dense: TF flattens NHWC, we flatten NCHW; instead of permuting the
        activations back, permute the dense kernel's rows once, at conversion time."""
        readers = [n for n in self.graph.nodes.values() if f"{node.name}:0" in n.inputs]
        flat = node.attrs["shape"]
        if (len(shape) != 4 or None in shape[1:] or len(flat) != 2 or flat[0] not in (-1, shape[0])
                or len(readers) != 1 or readers[0].op != "linear"
                or any(output.source == f"{node.name}:0" for output in self.graph.outputs)):
            return False
        _, channels, height, width = shape  # already NCHW
        kernel = self.graph.weights[readers[0].weights["kernel"]]  # [H*W*C, out], NHWC rows
        out = kernel.out_shape[1]
        self.graph.transform_weight(readers[0], "kernel", ("reshape", (height, width, channels, out)),
                                    ("transpose", (2, 0, 1, 3)),
                                    ("reshape", (channels * height * width, out)))
        return True

    # -- the indexing family (sort: two outputs; lrn: over channels) ----------------------
    def visit_sort(self, node: Node) -> None:
        """Sorted along the NCHW position of its axis: values and indices both NCHW."""
        rank = node.outputs[0].rank
        if rank not in self.spatial:
            return self.fallback(node)  # (a sequence: one output at a time is not enough)
        node.attrs["axis"] = axis_to_first(rank)[node.attrs["axis"]]
        for index, info in enumerate(node.outputs):
            info.shape = _nchw(info.shape)
            self.permuted.add(f"{node.name}:{index}")

    def visit_lrn(self, node: Node) -> None:
        node.attrs["axis"] = 1  # the channels of an NCHW image
        self.mark_output(node)

    def visit_max_pool_with_argmax(self, node: Node) -> None:
        """Both outputs (the pool, TF's NHWC positions of its maxima) NCHW."""
        node.attrs["axis"] = 1
        for index, info in enumerate(node.outputs):
            info.shape = _nchw(info.shape)
            self.permuted.add(f"{node.name}:{index}")

    def visit_adjust_hue(self, node: Node) -> None:
        node.attrs["axis"] = 1  # the RGB channels of an NCHW (NCDHW) image
        self.mark_output(node)

    visit_adjust_saturation = visit_adjust_hue

    def folds_into(self, node: Node) -> bool:
        """A bias_add right after a 1-D conv: passes/fold.py makes it the conv's bias."""
        producer = self.graph.nodes.get(node.inputs[0].rpartition(":")[0])
        return producer is not None and producer.op in ("conv1d", "conv_transpose1d")

    def fallback(self, node: Node) -> None:
        """Give the op NHWC inputs and convert its rank-4 output back to NCHW."""
        node.inputs = [
            self.insert_transpose(ref, to_last(self.rank(ref)), node, LAST_NAMES[self.rank(ref)])
            if self.is_permuted(ref) else ref
            for ref in node.inputs
        ]
        for index, info in enumerate(node.outputs):  # (unbind and split have several)
            if info.rank in self.spatial:
                old = f"{node.name}:{index}"
                new = self.insert_transpose(old, to_first(info.rank), node, FIRST_NAMES[info.rank])
                self.graph.replace_uses(old, new)
                self.permuted.add(new)


def to_nchw(graph: Graph) -> Graph:
    LayoutPass(graph).run()
    return graph
