"""Load the exported emotion model (model/fer.pt) and classify batches of 48x48 grey faces.

The file's contract: float32 (N, 1, 48, 48) in [0, 1] in, (N, 7) softmax probabilities out,
labels and other metadata in its meta.json. Nothing here knows how it was trained.

model/fer.pt is a float file that any PyTorch build runs. A faster file for one quantised
engine may sit beside it, named after the engine (model/fer.onednn.pt); it is served instead
where this PyTorch build has that engine and the file loads and agrees with the portable one.
"""
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class ModelError(RuntimeError):
    """The model file is missing or does not honour the contract."""


@dataclass
class Classifier:
    module: torch.jit.ScriptModule
    labels: tuple
    meta: dict

    @property
    def summary(self):
        """What clients are told about the model."""
        return {"name": self.meta.get("architecture", "unknown"), "accuracy": self.meta.get("test_accuracy"),
                "val_accuracy": self.meta.get("val_accuracy"), "date": self.meta.get("date")}


# Face counts whose fused graphs are compiled at load, so that the first requests with few
# faces do not each pay a one-off compilation (about 25 ms per new batch size).
WARM_BATCHES = (1, 2, 3, 4)


log = logging.getLogger(__name__)
# Mean absolute difference of probabilities on the probe faces above which an engine-specific
# file is taken for another model; int8 rounding moves them by about 0.002 on real faces.
AGREEMENT = 0.02


def load_classifier(path, fusion=True):
    """The classifier to serve for a model file: an engine-specific file beside it where one loads
    here and agrees with it (see the module's docstring), else the file itself."""
    portable = load_model_file(path, fusion)
    for fast in engine_files(path):
        try:
            candidate = load_model_file(fast, fusion)
        except ModelError as e:
            log.warning("%s; serving %s", e, path)
            continue
        gap = float(np.abs(classify(candidate, PROBE_FACES) - classify(portable, PROBE_FACES)).mean())
        if gap <= AGREEMENT:
            return candidate
        log.warning("%s disagrees with %s (mean probability gap %.3f); serving %s", fast, path, gap, path)
    return portable


def engine_files(path):
    """Files beside `path` named for a quantised engine this PyTorch build has (fer.pt -> fer.onednn.pt)."""
    path = Path(path)
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    return [f for f in (path.with_name(f"{path.stem}.{e}{path.suffix}") for e in engines) if f.is_file()]


# Faces the engine-specific and portable files must agree on: smooth random grey images, fixed.
PROBE_FACES = np.clip(np.random.default_rng(0).normal(128, 40, (16, 6, 6)).repeat(8, 1).repeat(8, 2), 0, 255
                      ).astype(np.uint8)


def load_model_file(path, fusion=True):
    """Load and check one TorchScript model file; raise ModelError naming the file and the problem.

    fusion turns on oneDNN graph fusion for TorchScript in this process (conv + add + ReLU
    run as one kernel; 2x faster at batch 1 here, `scripts/benchmark_model.py`). TorchScript
    compiles one fused graph per new batch size, up to about a dozen, then runs new sizes
    unfused; the common small batches are compiled here.
    """
    torch.jit.enable_onednn_fusion(fusion)
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    select_quantized_engine(path)
    extra = {"meta.json": ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as e:
        reason = str(e).strip().splitlines()[0].split(". ")[0][:160] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: not a loadable TorchScript model ({reason})") from None
    try:
        meta = json.loads(extra["meta.json"] or "{}")
    except json.JSONDecodeError:
        raise ModelError(f"{path}: meta.json inside the model is not valid JSON") from None
    labels = tuple(meta.get("labels", ()))
    if len(labels) != 7:
        raise ModelError(f"{path}: meta.json must list 7 labels, found {len(labels)}")
    module.eval()
    classifier = Classifier(module, labels, meta)
    probs = classify(classifier, np.zeros((1, 48, 48), np.uint8))
    if probs.shape != (1, 7) or not np.isclose(probs.sum(), 1.0, atol=1e-3):
        raise ModelError(f"{path}: output is not (N, 7) probabilities")
    for batch in WARM_BATCHES if fusion else ():
        for _ in range(2):  # the first call profiles, the second compiles
            classify(classifier, np.zeros((batch, 48, 48), np.uint8))
    return classifier


def select_quantized_engine(path):
    """Select the quantised engine an int8 file names in its meta.json, before it is loaded.

    int8 files pack their weights for one engine (oneDNN: conv + add + ReLU as one kernel) when
    they load. Files without the entry (float ones) leave the process as it is.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/extra/meta.json")), None)
            engine = (json.loads(archive.read(name)).get("quantisation") or {}).get("engine") if name else None
    except (zipfile.BadZipFile, json.JSONDecodeError, AttributeError, OSError):
        return  # torch.jit.load reports what is wrong with the file
    if engine:
        if engine not in torch.backends.quantized.supported_engines:
            raise ModelError(f"{path}: needs the quantised engine {engine!r}, which this PyTorch build lacks")
        torch.backends.quantized.engine = engine


def classify(classifier, faces):
    """uint8 faces (N, 48, 48) -> float probabilities (N, 7), in one forward pass."""
    if len(faces) == 0:
        return np.zeros((0, len(classifier.labels)), np.float32)
    x = torch.from_numpy(np.ascontiguousarray(faces)).unsqueeze(1).float().div_(255.0)
    with torch.inference_mode():
        return classifier.module(x).numpy()
