"""Training throughput of an architecture in fp32 and bf16 autocast, each with and without channels_last, side by side.

    python -m scripts.benchmark_training --model fernet

Times full training steps (augmentation, forward, backward, optimiser) on random 48x48
batches, alternating the four variants round by round so that machine noise hits all alike,
and prints images per second, the ratios to fp32, and the implied seconds per FER-2013 epoch
(28,709 training images).
"""
import argparse
import time

import torch
import torch.nn.functional as F

from modelfile import FACE_SIZE, LABELS
from training.augment import build_augment
from training.engine import autocast
from training.models import build_model, model_cost

TRAIN_IMAGES = 28_709


def make_step(model_name, precision, channels_last, augment_name, batch_size):
    """A closure that runs one training step of the given variant."""
    torch.manual_seed(0)
    model = build_model(model_name).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    augment = build_augment(augment_name)
    x, y = torch.rand(batch_size, 1, FACE_SIZE, FACE_SIZE), torch.randint(0, len(LABELS), (batch_size,))

    def step():
        batch = augment(x)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(precision):
            loss = F.cross_entropy(model(batch).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="fernet", help="architecture (default: fernet)")
    p.add_argument("--augment", default="strong", help="augmentation preset (default: strong)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round (default: 10)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: 3)")
    args = p.parse_args()
    cost = model_cost(build_model(args.model))
    print(f"{args.model}: {cost.params:,} parameters, {cost.macs / 1e6:.1f} M MACs per image; "
          f"batch {args.batch_size}, augmentation {args.augment}, {torch.get_num_threads()} threads")
    variants = {precision + (" + channels_last" if layout else ""): make_step(args.model, precision, layout,
                                                                           args.augment, args.batch_size)
                for precision in ("fp32", "bf16") for layout in (False, True)}
    seconds = {name: 0.0 for name in variants}
    for step in variants.values():
        step()  # warm-up
    for _ in range(args.rounds):
        for name, step in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            seconds[name] += time.perf_counter() - t0
    images = args.rounds * args.steps * args.batch_size
    rates = {name: images / s for name, s in seconds.items()}
    for name, rate in rates.items():
        print(f"  {name:22s} {rate:7.0f} images/s   {TRAIN_IMAGES / rate:6.1f} s per epoch (training steps only)")
    for name, rate in rates.items():
        if name != "fp32":
            print(f"  {name} is {rate / rates['fp32']:.2f}x fp32")


if __name__ == "__main__":
    main()
