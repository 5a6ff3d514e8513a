"""Load FER-2013 from the Kaggle CSV or from the image-folder release, with a decode cache,
and the FER+ crowd votes for the same faces.

Every loader returns a `Dataset`: a dict from split name ("train", "val", "test") to a
`Split` of uint8 images (N, 48, 48) and int64 labels (N,). Splits read from the CSV also
carry each face's row number in the file, which is how `attach_votes` finds its FER+ votes.
"""
import csv
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modelfile import FACE_SIZE as SIZE
from modelfile import LABELS  # the CSV's label column follows the contract's order

USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
DEFAULT_DATA = "../shared/data/fer2013.csv.gz"  # the Kaggle CSV, read by path from the shared folder
DEFAULT_VOTES = "../shared/data/ferplus_votes.csv.gz"  # FER+ votes, row N = row N of the CSV
# FER+ names our seven emotions in another order; contempt, unknown and NF (not a face) are not served.
FERPLUS_EMOTIONS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
FERPLUS_TO_OURS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                   "anger": "angry", "disgust": "disgust", "fear": "fear"}
DEFAULT_CACHE = Path(os.environ.get("FER_CACHE", Path.home() / ".cache" / "fer-emotion"))


@dataclass
class Split:
    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64
    rows: np.ndarray | None = None  # (N,) int64 data-row number in the CSV (0 = first row after the header)
    votes: np.ndarray | None = None  # (N, 7) float32 FER+ votes in LABELS order, once attached

    def __len__(self):
        return len(self.labels)

    def take(self, index):
        """The faces at `index` (a slice, mask or index array), with every per-face field."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return Split(self.images[index], self.labels[index], pick(self.rows), pick(self.votes))


class DataError(ValueError):
    """A malformed input file; the message names the file and line."""


def parse_row(row, line):
    """Decode one CSV row into (image, label, split), raising DataError naming the line."""
    if len(row) != 3:
        raise DataError(f"line {line}: expected 3 columns (emotion,pixels,Usage), got {len(row)}")
    emotion, pixels, usage = row
    if not emotion.strip().isdigit() or int(emotion) >= len(LABELS):
        raise DataError(f"line {line}: emotion {emotion!r} is not an integer in 0..{len(LABELS) - 1}")
    if usage not in USAGE_TO_SPLIT:
        raise DataError(f"line {line}: unknown Usage {usage!r}; expected one of {', '.join(USAGE_TO_SPLIT)}")
    try:
        values = np.array(pixels.split(), dtype=np.int32)
    except ValueError:
        raise DataError(f"line {line}: pixels contain a value that is not an integer") from None
    if values.size != SIZE * SIZE:
        raise DataError(f"line {line}: expected {SIZE * SIZE} pixel values, got {values.size}")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"line {line}: pixel values must lie in 0..255")
    return values.astype(np.uint8).reshape(SIZE, SIZE), int(emotion), USAGE_TO_SPLIT[usage]


def parse_csv(path):
    """Parse a Kaggle fer2013.csv (plain or .gz) into a Dataset."""
    opener = gzip.open if str(path).endswith(".gz") else open
    images, labels, rows = ({split: [] for split in USAGE_TO_SPLIT.values()} for _ in range(3))
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["emotion", "pixels", "Usage"]:
            raise DataError(f"{path}: line 1: expected header emotion,pixels,Usage, got {header}")
        for line, row in enumerate(reader, start=2):
            image, label, split = parse_row(row, line)
            images[split].append(image)
            labels[split].append(label)
            rows[split].append(line - 2)
    return {split: Split(np.stack(images[split]) if images[split] else np.zeros((0, SIZE, SIZE), np.uint8),
                         np.array(labels[split], dtype=np.int64), np.array(rows[split], dtype=np.int64))
            for split in images}


def cache_path(source, cache_dir):
    """Cache file for a source file, keyed by its absolute path, size and mtime."""
    stat = Path(source).stat()
    key = f"{Path(source).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return Path(cache_dir) / f"fer-rows-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def save_cache(dataset, path):
    """Write a Dataset as one uncompressed .npz, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    arrays = {}
    for split, data in dataset.items():
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = data.images, data.labels
        if data.rows is not None:
            arrays[f"{split}_rows"] = data.rows
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_cache(path):
    """Read a Dataset written by save_cache."""
    with np.load(path) as npz:
        splits = {name.rsplit("_", 1)[0] for name in npz.files}
        return {s: Split(npz[f"{s}_images"], npz[f"{s}_labels"], npz[f"{s}_rows"] if f"{s}_rows" in npz else None)
                for s in splits}


def load_csv(path, cache_dir=DEFAULT_CACHE):
    """Load the Kaggle CSV, decoding it once and reusing the cached arrays afterwards."""
    cached = cache_path(path, cache_dir)
    if cached.exists():
        return load_cache(cached)
    dataset = parse_csv(path)
    save_cache(dataset, cached)
    return dataset


def read_folder(root):
    """Read `root/<label>/*` image files into a Split (grey, resized to 48x48 if needed)."""
    images, labels = [], []
    for label_index, label in enumerate(LABELS):
        for file in sorted((Path(root) / label).glob("*")):
            with Image.open(file) as im:
                im = im.convert("L")
                if im.size != (SIZE, SIZE):
                    im = im.resize((SIZE, SIZE), Image.Resampling.BOX)
                images.append(np.asarray(im, dtype=np.uint8))
            labels.append(label_index)
    if not images:
        raise DataError(f"{root}: no images found under {root}/<label>/ for labels {', '.join(LABELS)}")
    return Split(np.stack(images), np.array(labels, dtype=np.int64))


def stratified_split(data, fraction, seed):
    """Split off `fraction` of each class, with a fixed seed, as (rest, held_out)."""
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(data.labels):
        idx = np.flatnonzero(data.labels == label)
        held.extend(rng.permutation(idx)[: round(len(idx) * fraction)])
    mask = np.zeros(len(data), dtype=bool)
    mask[held] = True
    return data.take(~mask), data.take(mask)


def load_folders(root, val_fraction=0.1, seed=0):
    """Load the image-folder release (train/<label>, test/<label>), carving val out of train."""
    train, val = stratified_split(read_folder(Path(root) / "train"), val_fraction, seed)
    return {"train": train, "val": val, "test": read_folder(Path(root) / "test")}


def load_dataset(path, cache_dir=DEFAULT_CACHE, val_fraction=0.1, seed=0):
    """Load either layout: a CSV file, or a folder with train/ and test/."""
    if Path(path).is_dir():
        return load_folders(path, val_fraction, seed)
    return load_csv(path, cache_dir)


def truncate(dataset, limit):
    """The first `limit` images of every split (all of them when limit is 0), for smoke runs."""
    if not limit:
        return dataset
    return {name: data.take(slice(0, limit)) for name, data in dataset.items()}


def read_votes(path):
    """FER+ vote counts (rows, 7) as float32 in LABELS order, one row per data row of the CSV."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        missing = [name for name in FERPLUS_EMOTIONS if name not in header]
        if missing:
            raise DataError(f"{path}: line 1: the header lacks the FER+ columns {', '.join(missing)}")
        columns = [header.index(name) for name in (
            next(k for k, v in FERPLUS_TO_OURS.items() if v == label) for label in LABELS)]
        votes = []
        for line, row in enumerate(reader, start=2):
            try:  # a row FER+ dropped or could not match has empty vote cells: no votes
                votes.append([float(row[c] or 0) for c in columns])
            except (ValueError, IndexError):
                raise DataError(f"{path}: line {line}: vote counts must be numbers in the header's columns") from None
    return np.array(votes, dtype=np.float32).reshape(-1, len(LABELS))


def attach_votes(dataset, path):
    """The dataset with each split's FER+ votes, matched to the faces by CSV row number."""
    votes = read_votes(path)
    attached = {}
    for name, split in dataset.items():
        if split.rows is None:
            raise DataError(f"{path}: FER+ votes need the Kaggle CSV layout, whose rows they follow")
        if len(split) and split.rows.max() >= len(votes):
            raise DataError(f"{path}: {len(votes)} vote rows, but the CSV has row {split.rows.max() + 1}")
        attached[name] = Split(split.images, split.labels, split.rows, votes[split.rows])
    return attached


def has_votes(split):
    """Mask of the faces with at least one FER+ vote for one of our seven emotions."""
    return split.votes.sum(1) > 0


def ferplus_majority(votes):
    """The FER+ plurality emotion (index in LABELS) of each row; a tie goes to the first in FER+ column order."""
    order = [LABELS.index(FERPLUS_TO_OURS[name]) for name in FERPLUS_EMOTIONS]
    return np.array(order)[np.asarray(votes)[:, order].argmax(1)]


def soft_targets(split, ferplus_weight):
    """Training targets (N, 7): `ferplus_weight` of the FER+ vote distribution, the rest the FER-2013 label.

    Faces with no vote on our seven emotions (FER+ dropped them, or their votes all went to
    contempt, unknown or not-a-face) keep their FER-2013 label alone.
    """
    onehot = np.eye(len(LABELS), dtype=np.float32)[split.labels]
    if not ferplus_weight:
        return onehot
    voted = has_votes(split)
    distribution = split.votes / np.maximum(split.votes.sum(1, keepdims=True), 1)
    weight = np.where(voted, ferplus_weight, 0.0).astype(np.float32)[:, None]
    return weight * distribution + (1 - weight) * onehot


def normalisation(train):
    """Mean and standard deviation of the training images, in [0, 1] units."""
    pixels = train.images.astype(np.float64) / 255.0
    return float(pixels.mean()), float(pixels.std())
