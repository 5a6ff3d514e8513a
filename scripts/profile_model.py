"""Where an exported model spends its time: torch.profiler's per-op table at one batch size, one thread.

    python -m scripts.profile_model model/fer.pt [--batch 32] [--repeats 20]

Ops are grouped by input shape, so each conv of the net shows as its own row (a quantised conv's
first shape is its input, N x C x H x W; with flip TTA inside, N is twice the batch). Share of
time per op, next to its share of multiply-accumulates, says which layers run far from the
core's peak. For the cost in ms per face, use scripts/benchmark_model.py.
"""
import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from modelfile import DEFAULT_PATH, FACE_SIZE, load as load_exported


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=str(DEFAULT_PATH), help="exported file (default: model/fer.pt)")
    p.add_argument("--batch", type=int, default=32, help="faces per call (default: 32)")
    p.add_argument("--repeats", type=int, default=20, help="profiled calls, after as many warm-up calls (default: 20)")
    p.add_argument("--rows", type=int, default=15, help="ops to print, slowest first (default: 15)")
    args = p.parse_args()

    torch.set_num_threads(1)
    module, meta = load_exported(args.model)
    x = torch.rand(args.batch, 1, FACE_SIZE, FACE_SIZE)
    with torch.inference_mode():
        for _ in range(args.repeats):
            module(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(args.repeats):
                module(x)
    print(f"{args.model}: {meta.get('architecture')} {meta.get('dtype', 'fp32')}, batch {args.batch}, "
          f"{args.repeats} calls, one thread")
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=28, max_shapes_column_width=50))


if __name__ == "__main__":
    main()
