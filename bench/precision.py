"""Where does float32 round-off come from? python bench/precision.py MODEL OUT_DIR [INPUTS]

MODEL is what OUT_DIR (a `codegen build` folder) was converted from (.keras, SavedModel, .pb).
For INPUTS random batches of 4 (the first is the one `codegen verify` uses for batch 4) it
prints each variant's distance to the generated model run in float64: max |x - ref64| /
max |ref64| per input, and the relative RMS error averaged over the inputs, also as a ratio
to TF's. Variants: TF's float32 (the frozen graph in a session, as `codegen verify` runs it),
ours as `load_model()` gives it, and ours with one measure switched off at a time: the
BatchNorm folding (run as norm(conv(x))), the fold computed in float32 (computed in float64,
then rounded), channels-last weights, in-place sums (`a += b` rewritten `a = a + b`), and
the thread count. The last row is a float64 run whose conv/BN/linear outputs are rounded to
float32: what storing activations in float32 alone costs (the rest is the convolutions'
float32 accumulation). Set THREADS (default 1) for torch's thread count.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import torch

from codegen.verify import TFRunner, _to_nchw, import_generated, random_inputs

BATCH = 4


def main(model_path: Path, out_dir: Path, inputs: int) -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    io = json.loads((out_dir / ".codegen" / "io.json").read_text())
    runner = TFRunner(model_path, None)
    module = import_generated(out_dir)
    plain = import_generated(without_inplace_sums(out_dir))

    def unfolded(conv, norm, x):
        return norm(conv(x))

    def fold_in_float64(conv, norm):
        scale = torch.rsqrt(norm.running_var.double() + norm.eps) * norm.weight.double()
        bias = norm.bias.double() - norm.running_mean.double() * scale
        if conv.bias is not None:
            bias = bias + conv.bias.double() * scale
        weight = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
        return weight.float().contiguous(memory_format=_format(conv.weight)), bias.float()

    def run(model, x, **patch):
        originals = {name: getattr(module, name) for name in patch}
        for name, value in patch.items():
            setattr(module, name, value)
        try:
            _forget_folds(model)
            with torch.no_grad():
                return model(x).numpy()
        finally:
            for name, value in originals.items():
                setattr(module, name, value)
            _forget_folds(model)

    def other_threads(model, x):
        threads = torch.get_num_threads()
        torch.set_num_threads(2 if threads == 1 else 1)
        try:
            return run(model, x)
        finally:
            torch.set_num_threads(threads)

    weights = out_dir / "weights"
    default, nchw = module.load_model(weights), module.load_model(weights, channels_last=False)
    no_inplace = plain.load_model(weights)
    exact = module.load_model(weights, channels_last=False).double()
    spec = io["inputs"][0]
    maxima: dict[str, list[float]] = {}
    rms: dict[str, list[float]] = {}
    for index in range(inputs):
        feeds = random_inputs(io, BATCH, BATCH + 100 * index)  # index 0: verify's batch 4
        (tf_out,) = runner.run([io["outputs"][0]["tf_name"]], feeds)
        x = torch.from_numpy(_to_nchw(feeds[spec["tf_name"]], spec["nchw"]))
        ref = run(exact, x.double())
        variants = {
            "TF float32": tf_out,
            "ours (load_model())": run(default, x),
            "ours, BatchNorm not folded": run(default, x, conv_bn=unfolded),
            "ours, fold computed in float64": run(default, x, fold_bn=fold_in_float64),
            "ours, no channels_last": run(nchw, x),
            "ours, no channels_last, not folded": run(nchw, x, conv_bn=unfolded),
            "ours, no in-place sums": run(no_inplace, x),
            f"ours, {1 if torch.get_num_threads() > 1 else 2} thread(s)": other_threads(default, x),
            "float64, layer outputs in float32": rounded(run, exact, x.double()),
            "(float64 not folded: reference check)": run(exact, x.double(), conv_bn=unfolded),
        }
        for name, value in variants.items():
            error = value.astype(np.float64) - ref
            maxima.setdefault(name, []).append(float(np.abs(error).max() / np.abs(ref).max()))
            rms.setdefault(name, []).append(float(np.sqrt(np.mean(error**2) / np.mean(ref**2))))
    tf_rms = np.mean(rms["TF float32"])
    print(f"{model_path.name}, {inputs} batches of {BATCH}, {torch.get_num_threads()} thread(s)")
    print("| variant | max rel. error per input | relative RMS (mean) | / TF's |")
    print("| --- | --- | --- | --- |")
    for name, errors in maxima.items():
        per_input = " ".join(f"{value:.2e}" for value in errors)
        print(f"| {name} | {per_input} | {np.mean(rms[name]):.2e} | "
              f"{np.mean(rms[name]) / tf_rms:.2f} |")


def without_inplace_sums(out_dir: Path) -> Path:
    """A copy of model.py with `a += b` written `a = a + b` (weights linked)."""
    copy = out_dir.parent / f"{out_dir.name}-no-inplace"
    copy.mkdir(exist_ok=True)
    source = (out_dir / "model.py").read_text()
    (copy / "model.py").write_text(re.sub(r"^(\s*)(\w+) \+= (.+)$", r"\1\2 = \2 + \3", source,
                                          flags=re.MULTILINE))
    if not (copy / "weights").exists():
        (copy / "weights").symlink_to((out_dir / "weights").resolve())
    return copy


def rounded(run, model, x):
    """The float64 model with each conv / BN / linear output rounded to float32."""
    kinds = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear)
    hooks = [layer.register_forward_hook(lambda _m, _i, out: out.float().double())
             for layer in model.modules() if isinstance(layer, kinds)]
    try:
        return run(model, x)  # hooks make conv_bn run conv and BN apart
    finally:
        for hook in hooks:
            hook.remove()


def _forget_folds(model) -> None:
    for layer in model.modules():
        vars(layer).pop("_folded", None)


def _format(weight):
    if weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 8)
