"""Evaluate a training checkpoint or an exported model on one split; write JSON and PNG plots.

    python -m training.evaluate --model model/fer.pt --split val --out-dir runs/eval-val

Measures two ways: against the FER-2013 labels (all faces) and, where the FER+ votes file
exists, against the FER+ plurality (the faces with a vote for one of the seven emotions).
Writes OUT_DIR/metrics.json (for each: accuracy, per-class precision / recall / F1,
confusion matrix, expected calibration error) and OUT_DIR/confusion.png, pr_curves.png,
reliability.png (FER-2013), confusion_ferplus.png, reliability_ferplus.png and, when a
training log is given, curves.png.
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import (confusion_matrix, precision_recall_curve,  # noqa: E402
                             precision_recall_fscore_support)

from modelfile import DEFAULT_PATH, load as load_exported  # noqa: E402
from training.checkpoint import load_checkpoint_model  # noqa: E402
from training.data import (DEFAULT_DATA, DEFAULT_VOTES, LABELS, attach_votes, ferplus_majority,  # noqa: E402
                           has_votes, load_dataset)
from training.engine import predict_logits, predict_probs  # noqa: E402


def load_any(path):
    """(probability function over uint8 images, description) for a checkpoint or an exported file."""
    try:
        scripted = load_exported(path)[0]
    except RuntimeError:
        model, checkpoint = load_checkpoint_model(path)
        return (lambda images, tta: predict_logits(model, images, tta=tta).softmax(1)), checkpoint["config"]["data"]
    return (lambda images, tta: predict_probs(scripted, images, tta)), None


def expected_calibration_error(probs, labels, bins=15):
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    confidence, predicted = probs.max(1), probs.argmax(1)
    correct = predicted == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(ece)


def metrics(probs, labels):
    """Accuracy, per-class precision / recall / F1, confusion matrix and ECE as plain data."""
    predicted = probs.argmax(1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=range(len(LABELS)), zero_division=0)
    return {
        "accuracy": float((predicted == labels).mean()),
        "ece_15": expected_calibration_error(probs, labels),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(LABELS)},
        "confusion": confusion_matrix(labels, predicted, labels=range(len(LABELS))).tolist(),
    }


def plot_confusion(confusion, path, title="Confusion matrix (rows sum to 1)"):
    """Row-normalised confusion matrix with counts."""
    confusion = np.array(confusion)
    rates = confusion / confusion.sum(1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n({confusion[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set(xticks=range(len(LABELS)), yticks=range(len(LABELS)), xticklabels=LABELS, yticklabels=LABELS,
           xlabel="predicted", ylabel="true", title=title)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pr_curves(probs, labels, path):
    """One-vs-rest precision-recall curve per class."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for i, name in enumerate(LABELS):
        precision, recall, _ = precision_recall_curve(labels == i, probs[:, i])
        ax.plot(recall, precision, label=name)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall per class", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_reliability(probs, labels, path, bins=15, against="FER-2013 labels"):
    """Reliability diagram: accuracy against confidence per bin."""
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    acc = [correct[idx == b].mean() if (idx == b).any() else 0 for b in range(bins)]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.bar(edges[:-1], acc, width=1 / bins, align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set(xlabel="confidence", ylabel="accuracy", title=f"Reliability against {against} (ECE {expected_calibration_error(probs, labels):.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(log_path, path):
    """Loss and accuracy per epoch from a training log.jsonl."""
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line]
    epochs = [r["epoch"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [r["train_loss"] for r in rows], label="train")
    left.plot(epochs, [r["val_loss"] for r in rows], label="validation")
    left.set(xlabel="epoch", ylabel="loss", title="Loss")
    right.plot(epochs, [r["train_acc"] for r in rows], label="train")
    right.plot(epochs, [r["val_acc"] for r in rows], label="validation (FER-2013)")
    if "val_ferplus_acc" in rows[-1]:
        right.plot(epochs, [r.get("val_ferplus_acc") for r in rows], label="validation (FER+)")
    right.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (left, right):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_metrics(title, result, n):
    """Accuracy, ECE and the per-class table, as lines on stdout."""
    print(f"{title}: accuracy {result['accuracy']:.4f}, ECE {result['ece_15']:.4f} on {n} images")
    for name, row in result["per_class"].items():
        print(f"  {name:9s} precision {row['precision']:.3f} recall {row['recall']:.3f} f1 {row['f1']:.3f} n={row['support']}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_PATH), help="checkpoint (.pt dict) or exported TorchScript file (default: model/fer.pt)")
    p.add_argument("--data", default=None, help=f"dataset path (default: the checkpoint's, else {DEFAULT_DATA})")
    p.add_argument("--votes", default=DEFAULT_VOTES, help=f"FER+ votes for the CSV's rows; the FER+ metrics are skipped when the file is absent (default: {DEFAULT_VOTES})")
    p.add_argument("--split", default="val", choices=["train", "val", "test"], help="split to evaluate; test is PrivateTest, evaluate it once (default: val)")
    p.add_argument("--tta", default="none", choices=["none", "flip", "crops"], help="test-time augmentation (default: none)")
    p.add_argument("--log", default=None, help="training log.jsonl to plot curves from (default: none)")
    p.add_argument("--out-dir", default="runs/eval", help="where metrics.json and the PNGs go (default: runs/eval)")
    args = p.parse_args(argv)

    predict, checkpoint_data = load_any(args.model)
    dataset = load_dataset(args.data or checkpoint_data or DEFAULT_DATA)
    if Path(args.votes).exists():
        dataset = attach_votes(dataset, args.votes)
    data = dataset[args.split]
    probs = predict(data.images, args.tta).numpy()
    result = {"model": str(args.model), "split": args.split, "tta": args.tta, "n": len(data), **metrics(probs, data.labels)}
    if data.votes is not None:
        voted = has_votes(data)
        majority = ferplus_majority(data.votes[voted])
        result["ferplus"] = {"n": int(voted.sum()), **metrics(probs[voted], majority)}

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    plot_confusion(result["confusion"], out / "confusion.png")
    plot_pr_curves(probs, data.labels, out / "pr_curves.png")
    plot_reliability(probs, data.labels, out / "reliability.png")
    if "ferplus" in result:
        plot_confusion(result["ferplus"]["confusion"], out / "confusion_ferplus.png",
                       title="Confusion against the FER+ plurality (rows sum to 1)")
        plot_reliability(probs[voted], majority, out / "reliability_ferplus.png", against="the FER+ plurality")
    if args.log:
        plot_curves(args.log, out / "curves.png")
    print_metrics(f"{args.split}, FER-2013 labels", result, len(data))
    if "ferplus" in result:
        print_metrics(f"{args.split}, FER+ plurality", result["ferplus"], result["ferplus"]["n"])
    print(f"wrote {out}/metrics.json and plots")


if __name__ == "__main__":
    main()
