"""Drop residual blocks from a trained checkpoint, as the start of a distillation stage.

    python -m training.shrink --checkpoint runs/kd/best.pt --drop-block 0 --model fernet-022 \
        --out runs/shrink/start.pt

A residual block whose input and output have the same shape can be removed and the net still
runs; it loses accuracy, which a second stage with the full net as teacher wins back
(`python -m training.train --init runs/shrink/start.pt --teacher runs/kd/best.pt ...`). The
blocks of the residual stages are numbered in order (fernet: 0 is stage 1's block, 1-2 stage
2's, 3-4 stage 3's); the later ones are renumbered. --model names the architecture that
results, and the weights must load into it exactly.
"""
import argparse
import re
from pathlib import Path

import torch

from training.engine import save_atomic
from training.models import build_model, model_cost

STAGE_KEY = re.compile(r"^1\.2\.(\d+)\.(.*)$")  # Normalize is 0, the net 1; fernet's residual stages are its child 2


def drop_block(state, index):
    """The Normalize + net state dict without residual block `index`, later blocks renumbered."""
    out = {}
    for key, value in state.items():
        match = STAGE_KEY.match(key)
        if match:
            block = int(match.group(1))
            if block == index:
                continue
            key = f"1.2.{block - 1 if block > index else block}.{match.group(2)}"
        out[key] = value
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="training checkpoint to take the weights from")
    p.add_argument("--drop-block", type=int, required=True, help="index of the residual block to remove")
    p.add_argument("--model", required=True, help="registered architecture the remaining weights form")
    p.add_argument("--out", required=True, help="checkpoint to write (a start for --init, not a resume)")
    args = p.parse_args(argv)

    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    if not checkpoint["config"]["model"].startswith("fernet"):
        raise SystemExit(f"{args.checkpoint} is {checkpoint['config']['model']}; shrink knows the fernet family's layout")
    state = drop_block(checkpoint["model"], args.drop_block)
    if len(state) == len(checkpoint["model"]):
        raise SystemExit(f"{args.checkpoint} has no residual block {args.drop_block}")
    net = build_model(args.model)
    try:
        net.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("1.")})
    except RuntimeError as e:
        raise SystemExit(f"the weights without block {args.drop_block} do not form {args.model}: {str(e).splitlines()[0]}")
    cost = model_cost(net)
    shrunk = {
        "model": state, "epoch": 0, "history": [], "best_val_acc": 0.0,
        "config": dict(checkpoint["config"], model=args.model),
        "labels": checkpoint["labels"], "mean": checkpoint["mean"], "std": checkpoint["std"],
        "params": cost.params, "macs": cost.macs,
        "command": f"python -m training.shrink --checkpoint {args.checkpoint} --drop-block {args.drop_block} --model {args.model}",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_atomic(shrunk, args.out)
    print(f"wrote {args.out}: {args.model}, {cost.params:,} parameters, {cost.macs / 1e6:.1f} M MACs "
          f"(block {args.drop_block} of {checkpoint['config']['model']} dropped)")


if __name__ == "__main__":
    main()
