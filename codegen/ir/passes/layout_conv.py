"""The layout pass's rank helpers and its rules for the convolutions of ranks 1 and 3 (and
the transposed ones): kernels to PyTorch's layout, sequences [N, T, C] to [N, C, T] in front
of the ops that read them channels-first. LayoutPass (layout.py) mixes these rules in."""

from __future__ import annotations

from codegen.ir.graph import Node


def to_first(rank: int) -> tuple[int, ...]:
    """The permutation that moves the channel axis of a channels-last tensor to axis 1."""
    return (0, rank - 1, *range(1, rank - 1))


def to_last(rank: int) -> tuple[int, ...]:
    return (0, *range(2, rank), 1)


def axis_to_first(rank: int) -> dict[int, int]:
    """A channels-last axis -> its channels-first position."""
    return {axis: position for position, axis in enumerate(to_first(rank))}


class ConvRules:
    """visit_<op> rules of LayoutPass for conv1d/conv3d/conv_transpose*/1-D pooling."""

    def visit_conv3d(self, node: Node) -> None:
        self.graph.transform_weight(node, "kernel", ("transpose", (4, 3, 0, 1, 2)))  # -> OIDHW
        self.mark_output(node)

    visit_conv_transpose3d = visit_conv3d

    def visit_sequence(self, node: Node) -> None:
        """A 1-D op (or nn.BatchNorm1d) reads [N, C, T]: a sequence [N, T, C] is transposed
        once, in front of it (in front of a pad that only it reads, so the pad can fold into
        it); its output stays [N, C, T]."""
        ref = node.inputs[0]
        if not self.is_permuted(ref):
            producer = self.graph.nodes.get(ref.rpartition(":")[0])
            readers = [n for n in self.graph.nodes.values() if ref in n.inputs]
            if producer is not None and producer.op == "pad" and readers == [node] and not any(
                    output.source == ref for output in self.graph.outputs):
                producer.inputs = [self.to_nct(producer.inputs[0], node)]
                self.visit_pad(producer)
            else:
                node.inputs = [self.to_nct(ref, node)]
        self.mark_output(node)

    def to_nct(self, ref: str, before: Node) -> str:
        new = self.insert_transpose(ref, to_first(3), before, "to_nct")
        self.permuted.add(new)
        return new

    visit_max_pool1d = visit_avg_pool1d = visit_sequence

    def visit_conv1d(self, node: Node) -> None:
        self.graph.transform_weight(node, "kernel", ("transpose", (2, 1, 0)))  # -> [O, I, k]
        self.visit_sequence(node)

    visit_conv_transpose1d = visit_conv1d  # [k, O, I] -> [I, O, k]
