"""Inference cost of exported models with one torch thread: ms per face at batch 1 and batch 32.

    python -m scripts.benchmark_model model/fer.pt [other.pt ...] [--fusion off on]

Each (file, oneDNN fusion setting) pair is timed in a fresh child process, round-robin over
the rounds, so machine noise hits all of them alike; the best round counts. The first pair is
the reference for the ratios. Fusion (torch.jit.enable_onednn_fusion) is a per-process switch,
hence the child processes. Also prints each file's size and the multiply-accumulates recorded
in its metadata.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from modelfile import DEFAULT_PATH, FACE_SIZE, load


def time_per_face(module, batch, repeats):
    """Mean milliseconds per face over `repeats` forward passes of a random batch."""
    x = torch.rand(batch, 1, FACE_SIZE, FACE_SIZE)
    with torch.inference_mode():
        t0 = time.perf_counter()
        for _ in range(repeats):
            module(x)
    return (time.perf_counter() - t0) / repeats / batch * 1e3


def child(path, fusion):
    """Time one file in this process and print {batch: ms per face} as JSON."""
    torch.set_num_threads(1)
    torch.jit.enable_onednn_fusion(fusion == "on")
    module, _ = load(path)
    for batch in (1, 32):  # warm-up: TorchScript profiles, then optimises (and fuses) on later calls
        time_per_face(module, batch, 5)
    print(json.dumps({1: time_per_face(module, 1, 200), 32: time_per_face(module, 32, 20)}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", default=[str(DEFAULT_PATH)], help="exported files (default: model/fer.pt)")
    p.add_argument("--fusion", nargs="+", default=["off", "on"], choices=["off", "on"],
                   help="oneDNN fusion settings to time each file with (default: off on)")
    p.add_argument("--rounds", type=int, default=5, help="round-robin rounds (default: 5)")
    p.add_argument("--child", nargs=2, metavar=("FILE", "FUSION"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(*args.child)

    variants = [(path, fusion) for path in args.models for fusion in args.fusion]
    results = {v: {1: [], 32: []} for v in variants}
    for _ in range(args.rounds):
        for path, fusion in variants:
            out = subprocess.run([sys.executable, "-m", "scripts.benchmark_model", "--child", path, fusion],
                                 check=True, capture_output=True, text=True).stdout
            for batch, ms in json.loads(out.splitlines()[-1]).items():
                results[path, fusion][int(batch)].append(ms)
    best = {v: {b: min(ms) for b, ms in r.items()} for v, r in results.items()}
    reference = variants[0]
    print(f"one torch thread; best of {args.rounds} rounds; reference {reference[0]}, fusion {reference[1]}")
    for path, fusion in variants:
        meta = load(path)[1]
        b = best[path, fusion]
        ratio = "" if (path, fusion) == reference else (
            f"  ({b[1] / best[reference][1]:.2f}x / {b[32] / best[reference][32]:.2f}x)")
        print(f"{path} fusion {fusion}: {meta.get('architecture')} {meta.get('dtype', 'fp32')}, "
              f"{meta.get('macs', 0) / 1e6:.1f} M MACs, {Path(path).stat().st_size / 1e6:.1f} MB: "
              f"batch 1 {b[1]:.2f} ms/face, batch 32 {b[32]:.3f} ms/face{ratio}")


if __name__ == "__main__":
    main()
