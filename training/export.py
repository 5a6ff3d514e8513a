"""Export a checkpoint to TorchScript, the one file the app serves (its contract: `modelfile`).

    python -m training.export --checkpoint runs/fernet/best.pt --out model/fer.pt
    python -m training.export --checkpoint runs/fernet/best.pt --dtype int8 --out model/fer.onednn.pt
    python -m training.export --checkpoint model/stages/fernet022-three-teachers.pt --dtype fp32 --flip-tta \
        --calibrate-on ferplus --out model/fer.pt     # the shipped file: temperature fitted to the crowd
"""
import argparse
import datetime
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.optimization import fuse

from modelfile import DEFAULT_PATH, FACE_SIZE, LABELS, input_meta, save
from training.checkpoint import load_checkpoint_model
from training.data import DEFAULT_VOTES, attach_votes, ferplus_majority, has_votes, load_dataset, truncate
from training.engine import predict_probs
from training.quantise import CALIBRATION_IMAGES, INT8_ENGINE, calibration_images, fold_normalisation, quantize_int8

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class CastInput(nn.Module):
    """Grey values in [0, 1] -> a float net's input: normalised, in its dtype, channels-last."""

    def __init__(self, normalize: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.normalize = normalize
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x).to(self.dtype).contiguous(memory_format=torch.channels_last)


class Exported(nn.Module):
    """Prepare the input, run the net (bf16, int8 or fp32), average test-time views, scale by 1/T, softmax."""

    def __init__(self, prepare: nn.Module, net: nn.Module, temperature: float, flip_tta: bool):
        super().__init__()
        self.prepare = prepare  # [0, 1] grey values -> what the net takes (CastInput or QuantizeInput)
        self.net = net
        self.flip_tta = flip_tta
        self.size = FACE_SIZE  # a constant once scripted
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._assert(x.dim() == 4 and x.size(1) == 1 and x.size(2) == self.size and x.size(3) == self.size,
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


def accuracy(probs, labels):
    """Share of rows whose most probable class is the label."""
    return float((probs.argmax(1).numpy() == labels).mean())


def calibration_targets(split, labels):
    """(images, labels) the temperature is fitted to: every face with its FER-2013 label, or the faces
    with FER+ votes with the crowd's plurality."""
    if labels == "fer2013":
        return split.images, split.labels
    voted = has_votes(split)
    return split.images[voted], ferplus_majority(split.votes[voted])


def accuracies(module, split, name):
    """{name_accuracy: FER-2013 accuracy, name_ferplus_accuracy: FER+ plurality accuracy where votes are attached}."""
    probs = predict_probs(module, split.images)
    result = {f"{name}_accuracy": accuracy(probs, split.labels)}
    if split.votes is not None:
        voted = has_votes(split)
        result[f"{name}_ferplus_accuracy"] = accuracy(probs[torch.from_numpy(voted)], ferplus_majority(split.votes[voted]))
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="runs/fernet/best.pt", help="training checkpoint (default: runs/fernet/best.pt)")
    p.add_argument("--out", default=str(DEFAULT_PATH), help="exported TorchScript file (default: model/fer.pt)")
    p.add_argument("--data", default=None, help="dataset for calibration and accuracies (default: the checkpoint's --data)")
    p.add_argument("--dtype", default="bf16", choices=["fp32", "bf16", "int8"], help="weights and activations of the served net; int8 is post-training quantisation calibrated on training images (default: bf16)")
    p.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES, help=f"training images that set the int8 activation scales (default: {CALIBRATION_IMAGES})")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false", help="keep temperature 1 instead of fitting it on the validation split (default: fit)")
    p.add_argument("--calibrate-on", default="fer2013", choices=["fer2013", "ferplus"], help="labels the temperature is fitted to: FER-2013's, or the FER+ crowd's plurality on the validation faces with votes (default: fer2013)")
    p.add_argument("--votes", default=None, help=f"FER+ votes of the CSV's rows, for --calibrate-on ferplus and the FER+ accuracies in the metadata (default: {DEFAULT_VOTES} with --calibrate-on ferplus, else none)")
    p.add_argument("--flip-tta", action="store_true", help="average the logits of the face and its mirror image; doubles the cost (default: off)")
    p.add_argument("--test", action="store_true", help="also measure test-split accuracy and store it in the metadata; do this once, for the model you ship (default: off)")
    args = p.parse_args(argv)

    model, checkpoint = load_checkpoint_model(args.checkpoint)
    cfg = checkpoint["config"]
    dataset = truncate(load_dataset(args.data or cfg["data"], seed=cfg["seed"]), cfg.get("limit", 0))
    if args.votes or args.calibrate_on == "ferplus":
        dataset = attach_votes(dataset, args.votes or DEFAULT_VOTES)
    val = dataset["val"]
    calibration = None
    if args.dtype == "int8":
        calibration = calibration_images(dataset["train"], args.calibration_images, cfg["seed"])

    module = build_exported(model, 1.0, args.dtype, args.flip_tta, calibration)
    temperature = 1.0
    if args.calibrate:
        images, labels = calibration_targets(val, args.calibrate_on)
        logits = torch.log(predict_probs(module, images).clamp_min(1e-12))
        temperature = fit_temperature(logits, torch.from_numpy(np.asarray(labels, dtype=np.int64)))
        module.temperature.fill_(temperature)
    meta = {
        "labels": list(LABELS),
        "input": input_meta(),
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
        "temperature_fitted_on": args.calibrate_on if args.calibrate else None,
        "normalisation": {"mean": checkpoint["mean"], "std": checkpoint["std"]},
        "epoch": checkpoint["epoch"],
        "command": checkpoint["command"],
        "config": cfg,
        **accuracies(module, val, "val"),
        **(accuracies(module, dataset["test"], "test") if args.test else {"test_accuracy": None}),
        "date": datetime.date.today().isoformat(),
    }
    out = save(module, meta, args.out)
    print(json.dumps({k: v for k, v in meta.items() if k in ("architecture", "params", "macs", "dtype", "temperature")
                      or k.endswith("accuracy")}))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
