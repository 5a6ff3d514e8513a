"""Load FER-2013 from the Kaggle CSV or from the image-folder release, with a decode cache.

Every loader returns a `Dataset`: a dict from split name ("train", "val", "test") to a
`Split` of uint8 images (N, 48, 48) and int64 labels (N,).
"""
import csv
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SIZE = 48
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
DEFAULT_DATA = "../shared/data/fer2013.csv.gz"  # the Kaggle CSV, read by path from the shared folder
DEFAULT_CACHE = Path(os.environ.get("FER_CACHE", Path.home() / ".cache" / "fer-emotion"))


@dataclass
class Split:
    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64

    def __len__(self):
        return len(self.labels)


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
    images = {split: [] for split in USAGE_TO_SPLIT.values()}
    labels = {split: [] for split in USAGE_TO_SPLIT.values()}
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["emotion", "pixels", "Usage"]:
            raise DataError(f"{path}: line 1: expected header emotion,pixels,Usage, got {header}")
        for line, row in enumerate(reader, start=2):
            image, label, split = parse_row(row, line)
            images[split].append(image)
            labels[split].append(label)
    return {split: Split(np.stack(images[split]) if images[split] else np.zeros((0, SIZE, SIZE), np.uint8),
                         np.array(labels[split], dtype=np.int64))
            for split in images}


def cache_path(source, cache_dir):
    """Cache file for a source file, keyed by its absolute path, size and mtime."""
    stat = Path(source).stat()
    key = f"{Path(source).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return Path(cache_dir) / f"fer-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def save_cache(dataset, path):
    """Write a Dataset as one uncompressed .npz, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    arrays = {}
    for split, data in dataset.items():
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = data.images, data.labels
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_cache(path):
    """Read a Dataset written by save_cache."""
    with np.load(path) as npz:
        splits = {name.rsplit("_", 1)[0] for name in npz.files}
        return {s: Split(npz[f"{s}_images"], npz[f"{s}_labels"]) for s in splits}


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
    return (Split(data.images[~mask], data.labels[~mask]),
            Split(data.images[mask], data.labels[mask]))


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
    return {name: Split(data.images[:limit], data.labels[:limit]) for name, data in dataset.items()}


def normalisation(train):
    """Mean and standard deviation of the training images, in [0, 1] units."""
    pixels = train.images.astype(np.float64) / 255.0
    return float(pixels.mean()), float(pixels.std())
