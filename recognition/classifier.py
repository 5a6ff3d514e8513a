"""Load the exported emotion model (model/fer.pt) and classify batches of grey faces.

The file's contract is in `modelfile`; nothing here knows how the model was trained.

model/fer.pt is a float file that any PyTorch build runs. A faster file for one quantised
engine may sit beside it, named after the engine (model/fer.onednn.pt); it is served instead
where this PyTorch build has that engine and the file loads and agrees with the portable one.
"""
import logging
from dataclasses import dataclass

import numpy as np
import torch

from modelfile import FACE_SIZE, ModelError, engine_files, load


@dataclass
class Classifier:
    module: torch.jit.ScriptModule
    labels: tuple
    meta: dict

    @property
    def summary(self):
        """What clients are told about the model."""
        return {"name": self.meta.get("architecture", "unknown"), "accuracy": self.meta.get("test_accuracy"),
                "ferplus_accuracy": self.meta.get("test_ferplus_accuracy"), "val_accuracy": self.meta.get("val_accuracy"),
                "calibrated_on": self.calibrated_on, "date": self.meta.get("date")}

    @property
    def calibrated_on(self):
        """The labels the file's temperature was fitted to: "ferplus" or "fer2013" (files exported before
        the choice existed were fitted to FER-2013's whenever their temperature is not 1), else None."""
        if "temperature_fitted_on" in self.meta:
            return self.meta["temperature_fitted_on"]
        return "fer2013" if self.meta.get("temperature", 1.0) != 1.0 else None


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
    module, meta = load(path)
    classifier = Classifier(module, tuple(meta["labels"]), meta)
    probs = classify(classifier, np.zeros((1, FACE_SIZE, FACE_SIZE), np.uint8))
    if probs.shape != (1, len(classifier.labels)) or not np.isclose(probs.sum(), 1.0, atol=1e-3):
        raise ModelError(f"{path}: output is not (N, {len(classifier.labels)}) probabilities")
    for batch in WARM_BATCHES if fusion else ():
        for _ in range(2):  # the first call profiles, the second compiles
            classify(classifier, np.zeros((batch, FACE_SIZE, FACE_SIZE), np.uint8))
    return classifier


def classify(classifier, faces):
    """uint8 faces (N, 48, 48) -> float probabilities (N, 7), in one forward pass."""
    if len(faces) == 0:
        return np.zeros((0, len(classifier.labels)), np.float32)
    x = torch.from_numpy(np.ascontiguousarray(faces)).unsqueeze(1).float().div_(255.0)
    with torch.inference_mode():
        return classifier.module(x).numpy()
