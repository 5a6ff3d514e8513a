"""Export a checkpoint to TorchScript, the one file the app serves.

    python -m training.export --checkpoint runs/fernet/best.pt --out model/fer.pt

The contract of the exported file (the app and outside scripts rely on it):
  input   float32 (N, 1, 48, 48), grey values in [0, 1] (pixel / 255)
  output  float32 (N, 7) softmax probabilities, in the order of meta.json's "labels"
  inside  normalisation, the fitted temperature and any test-time augmentation
  meta    torch.jit.load(path, _extra_files={"meta.json": ""}) gives labels, input size,
          architecture, parameter count, training command and config, accuracies, date
  int8    files quantised with --dtype int8 need PyTorch's oneDNN quantised engine: set
          torch.backends.quantized.engine = meta["quantisation"]["engine"] ("onednn") before
          torch.jit.load (load_exported does)
"""
import argparse
import copy
import datetime
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.backend_config import get_onednn_backend_config
from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from torch.fx.experimental.optimization import fuse

from training.data import LABELS, load_dataset, truncate
from training.checkpoint import load_checkpoint_model
from training.engine import predict_probs, to_tensor

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CALIBRATION_IMAGES = 2048
# int8 files use PyTorch's oneDNN quantised engine, the one that runs conv + add + ReLU as one
# kernel; a process must select it before it loads such a file (meta.json's quantisation.engine).
INT8_ENGINE = "onednn"

# PyTorch marks torch.ao.quantization as deprecated in favour of torchao, whose flow targets
# torch.compile, not TorchScript; the pinned torch (2.13) has it and runs what it produces.
warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated")
warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated")
warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated")


class CastInput(nn.Module):
    """Grey values in [0, 1] -> a float net's input: normalised, in its dtype, channels-last."""

    def __init__(self, normalize: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.normalize = normalize
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x).to(self.dtype).contiguous(memory_format=torch.channels_last)


class QuantizeInput(nn.Module):
    """Grey values in [0, 1] -> uint8 with scale 1/255, the int8 net's input.

    The zero point is the training mean as a grey level, so the quantised tensor holds
    x - zero_point / 255 and is exact for pixel / 255 inputs. The conv that reads it pads with
    the zero point, that is with the mean grey, as normalisation's zero padding does; the
    division by the std is folded into that conv's weights (`fold_normalisation`).
    """

    def __init__(self, mean: float):
        super().__init__()
        self.zero_point = int(round(mean * 255))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.quantize_per_tensor(x - self.zero_point / 255, 1 / 255, self.zero_point, torch.quint8)


class Exported(nn.Module):
    """Prepare the input, run the net (bf16, int8 or fp32), average test-time views, scale by 1/T, softmax."""

    def __init__(self, prepare: nn.Module, net: nn.Module, temperature: float, flip_tta: bool):
        super().__init__()
        self.prepare = prepare  # [0, 1] grey values -> what the net takes (CastInput or QuantizeInput)
        self.net = net
        self.flip_tta = flip_tta
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._assert(x.dim() == 4 and x.size(1) == 1 and x.size(2) == 48 and x.size(3) == 48,
                      "expected a float tensor of shape (N, 1, 48, 48)")
        n = x.size(0)
        if self.flip_tta:  # one batch of both views: bigger batches run faster per face
            x = torch.cat([x, x.flip(3)])
        logits = self.net(self.prepare(x)).float()
        if self.flip_tta:
            logits = (logits[:n] + logits[n:]) / 2
        return F.softmax(logits / self.temperature, dim=1)


def fit_temperature(logits, labels):
    """The temperature T that minimises the NLL of softmax(logits / T) (Guo et al., 2017)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    # The bounds only matter for a barely trained net, whose best temperature can run off.
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def fold_normalisation(net, std):
    """A copy of net that takes x - mean instead of (x - mean) / std: 1/std goes into its first conv.

    Exact, zero padding included, as long as that conv is the first thing the net runs (checked).
    """
    net = copy.deepcopy(net).eval()
    leaves = [m for m in net.modules() if not list(m.children())]
    ran = []
    hooks = [m.register_forward_pre_hook(lambda m, _: ran.append(m)) for m in leaves]
    with torch.no_grad():
        net(torch.zeros(1, 1, 48, 48))
    for hook in hooks:
        hook.remove()
    if not isinstance(ran[0], nn.Conv2d):
        raise ValueError(f"int8 export folds the normalisation into a first conv; this net starts with {type(ran[0]).__name__}")
    with torch.no_grad():
        ran[0].weight.div_(std)
    return net


def quantize_int8(net, calibration, mean):
    """Post-training static int8 quantisation (PyTorch's FX graph mode, oneDNN backend).

    The net takes the quantised output of QuantizeInput(mean). Convs and linear get per-channel
    int8 weights; activations get uint8 scales from histograms of the calibration images (grey
    values in [0, 1], N x 1 x 48 x 48). BatchNorm, ReLU and each residual add are folded into
    the convs (quantized::conv2d_add_relu), which oneDNN runs with AVX-512 VNNI where the CPU has it.
    """
    torch.backends.quantized.engine = INT8_ENGINE
    backend = get_onednn_backend_config()
    prepare_input = QuantizeInput(mean)
    example = prepare_input(calibration[:1]).dequantize()
    prepared = prepare_fx(net, get_default_qconfig_mapping(INT8_ENGINE), (example,), backend_config=backend,
                          prepare_custom_config=PrepareCustomConfig().set_input_quantized_indexes([0]))
    with torch.no_grad():
        for batch in calibration.split(256):
            prepared(prepare_input(batch).dequantize())
    return prepare_input, convert_fx(prepared, backend_config=backend)


def build_exported(model, temperature, dtype, flip_tta, calibration=None):
    """The exportable module for a Normalize + net model in one of the serving dtypes.

    bf16 and fp32 fold BatchNorm into the convs in fp32, then cast the net; int8 folds the
    normalisation into the first conv and quantises the net with `calibration` (uint8-range
    float images in [0, 1], N x 1 x 48 x 48).
    """
    normalize, net = model[0], model[1].eval()
    if dtype == "int8":
        if calibration is None:
            raise ValueError("int8 needs calibration images")
        mean, std = float(normalize.mean), float(normalize.std)
        prepare_input, net = quantize_int8(fold_normalisation(net, std), calibration, mean)
        return Exported(prepare_input, net, temperature, flip_tta).eval()
    torch_dtype = DTYPES[dtype]
    net = fuse(net).to(torch_dtype).to(memory_format=torch.channels_last)
    return Exported(CastInput(normalize, torch_dtype), net, temperature, flip_tta).eval()


def calibration_images(train, n, seed):
    """n training images, drawn without replacement with a fixed seed, as floats in [0, 1]."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(train), size=min(n, len(train)), replace=False))
    return to_tensor(train.images[pick])


def accuracy(probs, labels):
    """Share of rows whose most probable class is the label."""
    return float((probs.argmax(1).numpy() == labels).mean())


def read_meta(path):
    """meta.json of an exported file, read from the archive without loading the model ({} if absent)."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/extra/meta.json")), None)
            return json.loads(archive.read(name)) if name else {}
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError):
        return {}


def load_exported(path):
    """(module, meta) of an exported file, in the quantised engine its metadata names, if any."""
    engine = (read_meta(path).get("quantisation") or {}).get("engine")
    if engine:
        torch.backends.quantized.engine = engine
    extra = {"meta.json": ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module.eval(), json.loads(extra["meta.json"] or "{}")


def export(module, meta, out):
    """Script, freeze and save with meta.json inside; returns the saved path."""
    scripted = torch.jit.freeze(torch.jit.script(module))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={"meta.json": json.dumps(meta, indent=2)})
    tmp.replace(out)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="runs/fernet/best.pt", help="training checkpoint (default: runs/fernet/best.pt)")
    p.add_argument("--out", default="model/fer.pt", help="exported TorchScript file (default: model/fer.pt)")
    p.add_argument("--data", default=None, help="dataset for calibration and accuracies (default: the checkpoint's --data)")
    p.add_argument("--dtype", default="bf16", choices=["fp32", "bf16", "int8"], help="weights and activations of the served net; int8 is post-training quantisation calibrated on training images (default: bf16)")
    p.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES, help=f"training images that set the int8 activation scales (default: {CALIBRATION_IMAGES})")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false", help="keep temperature 1 instead of fitting it on the validation split (default: fit)")
    p.add_argument("--flip-tta", action="store_true", help="average the logits of the face and its mirror image; doubles the cost (default: off)")
    p.add_argument("--test", action="store_true", help="also measure test-split accuracy and store it in the metadata; do this once, for the model you ship (default: off)")
    args = p.parse_args(argv)

    model, checkpoint = load_checkpoint_model(args.checkpoint)
    cfg = checkpoint["config"]
    dataset = truncate(load_dataset(args.data or cfg["data"], seed=cfg["seed"]), cfg.get("limit", 0))
    val = dataset["val"]
    calibration = None
    if args.dtype == "int8":
        calibration = calibration_images(dataset["train"], args.calibration_images, cfg["seed"])

    module = build_exported(model, 1.0, args.dtype, args.flip_tta, calibration)
    temperature = 1.0
    if args.calibrate:
        logits = torch.log(predict_probs(module, val.images).clamp_min(1e-12))
        temperature = fit_temperature(logits, torch.from_numpy(val.labels))
        module.temperature.fill_(temperature)
    meta = {
        "labels": list(LABELS),
        "input": {"shape": [None, 1, 48, 48], "dtype": "float32", "range": [0.0, 1.0],
                  "grey": True, "normalised_inside": True},
        "output": "softmax probabilities (N, 7) in label order",
        "architecture": cfg["model"],
        "params": checkpoint["params"],
        "macs": checkpoint["macs"],
        "dtype": args.dtype,
        "flip_tta": args.flip_tta,
        "quantisation": ({"method": "post-training static, FX graph mode", "engine": INT8_ENGINE,
                          "weights": "int8 per channel", "activations": "uint8 per tensor",
                          "calibration_images": len(calibration)} if calibration is not None else None),
        "temperature": temperature,
        "normalisation": {"mean": checkpoint["mean"], "std": checkpoint["std"]},
        "epoch": checkpoint["epoch"],
        "command": checkpoint["command"],
        "config": cfg,
        "val_accuracy": accuracy(predict_probs(module, val.images), val.labels),
        "test_accuracy": accuracy(predict_probs(module, dataset["test"].images), dataset["test"].labels) if args.test else None,
        "date": datetime.date.today().isoformat(),
    }
    out = export(module, meta, args.out)
    print(json.dumps({k: meta[k] for k in ("architecture", "params", "macs", "dtype", "temperature",
                                           "val_accuracy", "test_accuracy")}))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
