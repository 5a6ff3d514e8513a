"""PublicTest accuracy of training checkpoints and of every average of their probabilities.

    python -m scripts.ensemble runs/kd/best.pt runs/kd-f022/best.pt [--tta flip]

Each checkpoint's softmax (averaged over the test-time views) is computed once; then every
subset of two or more is averaged and scored. Nets distilled from one another make the same
mistakes, and this shows how much (if anything) averaging them would add before one trains a
student from such an ensemble. Validation split only: choices are made on PublicTest.
"""
import argparse
import itertools
from pathlib import Path

import torch

from training.checkpoint import load_checkpoint_model
from training.data import DEFAULT_DATA, load_dataset
from training.engine import predict_logits


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="training checkpoints (.pt dicts)")
    p.add_argument("--data", default=DEFAULT_DATA, help=f"dataset (default: {DEFAULT_DATA})")
    p.add_argument("--tta", default="flip", choices=["none", "flip", "crops"], help="test-time views (default: flip)")
    args = p.parse_args()

    val = load_dataset(args.data)["val"]
    labels = torch.as_tensor(val.labels)
    probs = {}
    for path in args.checkpoints:
        model, _ = load_checkpoint_model(path)
        probs[path] = predict_logits(model, val.images, tta=args.tta, desc=Path(path).parent.name).softmax(1)

    def accuracy(paths):
        return (sum(probs[p] for p in paths).argmax(1) == labels).float().mean().item()

    print(f"PublicTest accuracy, {args.tta} TTA, fp32")
    for size in range(1, len(args.checkpoints) + 1):
        for paths in itertools.combinations(args.checkpoints, size):
            print(f"{accuracy(paths):.2%}  {' + '.join(paths)}")


if __name__ == "__main__":
    main()
