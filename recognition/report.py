"""Plot each track's emotions over a video; write and print the tracks' shares of time per emotion."""
import csv
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402


def plot_path(folder, source):
    """Where a source's plot goes in the plot folder; its folders stay apart (a/x.mp4 -> a_x.mp4.png)."""
    return Path(folder) / (re.sub(r"[^\w.-]+", "_", str(source)).strip("_") + ".png")


def plot_timeline(rows, labels, path):
    """A PNG with one panel per track of a video: each emotion's probability against time."""
    tracks = sorted({row["track"] for row in rows})
    figure, axes = plt.subplots(len(tracks), 1, figsize=(8, 0.8 + 1.6 * len(tracks)), sharex=True, squeeze=False)
    colours = plt.get_cmap("tab10").colors
    for axis, track in zip(axes[:, 0], tracks):
        mine = [row for row in rows if row["track"] == track]
        for label, colour in zip(labels, colours):
            axis.plot([row["time_s"] for row in mine], [row[label] for row in mine], label=label, color=colour, lw=1.2)
        axis.set_ylim(0, 1)
        axis.set_ylabel(f"track {track}")
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(str(rows[0]["source"]), fontsize=9, loc="left")
    axes[0, 0].legend(ncol=len(labels), fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.12), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def write_summary(summaries, labels, path):
    """The summaries as a CSV file."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["source", "track", "samples", *labels], lineterminator="\n")
        writer.writeheader()
        writer.writerows(summaries)


def summary_table(summaries, labels):
    """The summaries as a text table of percentages, one line per track."""
    width = max([len("source")] + [len(str(s["source"])) for s in summaries])
    lines = [f"{'source':<{width}}  track  samples  " + "  ".join(f"{label:>8}" for label in labels)]
    for s in summaries:
        lines.append(f"{s['source']:<{width}}  {s['track']:>5}  {s['samples']:>7}  "
                     + "  ".join(f"{100 * s[label]:>7.1f}%" for label in labels))
    return "\n".join(lines)

