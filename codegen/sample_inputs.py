"""Sample inputs of a model's input spec (OUT_DIR/.codegen/io.json): the one place that draws
them, for `codegen build`'s run check and for `codegen verify`.

A size the spec fixes is kept as it is (a model exported with batch 3 gets batch 3); only
unknown sizes vary, each at one of two values per draw: the batch (verify: 4, then 1), the
length of a sequence (rank <= 3: 16, then 7) and the other sizes of a higher-rank input
such as an image's height and width (96, then 128: multiples of 32, so a U-Net's skip
connections line up, and above the 75 pixels Inception needs). An encoder-decoder's decoder
inputs (named `decoder...` beside inputs named `encoder...`, as keras-hub's T5, BART and
Whisper) get their own length (9, then 12), so a model that mixed up the encoder's length
and the decoder's shows.
Arrays are in TF's layout (NHWC for images); `torch_inputs` gives the model's (NCHW).
"""

from __future__ import annotations

import re

import numpy as np

from codegen.dtypes import numpy_dtype, to_torch

BATCHES = (4, 1)  # verify's batches where the batch size is unknown
SEQUENCE_LENGTHS = (16, 7)  # of a sequence input of unknown length, one per draw
SPATIAL_SIZES = (96, 128)  # of the other unknown sizes of a rank >= 4 input, one per draw
DECODER_LENGTHS = (9, 12)  # of an encoder-decoder's decoder inputs: shorter, then longer


def tf_shape(spec: dict) -> list:
    """The input's shape in TF's layout (io.json stores the model's NCHW shape of an image)."""
    shape = list(spec["shape"])
    if spec["nchw"]:  # NCHW -> NHWC, NCDHW -> NDHWC
        shape = [shape[0], *shape[2:], shape[1]]
    return shape


def varies(io: dict) -> bool:
    """Some input has a size the spec leaves unknown: two draws differ in shape."""
    return any(size is None for spec in io["inputs"] for size in spec["shape"])


def draw_shape(spec: dict, batch: int, draw: int = 0, decoder: bool = False) -> list[int]:
    """TF-layout shape of one input: fixed sizes as they are, unknown ones set by `batch`
    and by the draw's sequence length (a `decoder` input's own) / spatial size."""
    shape = tf_shape(spec)
    lengths = DECODER_LENGTHS if decoder else SEQUENCE_LENGTHS
    filler = lengths[draw] if len(shape) <= 3 else SPATIAL_SIZES[draw]
    return [size if size is not None else batch if i == 0 else filler
            for i, size in enumerate(shape)]


def random_inputs(io: dict, batch: int, seed: int, draw: int = 0) -> dict[str, np.ndarray]:
    """Random inputs by TF name (`batch` where the batch is unknown; `draw` 0 or 1 picks
    the other unknown sizes)."""
    rng = np.random.default_rng(seed)
    decoders = decoder_inputs(io)
    return {spec["tf_name"]: _random_input(
                rng, spec, draw_shape(spec, batch, draw, spec["tf_name"] in decoders))
            for spec in io["inputs"]}


def decoder_inputs(io: dict) -> set[str]:
    """The TF names of an encoder-decoder's decoder inputs (none unless some input is the
    encoder's): their length is not the encoder's."""
    words = {spec["tf_name"]: set(re.findall(r"[a-z]+", spec["tf_name"].lower()))
             for spec in io["inputs"]}
    if not any("encoder" in found for found in words.values()):
        return set()
    return {name for name, found in words.items() if "decoder" in found}


def batch_of(io: dict, feeds: dict[str, np.ndarray]) -> int:
    """The batch size of drawn inputs (the first input's first size; 1 for a scalar)."""
    first = feeds[io["inputs"][0]["tf_name"]] if io["inputs"] else None
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _random_input(rng: np.random.Generator, spec: dict, shape: list[int]) -> np.ndarray:
    """Floats in [-1, 1]; token ids in range of the embedding table they index; any other
    integer or bool input is taken for a mask: ones, with the last quarter of every second
    row zero (padding), so a mask that is ignored or inverted shows."""
    dtype = numpy_dtype(spec["dtype"])
    if dtype.kind == "f":
        return rng.uniform(-1, 1, size=shape).astype(dtype)
    if "ids_below" in spec:
        return rng.integers(0, spec["ids_below"], size=shape).astype(dtype)
    mask = np.ones(shape, dtype)
    if len(shape) >= 2 and shape[-1] > 1:
        mask[1::2, ..., shape[-1] - max(1, shape[-1] // 4):] = 0
    return mask


def torch_inputs(io: dict, feeds: dict[str, np.ndarray]) -> list:
    """The generated model's inputs for TF's `feeds`, in its order (NCHW where it is)."""
    return [to_torch(to_nchw(feeds[s["tf_name"]], s["nchw"])) for s in io["inputs"]]


def to_nchw(array: np.ndarray, nchw: bool) -> np.ndarray:
    """NHWC -> NCHW (NDHWC -> NCDHW; a [N, T, C] sequence -> [N, C, T])."""
    if not nchw:
        return array
    return np.ascontiguousarray(array.transpose(0, array.ndim - 1, *range(1, array.ndim - 1)))
