"""Fourier transforms and the complex tensors around them: FFT, IFFT, FFT2D, IFFT2D, RFFT,
IRFFT, RFFT2D, IRFFT2D, Complex, Real, Imag, ComplexAbs. A complex tensor made of a real
one and zeros (Keras's fft2((x, zeros_like(x))), FNet) is x.to(torch.complex64)."""

from __future__ import annotations

import numpy as np

from codegen.frontends.tensorflow.handlers import handler

FUNCTIONS = {"FFT": "fft", "IFFT": "ifft", "FFT2D": "fft2", "IFFT2D": "ifft2",
             "RFFT": "rfft", "IRFFT": "irfft", "RFFT2D": "rfft2", "IRFFT2D": "irfft2"}
COMPLEX = ("complex64",)


def _complex_only(ctx) -> None:
    dtypes = {ctx.input_info(0).dtype, ctx.output_info(0).dtype} - {"float32"}
    if not dtypes <= set(COMPLEX):
        ctx.fail(f"{ctx.op.type} on {'/'.join(sorted(dtypes))} is not supported (complex64 only)")


@handler("FFT", "IFFT", "FFT2D", "IFFT2D", ir="fft")
def transform(ctx) -> None:
    _complex_only(ctx)
    ctx.emit("fft", [ctx.input(0)], attrs={"function": FUNCTIONS[ctx.op.type]})


@handler("RFFT", "IRFFT", "RFFT2D", "IRFFT2D", ir="fft", static=(1,))
def real_transform(ctx) -> None:
    """n= only where TF's fft_length is not what torch.fft assumes: the input's length for
    rfft, 2 * (m - 1) for irfft's last axis."""
    _complex_only(ctx)
    function = FUNCTIONS[ctx.op.type]
    lengths = [int(size) for size in ctx.const(1).reshape(-1)]
    shape = ctx.input_info(0).shape[-len(lengths):]
    default = list(shape)
    if function.startswith("irfft") and shape[-1] is not None:
        default[-1] = 2 * (shape[-1] - 1)
    attrs = {"function": function}
    if lengths != default:
        attrs["n"] = lengths
    ctx.emit("fft", [ctx.input(0)], attrs=attrs)


def _zeros_like(op) -> tuple[int, ...]:
    """The imaginary input of Complex when it is zeros_like(...): read at conversion time
    (it is zeros whatever it is computed from), never run."""
    imaginary = op.inputs[1]
    while imaginary.op.type in ("Identity", "StopGradient"):
        imaginary = imaginary.op.inputs[0]
    return (1,) if imaginary.op.type == "ZerosLike" else ()


@handler("Complex", ir="complex", static=_zeros_like)
def make_complex(ctx) -> None:
    if ctx.output_info(0).dtype not in COMPLEX:
        ctx.fail(f"Complex to {ctx.output_info(0).dtype} is not supported (complex64 only)")
    zeros = bool(_zeros_like(ctx.op)) or (
        ctx.kind(1) == "constant" and not np.any(ctx.const(1)))
    if zeros:
        if ctx.output_info(0).shape != ctx.input_info(0).shape:
            ctx.fail("Complex of zeros that broadcast the real part is not supported")
        ctx.emit("cast", [ctx.input(0)], attrs={"dtype": "complex64"})
        return
    ctx.emit("complex", [ctx.input(0), ctx.input(1)])


@handler("Real", ir="real")
def real(ctx) -> None:
    ctx.emit("real", [ctx.input(0)])


@handler("Imag", ir="imag")
def imag(ctx) -> None:
    ctx.emit("imag", [ctx.input(0)])


@handler("ComplexAbs", ir="abs")
def complex_abs(ctx) -> None:
    ctx.emit("abs", [ctx.input(0)])
