"""Drop or slim residual blocks of a trained checkpoint, as the start of a distillation stage.

    python -m training.shrink --checkpoint runs/kd/best.pt --drop-block 0 --model fernet-022 \
        --out runs/shrink/start.pt
    python -m training.shrink --checkpoint runs/kd/best.pt --slim-block 0 --slim-block 2 \
        --model fernet-s02 --out runs/shrink/start.pt

A residual block whose input and output have the same shape can be removed and the net still
runs; it loses accuracy, which a second stage with the full net as teacher wins back
(`python -m training.train --init runs/shrink/start.pt --teacher runs/kd/best.pt ...`). The
blocks of the residual stages are numbered in order (fernet: 0 is stage 1's block, 1-2 stage
2's, 3-4 stage 3's); the later ones are renumbered. --model names the architecture that
results, and the weights must load into it exactly.

Slimming keeps half of the channels between a block's two convs (its input and output widths
stay), so its cost halves and the residual path is untouched. Channels are ranked by the root
mean square of their output after BatchNorm and ReLU, taking the BatchNorm output as Gaussian
(mean beta, std gamma), times the norm of the weights the second conv reads them with: an
estimate, without data, of how much each adds to the block's output.
"""
import argparse
import re
import sys

from torch.distributions import Normal

from training.checkpoint import load_checkpoint, make_checkpoint, save_atomic
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


def channel_scores(state, prefix):
    """Estimated contribution of each middle channel of the block whose keys start with `prefix`."""
    gamma, beta = state[prefix + "body.0.1.weight"], state[prefix + "body.0.1.bias"]
    sigma = gamma.abs().clamp_min(1e-8)
    z = beta / sigma
    unit = Normal(0.0, 1.0)
    relu_mean_square = (beta ** 2 + sigma ** 2) * unit.cdf(z) + beta * sigma * unit.log_prob(z).exp()
    reads = state[prefix + "body.1.weight"].flatten(2).norm(dim=(0, 2))  # (c_out, mid, 3, 3) -> per mid channel
    return relu_mean_square.clamp_min(0).sqrt() * reads


def slim_block(state, index):
    """The state dict with half of residual block `index`'s middle channels, the strongest kept."""
    prefix = f"1.2.{index}."
    if prefix + "body.0.1.weight" not in state:
        raise KeyError(index)
    scores = channel_scores(state, prefix)
    keep = scores.topk(len(scores) // 2).indices.sort().values
    out = dict(state)
    out[prefix + "body.0.0.weight"] = state[prefix + "body.0.0.weight"][keep]
    for name in ("weight", "bias", "running_mean", "running_var"):
        out[prefix + f"body.0.1.{name}"] = state[prefix + f"body.0.1.{name}"][keep]
    out[prefix + "body.1.weight"] = state[prefix + "body.1.weight"][:, keep]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="training checkpoint to take the weights from")
    p.add_argument("--drop-block", type=int, help="index of the residual block to remove")
    p.add_argument("--slim-block", type=int, action="append", default=[],
                   help="index of a residual block to keep half the inner channels of (repeatable; "
                        "indices before any --drop-block)")
    p.add_argument("--model", required=True, help="registered architecture the remaining weights form")
    p.add_argument("--out", required=True, help="checkpoint to write (a start for --init, not a resume)")
    args = p.parse_args(argv)
    if args.drop_block is None and not args.slim_block:
        p.error("give --drop-block, --slim-block or both")

    checkpoint = load_checkpoint(args.checkpoint)
    if not checkpoint["config"]["model"].startswith("fernet"):
        raise SystemExit(f"{args.checkpoint} is {checkpoint['config']['model']}; shrink knows the fernet family's layout")
    state = checkpoint["model"]
    for index in args.slim_block:
        try:
            state = slim_block(state, index)
        except KeyError:
            raise SystemExit(f"{args.checkpoint} has no residual block {index}")
    if args.drop_block is not None:
        state = drop_block(state, args.drop_block)
        if len(state) == len(checkpoint["model"]):
            raise SystemExit(f"{args.checkpoint} has no residual block {args.drop_block}")
    changes = ([f"block {args.drop_block} dropped"] if args.drop_block is not None else []) + \
        [f"block {i} slimmed" for i in args.slim_block]
    net = build_model(args.model)
    try:
        net.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("1.")})
    except RuntimeError as e:
        raise SystemExit(f"the weights with {', '.join(changes)} do not form {args.model}: {str(e).splitlines()[0]}")
    cost = model_cost(net)
    command = "python -m training.shrink " + " ".join(argv if argv is not None else sys.argv[1:])
    save_atomic(make_checkpoint(state, dict(checkpoint["config"], model=args.model), checkpoint["mean"],
                                checkpoint["std"], cost, command), args.out)
    print(f"wrote {args.out}: {args.model}, {cost.params:,} parameters, {cost.macs / 1e6:.1f} M MACs "
          f"({', '.join(changes)} of {checkpoint['config']['model']})")


if __name__ == "__main__":
    main()
