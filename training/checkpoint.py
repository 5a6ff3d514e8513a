"""The one training checkpoint format: a dict, written atomically, read back into a model.

    python -m training.checkpoint --compact runs/fp-mix50/best.pt --out model/stages/fernet-ferplus50.pt

Every checkpoint holds the weights ("model": the state dict of Normalize + net), the resolved
config, the labels, the normalisation, the net's cost and the command that made it. One written
by a run in progress also holds what --resume needs (optimiser, scheduler, random state,
history). `--compact` keeps only the first part, with the weights in float16: a start or a
teacher for a later stage, small enough to commit (runs/ does not outlive the machine).
"""
import argparse
import os
from pathlib import Path

import torch
from torch import nn

from training.data import LABELS
from training.engine import Normalize
from training.models import build_model

# What --resume needs and a later stage does not: dropped by compact().
RUN_STATE = ("optimizer", "scheduler", "rng", "stale", "train_model", "ema")


def make_checkpoint(model_state, config, mean, std, cost, command, epoch=0, best_val_acc=0.0, history=(), **run_state):
    """The checkpoint dict; `run_state` adds what a run in progress needs to resume."""
    return {"model": model_state, "config": config, "labels": LABELS, "mean": mean, "std": std,
            "params": cost.params, "macs": cost.macs, "command": command, "epoch": epoch,
            "best_val_acc": best_val_acc, "history": list(history), **run_state}


def save_atomic(obj, path):
    """torch.save to a temporary file, then rename, so a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path):
    """The checkpoint dict, on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=False)


def load_checkpoint_model(path):
    """(Normalize + net in eval mode, in float32, checkpoint dict) from a checkpoint, compact or not."""
    checkpoint = load_checkpoint(path)
    model = nn.Sequential(Normalize(checkpoint["mean"], checkpoint["std"]),
                          build_model(checkpoint["config"]["model"]))
    model.load_state_dict(checkpoint["model"])  # copies float16 weights into the float32 net
    return model.eval(), checkpoint


def compact(checkpoint):
    """The checkpoint without its run state, floating-point weights in float16."""
    weights = {k: v.half() if v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    return {**{k: v for k, v in checkpoint.items() if k not in RUN_STATE}, "model": weights}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compact", required=True, metavar="CHECKPOINT", help="training checkpoint to compact (required)")
    p.add_argument("--out", required=True, help="compact checkpoint to write (required)")
    args = p.parse_args(argv)
    save_atomic(compact(load_checkpoint(args.compact)), args.out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
