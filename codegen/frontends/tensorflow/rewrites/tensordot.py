"""Dense on a tensor of rank > 2 as tf.tensordot writes it (Keras 3 Dense on [N, T, C]):
    reshape(matmul(reshape(transpose(x, identity), [prod(free), C]), W), [*free, U])
is one `linear` over the last axis, whatever the run-time sizes of the other axes."""

from __future__ import annotations

from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.common import weight_matmul


@rewrite("Reshape")
def match_tensordot(ctx) -> bool:
    """Emit `linear` when this Reshape ends a tensordot over x's last axis whose other
    sizes are not all known (with known sizes the plain reshapes are exact already)."""
    matmul = weight_matmul(ctx, ctx.op.inputs[0])
    if matmul is None:
        return False
    flat = matmul.inputs[0].op
    if flat.type != "Reshape":
        return False
    x = flat.inputs[0]
    if x.op.type == "Transpose" and ctx.kind_of(x.op.inputs[1]) == "constant":
        perm = ctx.value_of(x.op.inputs[1]).reshape(-1).tolist()
        if perm != list(range(len(perm))):
            return False
        x = x.op.inputs[0]
    shape, out = x.shape, ctx.op.outputs[0].shape
    if shape.rank != 3 or out.rank != 3:
        return False  # a sequence [N, T, C] only: Dense on an image [N, H, W, C] stays the
        # reshapes around a MatMul, which the pointwise pass makes a 1x1 conv
    kernel = matmul.inputs[1].shape.as_list()
    if kernel[0] != shape.as_list()[-1] or out.as_list()[-1] != kernel[1]:
        return False
    weights = {"kernel": ctx.of(matmul).weight(1)}
    ctx.emit("linear", [ctx.ref_of(x)], weights=weights)
    return True
