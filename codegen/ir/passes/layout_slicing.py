"""Layout rules of the slicing and shape-moving ops (a mixin of LayoutPass): where their
input is channels-first (NCHW), their axes move with it; an op whose outputs would come out
in another axis order than TF's gets a transpose after it, or the exact fallback."""

from __future__ import annotations

from codegen.ir.graph import Node
from codegen.ir.passes.layout_conv import axis_to_first, to_first


def _moved(shape: list) -> list:
    return [shape[axis] for axis in to_first(len(shape))]


class SlicingRules:
    def visit_flip(self, node: Node) -> None:
        moved = axis_to_first(self.rank(node.inputs[0]))
        node.attrs["axes"] = sorted(moved[axis] for axis in node.attrs["axes"])
        self.mark_output(node)

    def visit_roll(self, node: Node) -> None:
        moved = axis_to_first(self.rank(node.inputs[0]))
        node.attrs["axes"] = [moved[axis] for axis in node.attrs["axes"]]
        self.mark_output(node)

    def visit_broadcast_to(self, node: Node) -> None:
        if not self.is_permuted(node.inputs[0]) or len(node.attrs["shape"]) != self.rank(
                node.inputs[0]):
            return self.fallback(node)
        node.attrs["shape"] = _moved(node.attrs["shape"])
        self.mark_output(node)

    def visit_split(self, node: Node) -> None:
        """Parts along an axis of an NCHW tensor are NCHW tensors: the axis moves."""
        node.attrs["axis"] = axis_to_first(self.rank(node.inputs[0]))[node.attrs["axis"]]
        for index, info in enumerate(node.outputs):
            info.shape = _moved(info.shape)
            self.permuted.add(f"{node.name}:{index}")

    def visit_unbind(self, node: Node) -> None:
        """The entries along the channel axis keep TF's order of the other axes ([N, H, W]);
        along another axis they would not: the exact fallback."""
        rank = self.rank(node.inputs[0])
        moved = axis_to_first(rank)
        kept = [axis for axis in range(rank) if axis != node.attrs["axis"]]
        if sorted(kept, key=moved.__getitem__) != kept or node.outputs[0].rank in self.spatial:
            return self.fallback(node)
        node.attrs["axis"] = moved[node.attrs["axis"]]

    def visit_index(self, node: Node) -> None:
        """Slices and integers of an NCHW tensor, one item per axis, move with the axes; the
        axes kept come back in TF's order (a transpose where they would not). New axes: the
        exact fallback."""
        items, rank = node.attrs["items"], self.rank(node.inputs[0])
        if any(item is None for item in items) or len(items) != rank:
            return self.fallback(node)
        kept = [axis for axis, item in enumerate(items) if isinstance(item, list)]
        if len(kept) in self.spatial:
            return self.fallback(node)
        moved = axis_to_first(rank)
        node.attrs["items"] = _moved(items)
        ours = sorted(kept, key=moved.__getitem__)
        if ours != kept:
            self._restore_order(node, tuple(ours.index(axis) for axis in kept))
