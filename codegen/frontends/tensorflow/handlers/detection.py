"""Detection ops: CropAndResize (generated helper `crop_and_resize`, plain torch indexing)
and NonMaxSuppressionV2 / V3 / V4 / V5 (helper `non_max_suppression`, a greedy loop with TF's
order and thresholds). Both compute what TF's kernels compute:

- CropAndResize: box (y1, x1, y2, x2) in [0, 1] of the image's height and width, sampled at
  crop_size points from y1 * (h - 1) to y2 * (h - 1) (one point: the middle); bilinear or
  nearest (rounded half away from zero); points outside the image give extrapolation_value.
- NonMaxSuppression: boxes by score, highest first (equal scores: the lower index first),
  only scores above score_threshold; a box is dropped when its IoU with a box already kept is
  above iou_threshold; at most max_output_size indices (int32). V4 pads to max_output_size
  with zeros where asked and returns the count; V5 also returns the kept scores. Soft NMS
  (V5 with soft_nms_sigma != 0) is refused: the scores would be decayed, not kept or dropped.
- CombinedNonMaxSuppression: that NMS per image and class (helper
  `combined_non_max_suppression`), the kept boxes of all classes ranked by score as TF's kernel
  ranks them (its unfilled slots count as a score of -1), clipped and zero-padded.
"""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler
from codegen.ir.graph import TensorInfo


@handler("CropAndResize", ir="crop_and_resize", static=(3,))
def crop_and_resize(ctx) -> None:
    method = ctx.attr("method", "bilinear")
    if method not in ("bilinear", "nearest"):
        ctx.fail(f"method {method!r} is not supported (bilinear, nearest)")
    crop = [int(size) for size in ctx.const(3).reshape(-1)]
    attrs = {"crop_size": crop, "method": method,
             "extrapolation_value": float(str(np.float32(ctx.attr("extrapolation_value", 0.0))))}
    ctx.emit("crop_and_resize", [ctx.input(0), ctx.input(1), ctx.input(2)], attrs=attrs)


def _scalar(ctx, index: int, what: str) -> float:
    if not ctx.is_const(index):
        ctx.fail(f"{what} must be a constant")
    return ctx.const(index).reshape(-1)[0]


def _nms_statics(op) -> tuple[int, ...]:
    return tuple(range(2, len(op.inputs)))


@handler("NonMaxSuppressionV2", "NonMaxSuppressionV3", "NonMaxSuppressionV4", "NonMaxSuppressionV5",
         ir="non_max_suppression", static=_nms_statics)
def non_max_suppression(ctx) -> None:
    if ctx.rank(0) != 2 or ctx.rank(1) != 1:
        ctx.fail("boxes must be [num_boxes, 4] and scores [num_boxes]")
    if ctx.input_info(0).dtype != "float32":
        ctx.fail(f"{ctx.input_info(0).dtype} boxes are not supported (float32 only)")
    attrs = {"max_output_size": int(_scalar(ctx, 2, "max_output_size")),
             "iou_threshold": float(str(np.float32(_scalar(ctx, 3, "iou_threshold")))),
             "score_threshold": float(np.finfo(np.float32).min)}  # V2: the lowest float
    if len(ctx.op.inputs) > 4:
        attrs["score_threshold"] = float(np.float32(_scalar(ctx, 4, "score_threshold")))
    if np.isfinite(attrs["score_threshold"]):
        attrs["score_threshold"] = float(str(np.float32(attrs["score_threshold"])))
    version = ctx.op.type[-1]
    if version == "5" and float(_scalar(ctx, 5, "soft_nms_sigma")) != 0.0:
        ctx.fail("soft NMS (soft_nms_sigma != 0) decays scores instead of dropping boxes and "
                 "is not supported")
    attrs["pad"] = bool(ctx.attr("pad_to_max_output_size", False))
    attrs["outputs"] = {"2": "indices", "3": "indices", "4": "indices_count", "5": "indices_scores_count"}[version]
    outputs = [ctx.output_info(i) for i in range(len(ctx.op.outputs))]
    outputs[0] = TensorInfo(outputs[0].shape, "int32")
    ctx.emit("non_max_suppression", [ctx.input(0), ctx.input(1)], attrs=attrs, outputs=outputs)


@handler("CombinedNonMaxSuppression", ir="combined_non_max_suppression", static=(2, 3, 4, 5))
def combined_non_max_suppression(ctx) -> None:
    """Per image and class hard NMS, the classes merged by score (the helper's docstring)."""
    if ctx.rank(0) != 4 or ctx.rank(1) != 3:
        ctx.fail("boxes must be [batch, boxes, 1 or classes, 4] and scores [batch, boxes, classes]")
    if ctx.input_info(0).dtype != "float32":
        ctx.fail(f"{ctx.input_info(0).dtype} boxes are not supported (float32 only)")
    per_class = int(_scalar(ctx, 2, "max_output_size_per_class"))
    total = int(_scalar(ctx, 3, "max_total_size"))
    classes = ctx.input_info(1).shape[2]
    pad_per_class = bool(ctx.attr("pad_per_class", False))
    if pad_per_class and classes is None:
        ctx.fail("pad_per_class needs the number of classes known at conversion")
    attrs = {"max_output_size_per_class": per_class, "max_total_size": total,
             "iou_threshold": float(str(np.float32(_scalar(ctx, 4, "iou_threshold")))),
             "score_threshold": float(np.float32(_scalar(ctx, 5, "score_threshold"))),
             "pad_per_class": pad_per_class, "clip_boxes": bool(ctx.attr("clip_boxes", True))}
    if np.isfinite(attrs["score_threshold"]):
        attrs["score_threshold"] = float(str(np.float32(attrs["score_threshold"])))
    size = min(total, per_class * classes) if pad_per_class else total
    batch = ctx.input_info(1).shape[0]
    outputs = [TensorInfo([batch, size, 4], "float32"), TensorInfo([batch, size], "float32"),
               TensorInfo([batch, size], "float32"), TensorInfo([batch], "int32")]
    ctx.emit("combined_non_max_suppression", [ctx.input(0), ctx.input(1)], attrs=attrs,
             outputs=outputs)
