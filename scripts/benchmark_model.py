"""Inference cost of exported models with one torch thread: ms per face at batch 1 and batch 32.

    python scripts/benchmark_model.py model/fer.pt [other.pt ...]

Several files are timed round-robin in one run, so machine noise hits them alike; the first
file is the reference for the ratios. Also prints each file's size and the multiply-accumulates
recorded in its metadata.
"""
import argparse
import json
import time
from pathlib import Path

import torch


def load(path):
    """(module, metadata) of an exported file."""
    extra = {"meta.json": ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module.eval(), json.loads(extra["meta.json"] or "{}")


def time_per_face(module, batch, repeats):
    """Mean milliseconds per face over `repeats` forward passes of a random batch."""
    x = torch.rand(batch, 1, 48, 48)
    with torch.inference_mode():
        t0 = time.perf_counter()
        for _ in range(repeats):
            module(x)
    return (time.perf_counter() - t0) / repeats / batch * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", default=["model/fer.pt"], help="exported files (default: model/fer.pt)")
    p.add_argument("--rounds", type=int, default=5, help="round-robin rounds (default: 5)")
    args = p.parse_args()
    torch.set_num_threads(1)
    models = {path: load(path) for path in args.models}
    results = {path: {1: [], 32: []} for path in models}
    for module, _ in models.values():  # warm-up: TorchScript profiles and optimises the first calls
        for batch in (1, 32):
            time_per_face(module, batch, 5)
    for _ in range(args.rounds):
        for path, (module, _) in models.items():
            results[path][1].append(time_per_face(module, 1, 100))
            results[path][32].append(time_per_face(module, 32, 10))
    reference = args.models[0]
    best = {path: {b: min(v) for b, v in r.items()} for path, r in results.items()}
    print("one torch thread; best of", args.rounds, "rounds")
    for path, (_, meta) in models.items():
        ratio = "" if path == reference else (f"  ({best[path][1] / best[reference][1]:.2f}x / "
                                              f"{best[path][32] / best[reference][32]:.2f}x of {reference})")
        print(f"{path}: {meta.get('architecture')} {meta.get('dtype', 'fp32')}, {meta.get('macs', 0) / 1e6:.1f} M MACs, "
              f"{Path(path).stat().st_size / 1e6:.1f} MB: batch 1 {best[path][1]:.2f} ms/face, "
              f"batch 32 {best[path][32]:.3f} ms/face{ratio}")


if __name__ == "__main__":
    main()
