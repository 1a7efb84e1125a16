"""Image resampling: ResizeNearestNeighbor, ResizeBilinear, ResizeBicubic, ResizeArea,
ScaleAndTranslate (tf.image.resize with antialias), DepthToSpace and SpaceToDepth.

Each TF sampling is mapped to the `F.interpolate` mode that computes the same numbers, to
the generated helper `tf_resize` that computes TF's own positions and weights, or refused
with the mode named (measured against TF in tests/test_image_ops.py):

| TF op (align_corners, half_pixel_centers) | PyTorch |
| --- | --- |
| ResizeNearestNeighbor (False, False): Keras UpSampling2D, tf1 | mode="nearest" |
| ResizeNearestNeighbor (False, True): tf.image.resize | mode="nearest-exact" |
| ResizeBilinear (False, True): tf.image.resize, Keras Resizing / UpSampling2D | mode="bilinear" |
| ResizeBilinear (True, False) | mode="bilinear", align_corners=True |
| ScaleAndTranslate triangle / keyscubic (antialias=True) | antialias=True |
| ResizeArea, the output size dividing the input's or 2 ** k times it | mode="area" |
| ResizeNearestNeighbor (True, False): rounds half away from zero | tf_resize |
| ResizeBilinear (False, False): TF1's legacy src = dst * in / out | tf_resize |
| ResizeBicubic: weights from a 1024-step table; Keys a = -0.5 renormalised at the border with half-pixel centers, else a = -0.75 | tf_resize |
| ResizeArea at other ratios: each input pixel weighs its overlap | tf_resize |

Refused: the ScaleAndTranslate kernels other than triangle and keyscubic.
"""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler
from codegen.frontends.tensorflow.handlers.dynamic import symbolic_dims

RESIZE_OPS = ("ResizeNearestNeighbor", "ResizeBilinear", "ResizeBicubic", "ResizeArea")


@handler(*RESIZE_OPS, ir="resize", static=(1,))
def resize(ctx) -> None:
    kind = ctx.op.type
    align, half = bool(ctx.attr("align_corners", False)), bool(ctx.attr("half_pixel_centers", False))
    tf_sampling = False
    if kind == "ResizeNearestNeighbor":
        mode = "nearest-exact" if half else "nearest"
        tf_sampling = align  # rounded half away from zero: no PyTorch mode
    elif kind == "ResizeBilinear":
        mode, tf_sampling = "bilinear", not (align or half)  # TF1's legacy src = dst * in / out
    elif kind == "ResizeBicubic":
        mode, tf_sampling = "bicubic", True  # weights from a 1024-step table
    else:
        mode, tf_sampling = "area", True  # F.interpolate's area where exact (_area_ratio)
    _emit(ctx, mode, align_corners=align, antialias=False, tf_sampling=tf_sampling, half=half)


KERNELS = {"triangle": "bilinear", "keyscubic": "bicubic"}


@handler("ScaleAndTranslate", ir="resize", static=(1, 2, 3))
def scale_and_translate(ctx) -> None:
    """tf.image.resize(..., antialias=True): scale = out / in, no translation."""
    kernel = ctx.attr("kernel_type")
    if kernel not in KERNELS:
        ctx.fail(f"the {kernel!r} kernel has no PyTorch mode (triangle and keyscubic do)")
    if not ctx.attr("antialias", True):
        ctx.fail("ScaleAndTranslate without antialias has no PyTorch mode")
    if not _plain_scale(ctx):
        ctx.fail("only scale = output size / input size and no translation (tf.image.resize) "
                 "is supported")
    _emit(ctx, KERNELS[kernel], align_corners=False, antialias=True)


def _plain_scale(ctx) -> bool:
    """The scale is out / in and the translation 0, at two sample input sizes if they vary."""
    x, size, scale, translation = ctx.op.inputs
    tensors = [size, scale, translation]
    if all(ctx.kind_of(t) == "constant" for t in tensors) and x.shape[1:3].is_fully_defined():
        runs = [[ctx.value_of(t) for t in tensors] + [np.array(x.shape.as_list())]]
    else:
        runs = ctx.sample_run(tensors, [x])
    if runs is None:
        return False
    for size_value, scale_value, shift, shape in runs:
        expected = np.asarray(size_value, np.float32) / np.asarray(shape[1:3], np.float32)
        if not (np.array_equal(np.asarray(scale_value, np.float32), expected) and not shift.any()):
            return False
    return True


def _emit(ctx, mode: str, *, align_corners: bool, antialias: bool, tf_sampling: bool = False,
          half: bool = False) -> None:
    """The output size: fixed, the input's size times integers, or another tensor's size."""
    x = ctx.op.inputs[0]
    in_hw, out_hw = x.shape.as_list()[1:3], ctx.output_info(0).shape[1:3]
    attrs = {"mode": mode, "align_corners": align_corners, "antialias": antialias,
             "size": None, "scale": None}
    if tf_sampling:
        attrs.update(tf_sampling=True, half_pixel_centers=half)
    inputs = [ctx.input(0)]
    dims = _size_dims(ctx, ctx.op.inputs[1])
    if None not in in_hw and None not in out_hw:
        attrs["size"] = [int(size) for size in out_hw]
    elif dims is not None and all(isinstance(d, int) for d in dims):
        attrs["size"] = dims
    elif dims is not None and all(_scaled(d, x, axis) for axis, d in enumerate(dims, 1)):
        attrs["scale"] = [d[2] if _multiple(d) else 1 for d in dims]
    elif dims is not None and _like(dims) is not None:
        inputs.append(ctx.ref_of(_like(dims)))
    else:
        ctx.fail("the output size must be fixed, the input's size times integers, or the "
                 "size of another tensor")
    if mode == "area" and not align_corners and _area_ratio(attrs, in_hw):
        del attrs["tf_sampling"], attrs["half_pixel_centers"]
    ctx.emit("resize", inputs, attrs=attrs)


def _area_ratio(attrs, in_hw) -> bool:
    """PyTorch's area (adaptive average pooling) is TF's ResizeArea where the output size
    divides the input's, or is a power-of-two multiple of it (TF's scale 1/3 rounds up in
    float32, so a 3x upscale spills weights of ~1e-6 into the next pixel)."""
    def exact(size, out):
        return size % out == 0 or (out % size == 0 and (out // size) & (out // size - 1) == 0)

    if attrs["scale"] is not None:
        return all(exact(1, k) for k in attrs["scale"])
    if attrs["size"] is None or None in in_hw:
        return False
    return all(exact(size, out) for size, out in zip(in_hw, attrs["size"]))


def _read(dim, x, axis: int) -> bool:
    """Whether `dim` is x's size on `axis`, read at run time (never `==` on a tensor)."""
    return isinstance(dim, tuple) and len(dim) == 2 and dim[0] is x and dim[1] == axis


def _multiple(dim) -> bool:
    return isinstance(dim, tuple) and len(dim) == 3 and isinstance(dim[0], str)


def _scaled(dim, x, axis: int) -> bool:
    return _read(dim, x, axis) or (_multiple(dim) and _read(dim[1], x, axis) and dim[2] >= 1)


def _like(dims):
    """The tensor t when the size is t's height and width, read at run time."""
    like = dims[0][0] if len(dims) == 2 and isinstance(dims[0], tuple) else None
    if like is None or isinstance(like, str) or like.shape.rank != 4:
        return None
    return like if all(_read(d, like, axis) for axis, d in enumerate(dims, 1)) else None


def _size_dims(ctx, tensor):
    """The two output sizes as `symbolic_dims` reads them, plus two forms of
    tf.shape(t)[1:3] (a slice without shrinking) and its product with integers
    (("mul", (x, axis), k))."""
    op = tensor.op
    if op.type == "Mul" and "constant" in (ctx.kind_of(op.inputs[0]), ctx.kind_of(op.inputs[1])):
        constant = 1 if ctx.kind_of(op.inputs[1]) == "constant" else 0
        base = _size_dims(ctx, op.inputs[1 - constant])
        factors = ctx.value_of(op.inputs[constant]).reshape(-1).tolist()
        if base is None or len(factors) not in (1, len(base)):
            return None
        factors = factors * len(base) if len(factors) == 1 else factors
        return [d * int(k) if isinstance(d, int) else ("mul", d, int(k))
                for d, k in zip(base, factors)]
    if op.type == "StridedSlice" and not any(op.get_attr(mask) for mask in (
            "begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")):
        base = symbolic_dims(ctx, op.inputs[0])
        if base is None or not all(ctx.kind_of(t) == "constant" for t in op.inputs[1:]):
            return None
        begin, end, stride = (int(ctx.value_of(t).reshape(-1)[0]) for t in op.inputs[1:])
        return base[begin:end:stride]
    return symbolic_dims(ctx, tensor)


@handler("DepthToSpace", ir="depth_to_space")
def depth_to_space(ctx) -> None:
    if ctx.attr("data_format", "NHWC") != "NHWC":
        ctx.fail("only data_format NHWC is supported")
    ctx.emit("depth_to_space", [ctx.input(0)], attrs={"block_size": int(ctx.attr("block_size"))})


@handler("SpaceToDepth", ir="space_to_depth")
def space_to_depth(ctx) -> None:
    if ctx.attr("data_format", "NHWC") != "NHWC":
        ctx.fail("only data_format NHWC is supported")
    ctx.emit("space_to_depth", [ctx.input(0)], attrs={"block_size": int(ctx.attr("block_size"))})


@handler("AdjustHue", ir="adjust_hue")
def adjust_hue(ctx) -> None:
    _adjust_hsv(ctx, "adjust_hue")


@handler("AdjustSaturation", ir="adjust_saturation")
def adjust_saturation(ctx) -> None:
    _adjust_hsv(ctx, "adjust_saturation")


def _adjust_hsv(ctx, op: str) -> None:
    """tf.image.adjust_hue / adjust_saturation of float32 RGB images (channels last): TF's
    RGB -> HSV -> RGB as a generated helper; the delta or factor a number or a tensor."""
    rank, dtype = ctx.rank(0), ctx.output_info(0).dtype
    if rank is None or ctx.input_info(0).shape[-1] != 3:
        ctx.fail(f"{ctx.op.type} needs RGB images (3 channels along the last axis)")
    if dtype != "float32":
        ctx.fail(f"{ctx.op.type} of {dtype} is not supported (TF computes it in float32)")
    ctx.emit(op, [ctx.input(0), ctx.input_or_scalar(1)], attrs={"axis": rank - 1})
