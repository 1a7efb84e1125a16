"""An embedding lookup written as a one-hot product (TF1 BERT's token types):
    reshape(matmul(one_hot(reshape(ids, [-1]), rows), table), [B, T, dim])
with B, T the sizes of ids is `table[ids]`: one `embedding` of the ids as they are. (An id
outside the table gives a row of zeros in TF and an error in nn.Embedding.)"""

from __future__ import annotations

from codegen.frontends.tensorflow.handlers.dynamic import sizes_at_run_time
from codegen.frontends.tensorflow.rewrites import rewrite
from codegen.frontends.tensorflow.rewrites.common import weight_matmul


@rewrite("Reshape")
def match_one_hot_embedding(ctx) -> bool:
    matmul = weight_matmul(ctx, ctx.op.inputs[0])
    if matmul is None:
        return False
    one_hot = matmul.inputs[0].op
    if one_hot.type != "OneHot" or one_hot.get_attr("axis") != -1:
        return False
    depth, on, off = (ctx.value_of(one_hot.inputs[i]).reshape(-1).tolist() for i in (1, 2, 3))
    rows, dim = matmul.inputs[1].shape.as_list()
    if depth != [rows] or on != [1.0] or off != [0.0]:
        return False
    flat = one_hot.inputs[0].op
    if flat.type != "Reshape" or ctx.kind_of(flat.inputs[1]) != "constant" \
            or ctx.value_of(flat.inputs[1]).reshape(-1).tolist() != [-1]:
        return False
    ids = flat.inputs[0]
    runs = sizes_at_run_time(ctx, ctx.op.inputs[1], ids)  # [B, T, dim]: ids' shape + [dim]
    if runs is None or any(target != [*shape, dim] for target, shape in runs):
        return False
    ctx.emit("embedding", [ctx.ref_of(ids)], weights={"table": ctx.of(matmul).weight(1)})
    return True
