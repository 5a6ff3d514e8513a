"""Exploratory figures: class counts per split, average faces, sample faces per emotion.

    python -m training.eda --data ../shared/data/fer2013.csv.gz --out-dir docs/eda
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.data import DEFAULT_DATA, LABELS, load_dataset  # noqa: E402


def plot_class_counts(dataset, path):
    """Grouped bars: images per emotion in each split."""
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(LABELS))
    width = 0.8 / len(dataset)
    for i, (split, data) in enumerate(dataset.items()):
        counts = np.bincount(data.labels, minlength=len(LABELS))
        bars = ax.bar(x + i * width, counts, width, label=f"{split} ({len(data)})")
        ax.bar_label(bars, fontsize=6)
    ax.set(xticks=x + width * (len(dataset) - 1) / 2, xticklabels=LABELS, ylabel="images", title="Images per emotion and split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_average_faces(train, path):
    """The mean training face, overall and per emotion."""
    fig, axes = plt.subplots(1, len(LABELS) + 1, figsize=(2 * (len(LABELS) + 1), 2.4))
    panels = [("all", train.images)] + [(name, train.images[train.labels == i]) for i, name in enumerate(LABELS)]
    for ax, (name, images) in zip(axes, panels):
        ax.imshow(images.mean(0), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{name}\n(n={len(images)})", fontsize=9)
        ax.axis("off")
    fig.suptitle("Average training face")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_samples(train, path, per_class=8, seed=0):
    """A grid of random training faces, one row per emotion."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(LABELS), per_class, figsize=(per_class * 1.1, len(LABELS) * 1.2))
    for row, name in enumerate(LABELS):
        idx = np.flatnonzero(train.labels == row)
        for col, i in enumerate(rng.choice(idx, size=min(per_class, len(idx)), replace=False)):
            axes[row, col].imshow(train.images[i], cmap="gray", vmin=0, vmax=255)
        for col in range(per_class):
            axes[row, col].axis("off")
        axes[row, 0].set_title(name, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help=f"dataset (default: {DEFAULT_DATA})")
    p.add_argument("--out-dir", default="docs/eda", help="where the PNGs go (default: docs/eda)")
    args = p.parse_args(argv)
    dataset = load_dataset(args.data)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_class_counts(dataset, out / "class_counts.png")
    plot_average_faces(dataset["train"], out / "average_faces.png")
    plot_samples(dataset["train"], out / "samples.png")
    print(f"wrote class_counts.png, average_faces.png, samples.png to {out}")


if __name__ == "__main__":
    main()
